"""Verification: run the source (through its reference runner) and the converted ONNX
(through onnxruntime) on the same inputs, and compare every output, optionally every layer.

A value passes when every element satisfies ``|converted - reference| <= atol + rtol*|reference|``
(NaN matches NaN; integer and boolean outputs must be equal).
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from typing import Any

import numpy as np
import onnx

from modelport.errors import InputSpecError, InvalidModelError

LAYER_MAP_KEY = "modelport.layer_outputs"
SOURCE_PERM_KEY = "modelport.source_perm"
DEFAULT_RTOL = 1e-3
DEFAULT_ATOL = 1e-4
SYMBOLIC_BATCH = 1
SYMBOLIC_OTHER = 32


@dataclasses.dataclass
class Comparison:
    name: str
    shape: list[int]
    max_abs: float
    max_rel: float
    mismatched: int
    passed: bool
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class VerifyReport:
    source: str
    converted: str
    reference: str
    runtime: str
    rtol: float
    atol: float
    seed: int
    inputs: dict[str, list[int]]
    outputs: list[Comparison]
    layers: list[Comparison] | None = None
    first_diverging_layer: str | None = None
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.outputs)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["passed"] = self.passed
        return d

    def table(self) -> str:
        rows = [("output", "shape", "max abs err", "max rel err", "result")]
        for c in self.outputs:
            rows.append(_row(c))
        lines = [f"verified against {self.reference}; converted model in {self.runtime}",
                 f"inputs: seed {self.seed}, " + ", ".join(
                     f"{k} {'x'.join(map(str, v))}" for k, v in self.inputs.items()),
                 f"tolerance: rtol={self.rtol:g} atol={self.atol:g}",
                 _format(rows)]
        if self.layers is not None:
            lrows = [("layer", "shape", "max abs err", "max rel err", "result")]
            lrows += [_row(c) for c in self.layers]
            lines.append("")
            lines.append(_format(lrows))
            if self.first_diverging_layer:
                lines.append(f"first diverging layer: {self.first_diverging_layer}")
            else:
                lines.append(f"all {len(self.layers)} compared layers agree")
        lines.append("PASS" if self.passed else "FAIL")
        return "\n".join(lines)


def _row(c: Comparison) -> tuple[str, ...]:
    result = "ok" if c.passed else f"FAIL ({c.mismatched} elements)" if c.mismatched else "FAIL"
    if c.note:
        result += f" — {c.note}"
    return (c.name, "x".join(map(str, c.shape)) or "scalar", f"{c.max_abs:.3g}",
            f"{c.max_rel:.3g}", result)


def _format(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in rows)


def compare(name: str, got: np.ndarray, want: np.ndarray, rtol: float, atol: float) -> Comparison:
    got = np.asarray(got)
    want = np.asarray(want)
    if got.shape != want.shape:
        if got.size == want.size and got.size > 0:
            got = got.reshape(want.shape)
            note = f"shape {list(np.shape(got))} vs reference {list(want.shape)}"
        else:
            return Comparison(name, list(got.shape), float("inf"), float("inf"), got.size, False,
                              f"shape {list(got.shape)}, reference has {list(want.shape)}")
    else:
        note = ""
    if got.size == 0:
        return Comparison(name, list(want.shape), 0.0, 0.0, 0, True, note)
    if want.dtype.kind in "fc" or got.dtype.kind in "fc":
        g = got.astype(np.float64)
        w = want.astype(np.float64)
        both_nan = np.isnan(g) & np.isnan(w)
        diff = np.where(both_nan, 0.0, np.abs(g - w))
        diff = np.where(np.isnan(diff), np.inf, diff)
        bad = diff > atol + rtol * np.abs(np.where(np.isnan(w), 0, w))
        same_inf = np.isinf(g) & np.isinf(w) & (np.sign(g) == np.sign(w))
        bad &= ~same_inf
        diff = np.where(same_inf, 0.0, diff)
        max_abs = float(diff.max())
        scale = np.abs(w)
        rel_mask = scale > atol
        max_rel = float((diff[rel_mask] / scale[rel_mask]).max()) if rel_mask.any() else 0.0
    else:
        if got.dtype.kind in "US" or want.dtype.kind in "US":
            bad = got.astype(str) != want.astype(str)
            max_abs = float(bad.any())
        else:
            diff = np.abs(got.astype(np.float64) - want.astype(np.float64))
            bad = diff > 0
            max_abs = float(diff.max())
        max_rel = 0.0 if not bad.any() else float("inf")
    mismatched = int(bad.sum())
    return Comparison(name, list(want.shape), max_abs, max_rel, mismatched, mismatched == 0, note)


def concrete_shape(shape: list, override: list | None = None) -> list[int]:
    if override is not None:
        return [int(d) for d in override]
    dims = []
    for i, d in enumerate(shape):
        if isinstance(d, int) and d > 0:
            dims.append(d)
        else:
            dims.append(SYMBOLIC_BATCH if i == 0 else SYMBOLIC_OTHER)
    return dims


def random_inputs(
    specs: list[tuple[str, np.dtype, list]],
    seed: int,
    shapes: dict[str, list[int]] | None = None,
    int_high: int = 4,
) -> dict[str, np.ndarray]:
    """Seeded inputs: standard normal floats, integers in [0, int_high), random booleans."""
    rng = np.random.default_rng(seed)
    shapes = shapes or {}
    feeds = {}
    for name, dtype, shape in specs:
        dims = concrete_shape(shape, shapes.get(name))
        if dtype.kind == "f":
            feeds[name] = rng.standard_normal(dims).astype(dtype)
        elif dtype.kind in "iu":
            feeds[name] = rng.integers(0, int_high, size=dims).astype(dtype)
        elif dtype.kind == "b":
            feeds[name] = rng.integers(0, 2, size=dims).astype(bool)
        else:
            raise InputSpecError(f"cannot make random values for input {name!r} of type {dtype}; "
                                 "pass --inputs data.npz")
    return feeds


def load_inputs(path: str, specs: list[tuple[str, np.dtype, list]]) -> dict[str, np.ndarray]:
    try:
        data = np.load(path, allow_pickle=False)
    except Exception as exc:
        raise InvalidModelError(f"cannot read inputs: {exc}", path=path) from exc
    feeds = {}
    missing = []
    for name, dtype, _ in specs:
        if name in data:
            feeds[name] = np.asarray(data[name]).astype(dtype, copy=False)
        else:
            missing.append(name)
    if missing:
        raise InputSpecError(f"{path}: no array for input(s) {', '.join(missing)} "
                             f"(it has {', '.join(data.files) or 'none'})")
    return feeds


def _value_perms(proto: onnx.ModelProto) -> dict[str, list[int]]:
    """Per graph input/output: the permutation from the ONNX layout to the source's layout."""
    perms = {}
    for vi in list(proto.graph.input) + list(proto.graph.output):
        for entry in vi.metadata_props:
            if entry.key == SOURCE_PERM_KEY:
                perms[vi.name] = [int(p) for p in entry.value.split(",")]
    return perms


