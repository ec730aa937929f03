"""Verification: run the source (through its reference runner) and the converted ONNX
(through onnxruntime) on the same inputs, and compare every output, optionally every layer.

A value passes when every element satisfies ``|converted - reference| <= atol + rtol*|reference|``
(NaN matches NaN; integer and boolean outputs must be equal).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from typing import Any

import numpy as np
import onnx

from modelport.errors import InputSpecError, InvalidModelError
from modelport.graph_ir.metadata import (
    LAYER_MAP_KEY,
    LAYER_SKIPS_KEY,
    SOURCE_PERM_KEY,
    VALUE_LAYOUTS_KEY,
)

DEFAULT_RTOL = 1e-3
DEFAULT_ATOL = 1e-4
SYMBOLIC_BATCH = 1
SYMBOLIC_OTHER = 32


@dataclasses.dataclass
class Comparison:
    """One compared value (a graph output, or a source layer in per-layer mode).

    ``shape`` is the converted value's shape (``reference_shape`` the reference's when it
    differs, which is a failure); ``max_abs`` and ``max_rel`` are the largest absolute and
    relative errors, ``mismatched`` the number of elements outside ``atol + rtol * |ref|``,
    ``passed`` the verdict and ``note`` a remark (non-finite values, a layout applied).
    """

    name: str
    shape: list[int]  # the converted value's shape
    max_abs: float
    max_rel: float
    mismatched: int
    passed: bool
    note: str = ""
    reference_shape: list[int] | None = None  # set when it differs from ``shape``

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class NotCompared:
    """A source layer that per-layer verification did not compare, and why."""

    layer: str
    reason: str


@dataclasses.dataclass
class VerifyReport:
    """The result of a verification (:func:`modelport.verify`, ``convert(verify=True)``).

    ``source``/``converted`` are the two files, ``reference`` what ran the source (a
    framework or an independent reader, with its version) and ``runtime`` what ran the ONNX
    model; ``rtol``, ``atol`` and ``seed`` are the tolerances and the input seed, ``inputs``
    the input shapes used. ``outputs`` holds a :class:`Comparison` per graph output; with
    ``per_layer`` also ``layers`` (one per source layer compared), ``first_diverging_layer``
    and ``not_compared`` (layers that could not be compared, with the reason). ``layouts``
    lists values the importer transposed on purpose; ``cannot_judge`` says why the reference
    cannot reproduce the file's semantics, in which case the report never passes.
    ``table()`` is the text report, ``to_dict()`` the JSON one.
    """

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
    # Layout changes the importer made on purpose, as recorded in the converted model:
    # value name -> the permutation applied to the converted value to get the source's layout.
    layouts: dict[str, list[int]] = dataclasses.field(default_factory=dict)
    not_compared: list[NotCompared] = dataclasses.field(default_factory=list)
    # Set when the reference cannot reproduce the file's semantics: the report then never
    # passes, whatever the numbers say.
    cannot_judge: str | None = None

    @property
    def verified(self) -> bool:
        """Something was compared, by a reference that can judge the file."""
        return bool(self.outputs) and self.cannot_judge is None

    @property
    def passed(self) -> bool:
        """Verified, and every output within tolerance."""
        return self.verified and all(c.passed for c in self.outputs)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["verified"] = self.verified
        d["passed"] = self.passed
        return d

    def table(self) -> str:
        """The report as the command line prints it (tables of outputs and layers, verdict)."""
        rows = [("output", "shape", "max abs err", "max rel err", "result")]
        for c in self.outputs:
            rows.append(_row(c))
        lines = [f"verified against {self.reference}; converted model in {self.runtime}",
                 f"inputs: seed {self.seed}, " + ", ".join(
                     f"{k} {'x'.join(map(str, v))}" for k, v in self.inputs.items()),
                 f"tolerance: rtol={self.rtol:g} atol={self.atol:g}"]
        for name, perm in self.layouts.items():
            lines.append(f"layout: {name} of the converted model, transposed by "
                         f"({','.join(map(str, perm))}), is the source's (recorded by the "
                         "importer)")
        lines.append(_format(rows) if self.outputs else "no output was compared")
        if self.layers is not None:
            lrows = [("layer", "shape", "max abs err", "max rel err", "result")]
            lrows += [_row(c) for c in self.layers]
            lines.append("")
            if self.layers:
                lines.append(_format(lrows))
            for nc in self.not_compared:
                lines.append(f"not compared: {nc.layer}: {nc.reason}")
            skipped = f"; {len(self.not_compared)} not compared" if self.not_compared else ""
            if self.first_diverging_layer:
                lines.append(f"first diverging layer: {self.first_diverging_layer}{skipped}")
            else:
                lines.append(f"all {len(self.layers)} compared layers agree{skipped}")
        if self.cannot_judge:
            lines.append(f"CANNOT JUDGE: {self.cannot_judge}")
        elif not self.outputs:
            lines.append("NOT VERIFIED: nothing was compared")
        else:
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


def check_tolerances(rtol: float, atol: float) -> None:
    """Tolerances must be finite and non-negative: NaN would make every comparison pass."""
    for name, value in (("rtol", rtol), ("atol", atol)):
        try:
            ok = math.isfinite(float(value)) and float(value) >= 0
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise InputSpecError(f"--{name} {value!r}: a tolerance must be a finite number >= 0")


def compare(name: str, got: np.ndarray, want: np.ndarray, rtol: float, atol: float,
            note: str = "") -> Comparison:
    """Compare a converted value with the reference's. Shapes must be equal: a value whose
    shape differs fails even when the element counts agree (no reshaping)."""
    got = np.asarray(got)
    want = np.asarray(want)
    if got.shape != want.shape:
        why = f"shape {list(got.shape)}, reference has {list(want.shape)}"
        return Comparison(name, list(got.shape), float("inf"), float("inf"), max(got.size, 1),
                          False, f"{note}; {why}" if note else why,
                          reference_shape=list(want.shape))
    if got.size == 0:
        return Comparison(name, list(want.shape), 0.0, 0.0, 0, True, note)
    if want.dtype.kind in "fc" or got.dtype.kind in "fc":
        with np.errstate(invalid="ignore", over="ignore"):
            return _compare_floats(name, got, want, rtol, atol, note)
    if got.dtype.kind in "USO" or want.dtype.kind in "USO":
        bad = got.astype(str) != want.astype(str)
        max_abs = float(bad.any())
    else:
        diff = np.abs(got.astype(np.float64) - want.astype(np.float64))
        bad = diff > 0
        max_abs = float(diff.max())
    max_rel = 0.0 if not bad.any() else float("inf")
    mismatched = int(bad.sum())
    return Comparison(name, list(want.shape), max_abs, max_rel, mismatched, mismatched == 0, note)


def _compare_floats(name: str, got: np.ndarray, want: np.ndarray, rtol: float, atol: float,
                    note: str) -> Comparison:
    g = got.astype(np.float64)
    w = want.astype(np.float64)
    both_nan = np.isnan(g) & np.isnan(w)
    diff = np.where(both_nan, 0.0, np.abs(g - w))
    diff = np.where(np.isnan(diff), np.inf, diff)
    bad = diff > atol + rtol * np.abs(np.where(np.isnan(w), 0, w))
    same_inf = np.isinf(g) & np.isinf(w) & (np.sign(g) == np.sign(w))
    # An infinite reference makes atol + rtol*|ref| infinite: anything would pass it.
    bad |= (np.isinf(g) | np.isinf(w)) & ~same_inf
    bad &= ~same_inf
    diff = np.where(same_inf, 0.0, diff)
    max_abs = float(diff.max())
    scale = np.abs(w)
    rel_mask = scale > atol
    max_rel = float((diff[rel_mask] / scale[rel_mask]).max()) if rel_mask.any() else 0.0
    mismatched = int(bad.sum())
    return Comparison(name, list(want.shape), max_abs, max_rel, mismatched, mismatched == 0, note)


def json_safe(obj: Any) -> Any:
    """``obj`` with every non-finite float written as the string "inf", "-inf" or "nan", so
    that the result is strict JSON (json.dumps(..., allow_nan=False) accepts it)."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return "nan" if math.isnan(obj) else ("inf" if obj > 0 else "-inf")
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, np.generic):
        return json_safe(obj.item())
    return obj


