"""TensorRT readiness: what TensorRT's ONNX parser would reject or handle badly, and the fixes
that keep the numbers.

The operator support tables (``tensorrt_tables/trt-<version>.json``: supported or not, and the
data types of each operator) are data taken from the parser's published support matrix, each
file naming its source. The restrictions below (inputs that must be constants, attribute values
the parser rejects, data types, limits) are rules as data too: one entry per rule, with the
versions it applies to, a stable code and, where one exists, the fix.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import re
import shlex
from collections.abc import Callable, Iterator
from importlib import resources
from typing import Any

import numpy as np
import onnx_ir as ir

from modelport.errors import ModelportError

DEFAULT_VERSION = None  # the newest table that ships (see versions())
ERROR, WARNING = "error", "warning"
EXTERNAL_DATA_LIMIT = 2_000_000_000

# ONNX data type -> the parser's name for it (what the support tables list)
_TYPE_NAMES = {
    ir.DataType.FLOAT: "FP32", ir.DataType.FLOAT16: "FP16", ir.DataType.BFLOAT16: "BF16",
    ir.DataType.INT32: "INT32", ir.DataType.INT64: "INT64", ir.DataType.INT8: "INT8",
    ir.DataType.BOOL: "BOOL", ir.DataType.UINT8: "UINT8", ir.DataType.DOUBLE: "DOUBLE",
    ir.DataType.FLOAT8E4M3FN: "FP8", ir.DataType.INT4: "INT4", ir.DataType.FLOAT4E2M1: "FP4",
}
# Types the parser never takes inside a network, per major version.
_NEVER = {
    "10": {ir.DataType.INT16, ir.DataType.UINT16, ir.DataType.UINT32, ir.DataType.UINT64,
           ir.DataType.STRING, ir.DataType.COMPLEX64, ir.DataType.COMPLEX128,
           ir.DataType.FLOAT8E5M2, ir.DataType.FLOAT8E4M3FNUZ, ir.DataType.FLOAT8E5M2FNUZ,
           ir.DataType.UINT4, ir.DataType.FLOAT8E8M0, ir.DataType.INT2, ir.DataType.UINT2,
           ir.DataType.FLOAT4E2M1},
    "8": {ir.DataType.INT16, ir.DataType.UINT16, ir.DataType.UINT32, ir.DataType.UINT64,
            ir.DataType.STRING, ir.DataType.COMPLEX64, ir.DataType.COMPLEX128,
            ir.DataType.BFLOAT16, ir.DataType.FLOAT8E4M3FN, ir.DataType.FLOAT8E5M2,
            ir.DataType.FLOAT8E4M3FNUZ, ir.DataType.FLOAT8E5M2FNUZ, ir.DataType.UINT4,
            ir.DataType.INT4, ir.DataType.FLOAT8E8M0, ir.DataType.INT2, ir.DataType.UINT2,
            ir.DataType.FLOAT4E2M1},
}
_REDUCE = ("ReduceL1", "ReduceL2", "ReduceLogSum", "ReduceLogSumExp", "ReduceMax",
           "ReduceMean", "ReduceMin", "ReduceProd", "ReduceSum", "ReduceSumSquare")

# Inputs the parser needs as constants (initializers or Constant nodes):
# (op, input index, input name, first opset where it is an input, (first, last) table version
# the restriction holds for; None: no bound). Slice axes may be tensors from 10.3 and Pad axes
# from 10.4 (the parser's changelog; the 10.15 table lists no restriction for either).
ALL, UP_TO_10_1, V8 = (None, None), (None, "10.1"), (None, "8.6")
CONSTANT_INPUTS: list[tuple[str, int, str, int, tuple[str | None, str | None]]] = [
    ("TopK", 1, "K", 10, ALL),
    ("CumSum", 1, "axis", 11, ALL),
    ("Slice", 3, "axes", 10, UP_TO_10_1),
    ("Squeeze", 1, "axes", 13, ALL),
    ("Unsqueeze", 1, "axes", 13, ALL),
    ("Pad", 3, "axes", 18, ("10.1", "10.1")),
    ("OneHot", 1, "depth", 9, ("10.1", None)),
    ("Dropout", 2, "training_mode", 12, ("10.1", None)),
    ("Conv", 1, "W", 1, V8),
    ("ConvTranspose", 1, "W", 1, V8),
    ("InstanceNormalization", 1, "scale", 1, V8),
    ("InstanceNormalization", 2, "B", 1, V8),
    ("NonMaxSuppression", 2, "max_output_boxes_per_class", 10, ALL),
    ("NonMaxSuppression", 3, "iou_threshold", 10, ALL),
    ("NonMaxSuppression", 4, "score_threshold", 10, ALL),
    ("STFT", 1, "frame_step", 17, ALL),
    ("STFT", 2, "window", 17, ALL),
] + [(op, 1, "axes", 18, ALL) for op in _REDUCE]


def _key(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.split("."))


def _applies(version: str, span: tuple[str | None, str | None]) -> bool:
    lo, hi = span
    return (lo is None or _key(version) >= _key(lo)) and (hi is None or _key(version) <= _key(hi))


RESIZE_ALLOWED = {
    "coordinate_transformation_mode": {"half_pixel", "pytorch_half_pixel",
                                       "tf_half_pixel_for_nn", "asymmetric", "align_corners"},
    "mode": {"nearest", "linear"},
    "nearest_mode": {"floor", "ceil", "round_prefer_floor", "round_prefer_ceil"},
    "keep_aspect_ratio_policy": {"stretch"},
}
TOPK_MAX_K = 3840  # the parser's limit on TopK's K (TensorRT 10)


@dataclasses.dataclass
class Finding:
    severity: str  # error | warning
    code: str
    node: str | None
    op: str | None
    message: str
    fix: str | None = None
    fixable: bool = False  # `convert --target tensorrt` fixes it

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in dataclasses.asdict(self).items() if k != "fixable"}


@dataclasses.dataclass
class Target:
    version: str
    table: dict[str, Any]

    @property
    def opsets(self) -> tuple[int, int]:
        lo, hi = self.table["opset_range"]
        return int(lo), int(hi)

    @property
    def label(self) -> str:
        return f"tensorrt:{self.version}"

    @property
    def major(self) -> int:
        return _key(self.version)[0]


@functools.cache
def _table(version: str) -> dict[str, Any]:
    ref = resources.files("modelport.exporters") / "tensorrt_tables" / f"trt-{version}.json"
    return json.loads(ref.read_text())


def versions() -> list[str]:
    """The TensorRT versions whose parser table ships, oldest first."""
    folder = resources.files("modelport.exporters") / "tensorrt_tables"
    return sorted((p.name[4:-5] for p in folder.iterdir()
                   if p.name.startswith("trt-") and p.name.endswith(".json")), key=_key)


def parse_target(text: str) -> Target:
    """``tensorrt`` (the newest table), ``tensorrt:MAJOR`` (the newest table of that major) or
    ``tensorrt:MAJOR.MINOR`` (the newest table of that major not newer than it, else the
    oldest of that major)."""
    name, _, version = text.partition(":")
    if name != "tensorrt":
        raise ModelportError(f"--target {text!r}: the only target is tensorrt[:VERSION]")
    known = versions()
    if not version:
        version = DEFAULT_VERSION or known[-1]
    try:
        want = _key(version)
    except ValueError:
        raise ModelportError(f"--target {text!r}: a version is numbers and dots, e.g. "
                             f"tensorrt:{known[-1]}") from None
    same = [v for v in known if _key(v)[0] == want[0]]
    if not same:
        raise ModelportError(
            f"--target {text!r}: no operator table for TensorRT {version}; known: "
            f"{', '.join(known)} (TensorRT 11's table is not in any source this project can "
            "read; see docs/tensorrt.md)")
    older = [v for v in same if _key(v) <= want] if len(want) > 1 else same
    chosen = (older or same[:1])[-1]
    return Target(chosen, _table(chosen))


def _all_nodes(graph: ir.Graph) -> Iterator[ir.Node]:
    """Every node, those of subgraphs (Loop/If bodies) included."""
    return iter(graph.all_nodes())


def _is_constant(value: ir.Value | None) -> bool:
    if value is None:
        return True
    if value.const_value is not None:
        return True
    producer = value.producer()
    return producer is not None and producer.op_type == "Constant" and producer.domain == ""


def _const(value: ir.Value | None) -> np.ndarray | None:
    if value is None:
        return None
    if value.const_value is not None:
        return value.const_value.numpy()
    producer = value.producer()
    if producer is not None and producer.op_type == "Constant":
        attr = producer.attributes.get("value")
        if attr is not None:
            return attr.value.numpy()
    return None


def _attr(node: ir.Node, name: str, default: Any = None) -> Any:
    a = node.attributes.get(name)
    if a is None:
        return default
    v = a.value
    return v.decode() if isinstance(v, bytes) else v


def _label(node: ir.Node) -> str:
    return node.name or (node.outputs[0].name if node.outputs and node.outputs[0] else "?")


# -- per-op rules: each takes (node, target, opset) and yields findings ---------------------
_RULES: dict[str, list[Callable]] = {}


def rule(*ops: str):
    def register(fn):
        for op in ops:
            _RULES.setdefault(op, []).append(fn)
        return fn
    return register


@rule("MaxPool")
def _maxpool_indices(node, target, opset):
    if len(node.outputs) > 1 and node.outputs[1] is not None and node.outputs[1].uses():
        yield Finding(ERROR, "TRT041", _label(node), node.op_type,
                      "the Indices output of MaxPool is not supported", None)


@rule("MaxPool", "AveragePool", "LpPool")
def _pool_dims(node, target, opset):
    dil = _attr(node, "dilations")
    if target.major >= 10 and dil and any(d != 1 for d in dil):
        yield Finding(ERROR, "TRT042", _label(node), node.op_type,
                      f"pooling dilations {list(dil)} are not supported (only all ones)")
    x = node.inputs[0]
    if x is not None and x.shape is not None and node.op_type != "LpPool" and \
            len(x.shape) not in (4, 5):
        yield Finding(ERROR, "TRT043", _label(node), node.op_type,
                      f"only 2D or 3D pooling is supported (input of rank {len(x.shape)})")


@rule("Resize")
def _resize(node, target, opset):
    for attr, allowed in RESIZE_ALLOWED.items():
        value = _attr(node, attr)
        if value is not None and value not in allowed:
            fix, fixable = None, False
            if attr == "coordinate_transformation_mode":
                same = _resize_coordinates_equivalent(node)
                fixable = same is not None
                if fixable:
                    fix = (f"{same!r} is exactly equivalent here (done by convert --target "
                           "tensorrt)")
                elif value == "tf_crop_and_resize":
                    fix = "crop with Slice first, then resize"
            yield Finding(ERROR, "TRT050", _label(node), node.op_type,
                          f"Resize {attr}={value!r} is not supported (accepted: "
                          f"{', '.join(sorted(allowed))})", fix, fixable=fixable)
    axes = _attr(node, "axes")
    x = node.inputs[0]
    scales = node.inputs[2] if len(node.inputs) > 2 else None
    if axes is not None and scales is not None and (x is None or x.shape is None or
                                                    list(axes) != list(range(len(x.shape)))):
        fixable = _resize_geometry(node) is not None and _const(scales) is not None
        yield Finding(ERROR, "TRT050", _label(node), node.op_type,
                      f"Resize with scales and axes={list(axes)}: axes must be every axis in "
                      "order", "give a scale for every axis (done by convert --target "
                      "tensorrt)" if fixable else "give a scale for every axis",
                      fixable=fixable)
    if _attr(node, "antialias", 0):
        fixable = _resize_never_shrinks(node)
        yield Finding(ERROR, "TRT050", _label(node), node.op_type,
                      "Resize with antialias is not supported",
                      "antialias does nothing when no axis shrinks (dropped by convert --target "
                      "tensorrt)" if fixable else None, fixable=fixable)


def _resize_axes(node: ir.Node, rank: int) -> list[int]:
    axes = _attr(node, "axes")
    return [a % rank for a in axes] if axes else list(range(rank))


def _resize_geometry(node: ir.Node) -> tuple[list[int], list[int], list[float] | None] | None:
    """(input dims, output dims, scales or None when sizes were given) for a Resize whose input
    dims are static and whose scales or sizes are constants; None otherwise."""
    x = node.inputs[0]
    if x is None or x.shape is None or not all(isinstance(d, int) for d in x.shape):
        return None
    if _attr(node, "keep_aspect_ratio_policy", "stretch") != "stretch":
        return None
    dims = list(x.shape)
    axes = _resize_axes(node, len(dims))
    scales = _const(node.inputs[2]) if len(node.inputs) > 2 else None
    sizes = _const(node.inputs[3]) if len(node.inputs) > 3 else None
    if sizes is not None and sizes.size:
        out = list(dims)
        for a, n in zip(axes, sizes.reshape(-1).tolist()):
            out[a] = int(n)
        return dims, out, None
    if scales is not None and scales.size:
        full = [1.0] * len(dims)
        for a, f in zip(axes, scales.reshape(-1).tolist()):
            full[a] = float(f)
        out = [int(np.floor(d * np.float32(f))) for d, f in zip(dims, full)]
        return dims, out, full
    return None


def _resize_coordinates_equivalent(node: ir.Node) -> str | None:
    """An accepted coordinate_transformation_mode that maps every output coordinate to the same
    input coordinate as the node's own, or None.

    - half_pixel_symmetric moves half_pixel by ``in/2 * (1 - out / (in * scale))``: by nothing
      when ``in * scale`` is the output size, i.e. when sizes were given or ``in * scale`` is
      whole.
    - tf_crop_and_resize over the whole input (roi start 0, end 1 on every axis) maps ``x`` to
      ``x * (in - 1) / (out - 1)``, which is align_corners, wherever ``out > 1`` (an axis of
      output size 1 samples the middle, align_corners the start: the same only when ``in == 1``).
    """
    mode = _attr(node, "coordinate_transformation_mode")
    geometry = _resize_geometry(node)
    if geometry is None:
        return None
    dims, out, scales = geometry
    if mode == "half_pixel_symmetric":
        if scales is None or all(float(np.float32(d * np.float32(f))).is_integer()
                                 for d, f in zip(dims, scales)):
            return "half_pixel"
        return None
    if mode == "tf_crop_and_resize":
        roi = _const(node.inputs[1]) if len(node.inputs) > 1 else None
        if roi is None:
            return None
        roi = roi.reshape(-1).tolist()
        n = len(_resize_axes(node, len(dims)))
        if len(roi) != 2 * n or any(v != 0 for v in roi[:n]) or any(v != 1 for v in roi[n:]):
            return None
        if all(o > 1 or d == 1 for d, o in zip(dims, out)):
            return "align_corners"
    return None


def _resize_never_shrinks(node: ir.Node) -> bool:
    geometry = _resize_geometry(node)
    return geometry is not None and all(o >= d for d, o in zip(geometry[0], geometry[1])) and \
        (geometry[2] is None or all(f >= 1 for f in geometry[2]))


@rule("ScatterND", "ScatterElements")
def _scatter(node, target, opset):
    reduction = _attr(node, "reduction", "none")
    if target.major >= 10 and node.op_type == "ScatterND" and reduction != "none":
        yield Finding(ERROR, "TRT051", _label(node), node.op_type,
                      f"ScatterND reduction={reduction!r} is not supported")


_LOWER = "abcdefghijklmnopqrstuvwxyz"


def _einsum_terms(node: ir.Node) -> tuple[list[str], str | None]:
    eq = (_attr(node, "equation") or "").replace(" ", "")
    lhs, arrow, rhs = eq.partition("->")
    return lhs.split(","), (rhs if arrow else None)


@rule("Einsum")
def _einsum(node, target, opset):
    eq = (_attr(node, "equation") or "").replace(" ", "")
    inputs, _ = _einsum_terms(node)
    bad = sorted({c for c in eq if c not in _LOWER and c not in "-,>."})
    if bad:
        fixable = _einsum_rewrite(node, target) is not None
        yield Finding(ERROR, "TRT052", _label(node), node.op_type,
                      f"Einsum {eq!r}: labels must be lowercase letters (found "
                      f"{', '.join(map(repr, bad))})",
                      "relabel with unused lowercase letters (done by convert --target "
                      "tensorrt)" if fixable else None, fixable=fixable)
    if "..." in eq and target.major < 9:  # the parser writes ellipses out itself from 9.0 on
        fixable = _einsum_rewrite(node, target) is not None
        yield Finding(ERROR, "TRT052", _label(node), node.op_type,
                      f"Einsum {eq!r}: ellipsis is not supported",
                      "write the broadcast axes out with letters (done by convert --target "
                      "tensorrt where the input ranks are known)" if fixable else
                      "write the broadcast axes out with letters", fixable=fixable)
    for term in inputs:
        letters = term.replace(".", "")
        if len(set(letters)) != len(letters):
            yield Finding(ERROR, "TRT052", _label(node), node.op_type,
                          f"Einsum {eq!r}: a repeated label in one operand (a diagonal) is not "
                          "supported")


def _einsum_rewrite(node: ir.Node, target: Target) -> str | None:
    """An equation with the same meaning that ``target``'s parser takes: labels other than
    lowercase letters renamed to unused lowercase letters and, before TensorRT 9 (whose parser
    writes them out itself), ellipses written out with new letters when the input ranks are
    known. None when there is none: more than 26 labels, unknown ranks, or an implicit output
    whose order would depend on how upper and lower case sort."""
    inputs, output = _einsum_terms(node)
    labels = [c for t in inputs for c in t if c != "."]
    if any(not c.isascii() or not c.isalpha() for c in labels):
        return None
    if output is None:  # implicit: the ellipsis axes, then the labels seen once, in order
        once = sorted(c for c in set(labels) if labels.count(c) == 1)
        if any(c.isupper() for c in once) and any(c.islower() for c in once):
            return None  # numpy sorts upper case first, onnxruntime lower case first
        output = ("..." if any("..." in t for t in inputs) else "") + "".join(once)
    free = [c for c in _LOWER if c not in labels]
    rename = {}
    for c in dict.fromkeys(labels):
        if c not in _LOWER:
            if not free:
                return None
            rename[c] = free.pop(0)
    inputs = ["".join(rename.get(c, c) for c in t) for t in inputs]
    output = "".join(rename.get(c, c) for c in output)
    if "..." in ",".join(inputs) and target.major < 9:
        ranks = []
        for t, v in zip(inputs, node.inputs):
            if v is None or v.shape is None:
                return None
            ranks.append(len(v.shape) - len(t.replace("...", "")))
        n = max([r for r, t in zip(ranks, inputs) if "..." in t] or [0])
        if len(free) < n or min(ranks) < 0:
            return None
        extra = "".join(free[:n])
        inputs = [t.replace("...", extra[n - r:] if r else "") for t, r in zip(inputs, ranks)]
        output = output.replace("...", extra)
    return ",".join(inputs) + "->" + output


@rule("Attention")
def _attention(node, target, opset):
    for i, name in ((0, "Q"), (1, "K"), (2, "V"), (3, "attn_mask")):
        v = node.inputs[i] if len(node.inputs) > i else None
        if v is not None and v.shape is not None and len(v.shape) != 4:
            yield Finding(ERROR, "TRT058", _label(node), node.op_type,
                          f"Attention input {name} must be 4D (it has rank {len(v.shape)})",
                          "give Q, K and V as (batch, heads, sequence, head size)")
    for i, name in ((4, "past_key"), (5, "past_value"), (6, "nonpad_kv_seqlen")):
        if len(node.inputs) > i and node.inputs[i] is not None:
            yield Finding(ERROR, "TRT058", _label(node), node.op_type,
                          f"Attention input {name} is not supported")
    for i, name in ((1, "present_key"), (2, "present_value"), (3, "qk_matmul_output")):
        if len(node.outputs) > i and node.outputs[i] is not None and node.outputs[i].uses():
            yield Finding(ERROR, "TRT058", _label(node), node.op_type,
                          f"Attention output {name} is not supported")
    for name in ("qk_matmul_output_mode", "softcap"):
        if name in node.attributes:
            yield Finding(ERROR, "TRT058", _label(node), node.op_type,
                          f"Attention attribute {name} is not supported")


@rule("TensorScatter")
def _tensor_scatter(node, target, opset):
    ranks = [len(v.shape) for v in node.inputs[:2] if v is not None and v.shape is not None]
    if any(r != 4 for r in ranks):
        yield Finding(ERROR, "TRT059", _label(node), node.op_type,
                      "TensorScatter's past_cache and update must be 4D")
    if _attr(node, "axis", -2) not in (-2, 2):
        yield Finding(ERROR, "TRT059", _label(node), node.op_type,
                      f"TensorScatter axis={_attr(node, 'axis')} is not supported (only -2)")


@rule("RotaryEmbedding")
def _rotary(node, target, opset):
    pos = node.inputs[3] if len(node.inputs) > 3 else None
    if pos is not None and pos.dtype is not None and pos.dtype != ir.DataType.INT64:
        yield Finding(ERROR, "TRT059", _label(node), node.op_type,
                      f"RotaryEmbedding position_ids must be INT64 (it is {pos.dtype.name})",
                      "cast position_ids to INT64")


@rule("GridSample")
def _grid_sample(node, target, opset):
    x = node.inputs[0]
    if x is not None and x.shape is not None and len(x.shape) != 4:
        yield Finding(ERROR, "TRT044", _label(node), node.op_type,
                      f"GridSample input must be 4D (it has rank {len(x.shape)})")


@rule("TopK")
def _topk(node, target, opset):
    if target.major < 10:
        return
    if _attr(node, "sorted", 1) != 1:
        yield Finding(ERROR, "TRT053", _label(node), node.op_type, "TopK sorted=0 is not supported")
    k = _const(node.inputs[1]) if len(node.inputs) > 1 else None
    if k is not None and int(np.asarray(k).reshape(-1)[0]) >= TOPK_MAX_K:
        yield Finding(ERROR, "TRT053", _label(node), node.op_type,
                      f"TopK K={int(np.asarray(k).reshape(-1)[0])} is over the limit "
                      f"({TOPK_MAX_K - 1})")


@rule("LSTM")
def _lstm(node, target, opset):
    if target.major >= 10 and (_attr(node, "input_forget", 0) or _attr(node, "layout", 0)):
        yield Finding(ERROR, "TRT054", _label(node), node.op_type,
                      "LSTM input_forget and layout must be 0")


@rule("LSTM", "GRU", "RNN")
def _bidirectional(node, target, opset):
    acts = _attr(node, "activations")
    if _attr(node, "direction") == "bidirectional" and acts and \
            list(acts[:len(acts) // 2]) != list(acts[len(acts) // 2:]):
        yield Finding(ERROR, "TRT054", _label(node), node.op_type,
                      "a bidirectional recurrence needs the same activations in both directions")


@rule("LayerNormalization")
def _layernorm(node, target, opset):
    if any(o is not None and o.uses() for o in node.outputs[1:]):
        yield Finding(ERROR, "TRT055", _label(node), node.op_type,
                      "only the first output of LayerNormalization is supported")


@rule("Loop")
def _loop(node, target, opset):
    body = _attr(node, "body")
    n_carried = len(node.inputs) - 2
    if body is not None and len(body.outputs) - 1 > n_carried:
        yield Finding(WARNING, "TRT056", _label(node), node.op_type,
                      "Loop scan outputs must have a length known when the engine is built")


@rule("NonZero", "NonMaxSuppression", "Unique", "Compress")
def _data_dependent(node, target, opset):
    yield Finding(WARNING, "TRT040", _label(node), node.op_type,
                  f"{node.op_type} has an output shape that depends on the data: TensorRT needs "
                  "an output allocator for it (or pads it), and cannot fuse across it")


@rule("DequantizeLinear", "QuantizeLinear")
def _zero_point(node, target, opset):
    zp = _const(node.inputs[2]) if len(node.inputs) > 2 else None
    if zp is not None and np.any(np.asarray(zp) != 0):
        yield Finding(ERROR, "TRT057", _label(node), node.op_type,
                      "the zero point must be 0 (symmetric quantization only)")


# -- the check -------------------------------------------------------------------------------
def check(model: ir.Model, target: Target | str | None = None,
          external_data: bool | None = None) -> list[Finding]:
    """Everything TensorRT's ONNX parser of ``target`` would reject (errors) or handle badly
    (warnings) in ``model``."""
    if target is None:
        target = parse_target("tensorrt")
    elif isinstance(target, str):
        target = parse_target(target if target.startswith("tensorrt") else f"tensorrt:{target}")
    ops = target.table["operators"]
    findings: list[Finding] = []
    opset = model.opset_imports.get("", 0)
    lo, hi = target.opsets
    if not lo <= opset <= hi:
        findings.append(Finding(
            ERROR, "TRT010", None, None,
            f"opset {opset} is outside TensorRT {target.version}'s range {lo}-{hi}",
            f"convert to opset {min(max(opset, lo), hi)}", fixable=True))
    graph = model.graph
    io = {v.name for v in graph.inputs} | {v.name for v in graph.outputs}
    never = set(_NEVER["8" if target.major < 10 else "10"])
    if "FP4" in target.table.get("data_types", ()):
        never.discard(ir.DataType.FLOAT4E2M1)
    seen_types: set[tuple] = set()

    def check_value(v: ir.Value, where: ir.Node | None) -> None:
        dt = v.dtype
        if dt is None and where is not None and where.op_type == "Cast":
            dt = ir.DataType(_attr(where, "to"))  # types of values not yet inferred
        if dt is None:
            return
        key = (dt, v.name in io)
        if dt in never and (dt, v.name) not in seen_types:
            seen_types.add((dt, v.name))
            findings.append(Finding(ERROR, "TRT020", _label(where) if where else v.name,
                                    where.op_type if where else None,
                                    f"{v.name!r} has type {dt.name}, which TensorRT does not "
                                    "support"))
        elif dt == ir.DataType.UINT8 and v.name not in io and where is not None and \
                key not in seen_types:
            seen_types.add(key)
            findings.append(Finding(ERROR, "TRT021", _label(where), where.op_type,
                                    f"{v.name!r} is UINT8 inside the network (only network "
                                    "inputs and outputs may be)",
                                    "cast it to INT32 or FLOAT where it is made"))
        elif dt == ir.DataType.DOUBLE and ("double", v.name) not in seen_types:
            seen_types.add(("double", v.name))
            findings.append(Finding(WARNING, "TRT022", _label(where) if where else v.name,
                                    where.op_type if where else None,
                                    f"{v.name!r} is DOUBLE: TensorRT narrows it to FLOAT",
                                    "narrow to FLOAT (done by convert --target tensorrt)",
                                    fixable=True))

    for v in list(graph.inputs) + list(graph.initializers.values()):
        check_value(v, None)
    for node in _all_nodes(graph):
        name = _label(node)
        if node.domain not in ("", "ai.onnx"):
            findings.append(Finding(ERROR, "TRT003", name, f"{node.domain}::{node.op_type}",
                                    f"operator {node.op_type} of domain {node.domain!r} needs a "
                                    "TensorRT plugin", "register a plugin for it"))
            continue
        entry = ops.get(node.op_type)
        if entry is None:
            findings.append(Finding(ERROR, "TRT002", name, node.op_type,
                                    f"{node.op_type} is not in TensorRT {target.version}'s "
                                    "operator table"))
            continue
        if not entry["supported"]:
            findings.append(Finding(ERROR, "TRT001", name, node.op_type,
                                    f"{node.op_type} is not supported by TensorRT "
                                    f"{target.version}'s ONNX parser"))
            continue
        types = set(entry.get("types") or ())
        x = next((i for i in node.inputs if i is not None), None)
        if types and x is not None and x.dtype in _TYPE_NAMES:
            tname = _TYPE_NAMES[x.dtype]
            if tname not in types and tname != "DOUBLE" and node.op_type not in (
                    "Cast", "Shape", "Size", "Constant", "Identity"):
                findings.append(Finding(WARNING, "TRT023", name, node.op_type,
                                        f"{node.op_type} on {tname} is not in the parser's "
                                        f"types for it ({', '.join(sorted(types))})"))
        for op, index, input_name, since, vers in CONSTANT_INPUTS:
            if op == node.op_type and _applies(target.version, vers) and opset >= since and \
                    len(node.inputs) > index and not _is_constant(node.inputs[index]):
                findings.append(Finding(
                    ERROR, "TRT030", name, node.op_type,
                    f"input {input_name!r} of {op} must be a constant",
                    "fix the input shapes (--input) so that shape computations fold",
                    fixable=True))
        for fn in _RULES.get(node.op_type, ()):
            findings.extend(fn(node, target, opset))
        for out in node.outputs:
            if out is not None:
                check_value(out, node)
    for v in graph.inputs:
        if v.shape is None or any(not isinstance(d, int) for d in v.shape):
            findings.append(Finding(
                WARNING, "TRT060", None, None,
                f"input {v.name!r} has dynamic dims {_dims(v)}: the engine needs an "
                "optimisation profile (min/opt/max) for them",
                "give --input-range NAME:MIN/OPT/MAX (convert --target tensorrt writes the "
                "profile and the trtexec command)", fixable=True))
    size = sum(v.const_value.nbytes for v in graph.initializers.values()
               if v.const_value is not None)
    if size > EXTERNAL_DATA_LIMIT and external_data is False:
        findings.append(Finding(ERROR, "TRT070", None, None,
                                f"the weights ({size / 1e9:.1f} GB) exceed protobuf's 2 GB and "
                                "must be stored as external data",
                                "drop --no-external-data", fixable=True))
    return findings


def _dims(v: ir.Value) -> str:
    if v.shape is None:
        return "(unknown rank)"
    return "x".join(str(d) if isinstance(d, int) else str(d or "?") for d in v.shape)


# -- fixes -----------------------------------------------------------------------------------
def narrow_double(model: ir.Model) -> int:
    """DOUBLE initializers, Constant values, Cast targets and value types become FLOAT."""
    changed = 0
    for name, value in list(model.graph.initializers.items()):
        if value.dtype == ir.DataType.DOUBLE and value.const_value is not None:
            value.const_value = ir.tensor(value.const_value.numpy().astype(np.float32), name=name)
            value.dtype = ir.DataType.FLOAT
            changed += 1
    for node in _all_nodes(model.graph):
        if node.op_type == "Cast" and _attr(node, "to") == ir.DataType.DOUBLE:
            node.attributes["to"] = ir.AttrInt64("to", int(ir.DataType.FLOAT))
            changed += 1
        if node.op_type == "Constant" and "value" in node.attributes:
            t = node.attributes["value"].value
            if t.dtype == ir.DataType.DOUBLE:
                node.attributes["value"] = ir.AttrTensor(
                    "value", ir.tensor(t.numpy().astype(np.float32)))
                changed += 1
        for out in node.outputs:
            if out is not None and out.dtype == ir.DataType.DOUBLE:
                out.dtype = ir.DataType.FLOAT
    for v in list(model.graph.inputs) + list(model.graph.outputs):
        if v.dtype == ir.DataType.DOUBLE:
            v.dtype = ir.DataType.FLOAT
            changed += 1
    return changed


def relabel_einsum(model: ir.Model, target: Target) -> int:
    """Einsum equations the parser rejects rewritten to equivalent ones it takes."""
    changed = 0
    for node in _all_nodes(model.graph):
        if node.op_type == "Einsum" and node.domain == "" and any(
                f.fixable for f in _einsum(node, target, 0)):
            node.attributes["equation"] = ir.AttrString("equation",
                                                        _einsum_rewrite(node, target))
            changed += 1
    return changed


def _initializer(model: ir.Model, name: str, array: np.ndarray) -> ir.Value:
    taken = set(model.graph.initializers) | {v.name for n in model.graph.all_nodes()
                                             for v in n.outputs if v is not None}
    base, i = name, 1
    while name in taken:
        name, i = f"{base}_{i}", i + 1
    value = ir.Value(name=name, type=ir.TensorType(ir.DataType.FLOAT),
                     shape=ir.Shape(array.shape), const_value=ir.tensor(array, name=name))
    model.graph.register_initializer(value)
    return value


def rewrite_resize(model: ir.Model) -> int:
    """Resize coordinate modes the parser rejects replaced by accepted ones that map every
    output pixel to the same input coordinate; antialias dropped where no axis shrinks."""
    changed = 0
    for node in _all_nodes(model.graph):
        if node.op_type != "Resize" or node.domain != "":
            continue
        mode = _attr(node, "coordinate_transformation_mode")
        if mode is not None and mode not in RESIZE_ALLOWED["coordinate_transformation_mode"]:
            same = _resize_coordinates_equivalent(node)
            if same is not None:
                node.attributes["coordinate_transformation_mode"] = ir.AttrString(
                    "coordinate_transformation_mode", same)
                if mode == "tf_crop_and_resize":  # roi and extrapolation serve only that mode
                    node.attributes.pop("extrapolation_value", None)
                    node.replace_input_with(1, None)
                changed += 1
        axes = _attr(node, "axes")
        geometry = _resize_geometry(node)
        if axes is not None and geometry is not None and len(node.inputs) > 2 and \
                _const(node.inputs[2]) is not None:
            full = np.asarray(geometry[2], np.float32)
            node.replace_input_with(2, _initializer(model, f"{node.name or 'resize'}_scales",
                                                    full))
            node.attributes.pop("axes")
            changed += 1
        if _attr(node, "antialias", 0) and _resize_never_shrinks(node):
            node.attributes["antialias"] = ir.AttrInt64("antialias", 0)
            changed += 1
    return changed


def prepare(model: ir.Model, target: Target, opset: int | None) -> int | None:
    """Apply the fixes that keep the numbers; returns the opset to export at."""
    if any(f.code == "TRT022" for f in check(model, target)):
        narrow_double(model)
    relabel_einsum(model, target)
    rewrite_resize(model)
    current = opset or model.opset_imports.get("", 0)
    lo, hi = target.opsets
    if not lo <= current <= hi:
        return min(max(current, lo), hi)
    return opset


def refuse_if_errors(model: ir.Model, target: Target, path: str,
                     external_data: bool | None = None) -> list[Finding]:
    findings = [f for f in check(model, target, external_data) if f.code != "TRT010"]
    errors = [f for f in findings if f.severity == ERROR]
    if errors:
        shown = "; ".join(f"{f.code} {f.node or ''} {f.message}".strip() for f in errors[:5])
        more = f" and {len(errors) - 5} more" if len(errors) > 5 else ""
        raise ModelportError(f"TensorRT {target.version} would reject the model: {shown}{more} "
                             f"(modelport check --target {target.label} lists every finding)",
                             path=path)
    return findings


def parse_ranges(specs: tuple[str, ...]) -> dict[str, tuple[list[int], list[int], list[int]]]:
    """``NAME:MIN/OPT/MAX``, each a comma-separated shape, e.g. ``x:1,3,224,224/8,3,224,224/32,
    3,224,224``."""
    out = {}
    for spec in specs:
        name, sep, shapes = spec.rpartition(":")
        parts = shapes.split("/")
        try:
            dims = [[int(d) for d in p.replace("x", ",").split(",") if d] for p in parts]
        except ValueError:
            dims = []
        if not sep or not name or len(dims) != 3 or len({len(d) for d in dims}) != 1 or \
                any(not (a <= b <= c) for a, b, c in zip(*dims)) or \
                any(d < 1 for p in dims for d in p):
            raise ModelportError(f"--input-range {spec!r}: expected NAME:MIN/OPT/MAX with three "
                                 "shapes of one rank, min <= opt <= max, e.g. "
                                 "x:1,3,224,224/8,3,224,224/32,3,224,224")
        out[name] = (dims[0], dims[1], dims[2])
    return out


def profile(model: ir.Model, ranges: dict[str, tuple]) -> tuple[dict[str, Any], list[str]]:
    """An optimisation profile for every input with dynamic dims, and notes on the defaults
    used where ``ranges`` gives none (batch 1/1/N: min 1, opt 1, max 32; other dims as given)."""
    prof: dict[str, Any] = {}
    notes: list[str] = []
    for v in model.graph.inputs:
        dims = list(v.shape) if v.shape is not None else []
        static = all(isinstance(d, int) for d in dims)
        if v.name in ranges:
            lo, opt, hi = ranges[v.name]
            if len(lo) != len(dims):
                raise ModelportError(f"--input-range {v.name}: rank {len(lo)}, the input has "
                                     f"rank {len(dims)}")
            prof[v.name] = {"min": lo, "opt": opt, "max": hi}
        elif not static:
            prof[v.name] = {key: [d if isinstance(d, int) else n for d in dims]
                            for key, n in (("min", 1), ("opt", 1), ("max", 32))}
            notes.append(f"{v.name}: no --input-range given; dynamic dims use min 1, opt 1, "
                         "max 32")
    return prof, notes


def trtexec_command(onnx_path: str, target: Target, prof: dict[str, Any]) -> str:
    args = ["trtexec", f"--onnx={onnx_path}",
            f"--saveEngine={os.path.splitext(onnx_path)[0]}.engine"]
    if prof:
        for key, flag in (("min", "--minShapes"), ("opt", "--optShapes"), ("max", "--maxShapes")):
            args.append(flag + "=" + ",".join(
                f"{name}:{'x'.join(map(str, p[key]))}" for name, p in prof.items()))
    if target.major < 10:
        args.append("--fp16")  # TensorRT 10 builds strongly typed networks from the ONNX types
    return " ".join(shlex.quote(a) for a in args)


def write_sidecar(onnx_path: str, model: ir.Model, target: Target, ranges: dict,
                  findings: list[Finding]) -> str:
    prof, notes = profile(model, ranges)
    doc = {"target": "tensorrt", "version": target.version,
           "table_source": target.table["source"], "onnx": os.path.basename(onnx_path),
           "profile": prof, "notes": notes,
           "trtexec": trtexec_command(onnx_path, target, prof),
           "findings": [f.to_dict() for f in findings]}
    path = re.sub(r"\.onnx$", "", onnx_path) + ".trt.json"
    tmp = f"{path}.modelport-tmp-{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(doc, f, indent=2)
    os.replace(tmp, path)
    return path