def layer_map(proto: onnx.ModelProto) -> dict[str, list[str]]:
    for entry in proto.metadata_props:
        if entry.key == LAYER_MAP_KEY:
            return json.loads(entry.value)
    return {}


VALUE_LAYOUTS_KEY = "modelport.value_layouts"


def value_layouts(proto: onnx.ModelProto) -> dict[str, str]:
    """Importer-recorded layouts of intermediate values that differ from the source layer's.

    Each entry maps an ONNX value name to ``"p0,p1,..."`` (the value is the source tensor
    transposed by that permutation) or ``"d1,d2,...|p0,p1,..."`` (a flattened tensor: reshape
    to (batch, d1, d2, ...) and transpose by the permutation before flattening again).
    """
    for entry in proto.metadata_props:
        if entry.key == VALUE_LAYOUTS_KEY:
            return json.loads(entry.value)
    return {}


def to_source_layout(value: np.ndarray, layout: str, want_shape: tuple) -> np.ndarray:
    dims, _, perm = layout.rpartition("|")
    p = [int(x) for x in perm.split(",")]
    if dims:
        value = value.reshape(value.shape[0], *[int(d) for d in dims.split(",")])
        return np.transpose(value, p).reshape(want_shape)
    return np.transpose(value, [p.index(i) for i in range(len(p))])