def to_json(obj: Any) -> str:
    return json.dumps(json_safe(obj), indent=2, default=str, allow_nan=False)


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
    from modelport.convert.inputs import check_arrays

    check_arrays(path, feeds, data.files, specs)
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


def layer_skips(proto: onnx.ModelProto) -> dict[str, str]:
    """Source layers the importer says have no value of their own, with the reason."""
    for entry in proto.metadata_props:
        if entry.key == LAYER_SKIPS_KEY:
            return json.loads(entry.value)
    return {}


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

    check_tolerances(rtol, atol)
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
    caveat = getattr(reference, "cannot_judge", None)
    if caveat:
        got = runner.run(feeds)
        return VerifyReport(
            source=source_label, converted=os.fspath(converted), reference=reference.name,
            runtime=runner.name, rtol=rtol, atol=atol, seed=seed,
            inputs={k: list(v.shape) for k, v in feeds.items()},
            outputs=[Comparison(n, list(np.shape(got[n])), float("nan"), float("nan"), 0, False,
                                "not compared") for n in runner.output_names()],
            cannot_judge=caveat, seconds=time.perf_counter() - start)
    from modelport.convert.inputs import match_reference, run_matched

    ref_feeds, matched = match_reference(reference, ref_feeds)
    want = run_matched(reference, ref_feeds, matched)
    got = runner.run(feeds)
    comparisons = []
    layouts = {k: v for k, v in perms.items() if k in feeds}
    for name in runner.output_names():
        value = got[name]
        note = ""
        if name in perms:
            value = np.transpose(value, perms[name])
            layouts[name] = perms[name]
            note = f"transposed by ({','.join(map(str, perms[name]))}) to the source layout"
        if name not in want:
            comparisons.append(Comparison(
                name, list(value.shape), float("inf"), float("inf"), 0, False,
                "the reference has no output of this name (it has "
                f"{', '.join(sorted(want)) or 'none'})"))
            continue
        comparisons.append(compare(name, value, want[name], rtol, atol, note))
    report = VerifyReport(
        source=source_label, converted=os.fspath(converted), reference=reference.name + matched,
        runtime=runner.name, rtol=rtol, atol=atol, seed=seed,
        inputs={k: list(v.shape) for k, v in feeds.items()}, outputs=comparisons,
        layouts=layouts, cannot_judge=getattr(reference, "cannot_judge", None),
    )
    if per_layer:
        _compare_layers(report, reference, proto, converted, feeds, ref_feeds, rtol, atol, device)
    report.seconds = time.perf_counter() - start
    return report


