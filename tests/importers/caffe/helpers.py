"""Helpers for the Caffe importer tests: write a net and seeded random weights, convert it,
and compare onnxruntime with OpenCV DNN (an independent Caffe reader) on seeded inputs."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from modelport.convert.pipeline import convert
from modelport.importers.registry import LoadOptions
from tests.oracles import assert_close, run_onnx
from tests.oracles.caffe_write import random_caffemodel

RTOL, ATOL = 1e-3, 1e-4


def corpus_dir() -> Path:
    env = os.environ.get("MODELPORT_CORPUS")
    if env:
        return Path(env) / "caffe"
    return Path(__file__).resolve().parents[3] / ".." / "shared" / "corpus" / "caffe"


def opencv_forward(prototxt, caffemodel, feeds: dict[str, np.ndarray], outputs: list[str],
                   blob_layers: dict[str, str]):
    import cv2

    net = cv2.dnn.readNetFromCaffe(str(prototxt), str(caffemodel))
    net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
    for name, value in feeds.items():
        net.setInput(value, name)
    values = net.forward([blob_layers.get(o, o) for o in outputs])
    return dict(zip(outputs, [np.asarray(v) for v in values]))


def make_inputs(shapes: dict[str, list[int]], seed: int = 0, positive: bool = False):
    rng = np.random.default_rng(seed)
    feeds = {}
    for name, shape in shapes.items():
        x = rng.standard_normal(shape).astype(np.float32)
        feeds[name] = np.abs(x) + 0.1 if positive else x
    return feeds


def check_net(tmp_path, text: str, inputs: dict[str, list[int]], *, seed: int = 0,
              blob_layers: dict[str, str] | None = None, positive: bool = False,
              feeds: dict[str, np.ndarray] | None = None, rtol=RTOL, atol=ATOL):
    """Convert ``text`` with seeded random weights; assert ONNX == OpenCV on every output."""
    proto = tmp_path / "net.prototxt"
    proto.write_text(text)
    weights = tmp_path / "net.caffemodel"
    random_caffemodel(proto, weights, seed=seed)
    out = tmp_path / "net.onnx"
    convert(proto, out, options=LoadOptions(weights=str(weights)), force=True)
    feeds = feeds if feeds is not None else make_inputs(inputs, seed + 1, positive)
    got = run_onnx(out, feeds)
    assert got, "the converted model has no outputs"
    from modelport.convert.runners.caffe_opencv import reference

    want = reference(str(proto), LoadOptions(weights=str(weights))).run(feeds)
    for name in got:
        assert_close(got[name], want[name], rtol=rtol, atol=atol, name=name)
    return got


def convert_with(tmp_path, text: str, blobs: dict[str, list[np.ndarray]]):
    """Write ``text`` and explicit weights (layer -> blobs), convert; returns the ONNX path."""
    from tests.oracles.caffe_write import write_caffemodel

    proto = tmp_path / "np.prototxt"
    proto.write_text(text)
    weights = tmp_path / "np.caffemodel"
    write_caffemodel(weights, [(name, "", arrays) for name, arrays in blobs.items()])
    out = tmp_path / "np.onnx"
    convert(proto, out, options=LoadOptions(weights=str(weights)), force=True)
    return out