def verify_files(
    reference,
    converted: str,
    *,
    source_label: str,
    inputs: dict[str, np.ndarray] | str | None = None,
    input_shapes: dict[str, list[int]] | None = None,
    seed: int = 0,
    rtol: float = DEFAULT_RTOL,
    atol: float = DEFAULT_ATOL,
    per_layer: bool = False,
    device: str = "cpu",
    int_high: int = 4,
) -> VerifyReport:
    from modelport.convert.runners.onnxruntime import OrtRunner

    start = time.perf_counter()
    runner = OrtRunner(converted, device=device)  # a clear error if it is not runnable ONNX
    try:
        proto = onnx.load(converted, load_external_data=False)
    except Exception as exc:
        raise InvalidModelError(f"cannot parse as ONNX: {exc}", path=converted) from exc
    specs = runner.input_specs()
    if isinstance(inputs, (str, os.PathLike)):
        feeds = load_inputs(os.fspath(inputs), specs)
    elif inputs is not None:
        feeds = {name: np.asarray(inputs[name]).astype(dtype, copy=False)
                 for name, dtype, _ in specs if name in inputs}
        absent = [name for name, _, _ in specs if name not in inputs]
        if absent:
            raise InputSpecError(f"no input values given for {', '.join(absent)}")
    else:
        hint = getattr(reference, "int_high", None)
        feeds = random_inputs(specs, seed, input_shapes, int_high=hint or int_high)
    perms = _value_perms(proto)
    ref_feeds = {k: np.ascontiguousarray(np.transpose(v, perms[k])) if k in perms else v
                 for k, v in feeds.items()}
    want = reference.run(ref_feeds)
    got = runner.run(feeds)
    comparisons = []
    for name in runner.output_names():
        value = got[name]
        if name in perms:
            value = np.transpose(value, perms[name])
        if name not in want:
            comparisons.append(Comparison(name, list(value.shape), float("inf"), float("inf"),
                                          0, False, "the reference has no output of this name"))
            continue
        comparisons.append(compare(name, value, want[name], rtol, atol))
    report = VerifyReport(
        source=source_label, converted=os.fspath(converted), reference=reference.name,
        runtime=runner.name, rtol=rtol, atol=atol, seed=seed,
        inputs={k: list(v.shape) for k, v in feeds.items()}, outputs=comparisons,
    )
    if per_layer:
        _compare_layers(report, reference, proto, converted, feeds, ref_feeds, rtol, atol, device)
    report.seconds = time.perf_counter() - start
    return report


def _compare_layers(report, reference, proto, converted, feeds, ref_feeds, rtol, atol, device):
    from modelport.convert.runners.onnxruntime import OrtRunner

    layers = layer_map(proto)
    if not hasattr(reference, "run_layers"):
        raise InputSpecError(f"per-layer verification is not available against {reference.name}")
    names = [n for values in layers.values() for n in values]
    runner = OrtRunner(converted, device=device, extra_outputs=names)
    exposed = set(runner.exposed)
    present = {layer: values for layer, values in layers.items()
               if values and all(v in exposed for v in values)}
    got = runner.run(feeds, [v for values in present.values() for v in values])
    want = reference.run_layers(ref_feeds, present)
    layouts = value_layouts(proto)
    report.layers = []
    for layer, values in present.items():
        if layer not in want:
            continue
        for i, (vname, ref) in enumerate(zip(values, want[layer])):
            value = got[vname]
            if vname in layouts and value.size == np.size(ref):
                value = to_source_layout(value, layouts[vname], np.shape(ref))
            elif value.shape != np.shape(ref) and value.ndim >= 3:
                cl = np.moveaxis(value, 1, -1)  # channels-first ONNX vs channels-last source
                if cl.shape == np.shape(ref):
                    value = cl
            label = layer if len(values) == 1 else f"{layer}[{i}]"
            c = compare(label, value, ref, rtol, atol)
            report.layers.append(c)
            if not c.passed and report.first_diverging_layer is None:
                report.first_diverging_layer = layer