def _compare_layers(report, reference, proto, converted, feeds, ref_feeds, rtol, atol, device):
    """Compare every source layer that has a value of its own in the converted model; list
    every other one with the reason it was not compared."""
    from modelport.convert.runners.onnxruntime import OrtRunner

    if not hasattr(reference, "run_layers"):
        raise InputSpecError(f"per-layer verification is not available against {reference.name}")
    layers = layer_map(proto)
    skipped: dict[str, str] = dict(layer_skips(proto))
    names = [n for values in layers.values() for n in values]
    runner = OrtRunner(converted, device=device, extra_outputs=names)
    exposed = set(runner.exposed)
    in_graph = {o for node in proto.graph.node for o in node.output} | \
        {i.name for i in proto.graph.input}
    present: dict[str, list[str]] = {}
    for layer, values in layers.items():
        if layer in skipped:
            continue
        lost = [v for v in values if v not in exposed]
        if not values:
            skipped[layer] = "no value of its own in the converted model"
        elif any(v not in in_graph for v in lost):
            skipped[layer] = ("its value was fused into another node by optimisation "
                              "(convert with -O0 to compare it)")
        elif lost:
            skipped[layer] = "onnxruntime cannot expose its value (its type is not known)"
        else:
            present[layer] = values
    got = runner.run(feeds, [v for values in present.values() for v in values])
    want = reference.run_layers(ref_feeds, present)
    ref_reasons = getattr(reference, "layer_reasons", None) or {}
    layouts = value_layouts(proto)
    report.layers = []
    for layer, values in present.items():
        if layer not in want:
            skipped[layer] = ref_reasons.get(
                layer, f"{reference.name} did not give this layer's value")
            continue
        refs = want[layer]
        if len(refs) != len(values):
            skipped[layer] = (f"the reference gave {len(refs)} values for it, the converted "
                              f"model {len(values)}")
            continue
        for i, (vname, ref) in enumerate(zip(values, refs)):
            value = got[vname]
            note = ""
            if vname in layouts and value.size == np.size(ref):
                value = to_source_layout(value, layouts[vname], np.shape(ref))
                note = f"layout {layouts[vname]} (recorded by the importer)"
            elif value.shape != np.shape(ref) and value.ndim >= 3:
                cl = np.moveaxis(value, 1, -1)  # channels-first ONNX vs channels-last source
                if cl.shape == np.shape(ref):
                    value = cl
                    note = "channels axis moved last to match the source"
            label = layer if len(values) == 1 else f"{layer}[{i}]"
            c = compare(label, value, ref, rtol, atol, note)
            report.layers.append(c)
            if not c.passed and report.first_diverging_layer is None:
                report.first_diverging_layer = layer
    source_layers = getattr(reference, "layer_names", None)
    if callable(source_layers):
        known = set(layers) | set(skipped)
        for layer in source_layers():
            if layer not in known:
                skipped[layer] = "the converted model has no value for it"
    report.not_compared = [NotCompared(k, v) for k, v in skipped.items()]
