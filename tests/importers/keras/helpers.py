"""Helpers: randomise weights, save, convert, run both sides and compare."""

from __future__ import annotations

import os
import re

import numpy as np

from modelport.convert.pipeline import convert
from modelport.importers.registry import LoadOptions
from tests.oracles import assert_close, run_onnx

RTOL, ATOL = 1e-3, 1e-4


def randomize(model, seed: int = 0) -> None:
    """Seeded random weights (positive variances), so that nothing is an identity."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        for w in layer.weights:
            shape = tuple(w.shape)
            name = w.name if hasattr(w, "name") else ""
            path = getattr(w, "path", name)
            dtype = np.dtype(getattr(w.dtype, "name", w.dtype))
            if dtype.kind != "f":
                continue
            if "variance" in path:
                value = rng.uniform(0.5, 1.5, shape)
            else:
                value = rng.normal(0.0, 0.4, shape)
            w.assign(value.astype(dtype))


def inputs_for(model, seed: int = 1, batch: int = 2, int_high: int | None = None) -> list:
    rng = np.random.default_rng(seed)
    feeds = []
    for t in model.inputs:
        shape = [batch if d is None else int(d) for d in t.shape]
        dt = np.dtype(getattr(t.dtype, "name", t.dtype))
        if dt.kind in "iu":
            feeds.append(rng.integers(0, int_high or 4, size=shape).astype(dt))
        else:
            feeds.append(rng.standard_normal(shape).astype(dt))
    return feeds


def keras_outputs(model, feeds: list) -> list[np.ndarray]:
    out = model(feeds if len(feeds) > 1 else feeds[0], training=False)
    if isinstance(out, dict):
        out = list(out.values())
    if not isinstance(out, (list, tuple)):
        out = [out]
    return [np.asarray(o.detach().cpu() if hasattr(o, "detach") else o) for o in out]


def input_names(model) -> list[str]:
    names = []
    for t in model.inputs:
        hist = getattr(t, "_keras_history", None)
        layer = hist[0] if hist is not None else None
        names.append(layer.name if layer is not None else t.name.split(":")[0])
    return names


def save(model, path: str) -> str:
    if os.path.exists(path):
        os.remove(path)
    model.save(path)
    return path


def convert_file(path: str, out: str | None = None, **options) -> str:
    out = out or re.sub(r"\.(h5|keras|hdf5|json)$", "", path) + ".onnx"
    convert(path, out, options=LoadOptions(**options), force=True)
    return out


def check(model, path: str, feeds: list | None = None, rtol: float = RTOL, atol: float = ATOL,
          **options) -> str:
    """Convert ``path`` (saved from ``model``) and compare every output with Keras."""
    feeds = feeds if feeds is not None else inputs_for(model)
    onnx_path = convert_file(path, **options)
    want = keras_outputs(model, feeds)
    got = run_onnx(onnx_path, dict(zip(input_names(model), feeds)))
    assert len(got) == len(want)
    for (name, g), w in zip(got.items(), want):
        assert_close(g, w, rtol=rtol, atol=atol, name=f"{os.path.basename(path)}:{name}")
    return onnx_path
