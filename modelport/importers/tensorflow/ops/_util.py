"""Helpers shared by the op translators: layouts, weights re-laid-out lazily, axes."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import onnx_ir as ir

from modelport.graph_ir import lazy_tensor
from modelport.graph_ir.layout import to_channels_first, to_channels_last

INT64_MAX = np.iinfo(np.int64).max


def channels_last(node) -> bool:
    return not node.s("data_format", "NHWC").startswith("NC")


def to_cf(ctx, x: ir.Value, rank: int) -> ir.Value:
    return ctx.op("Transpose", x, perm=to_channels_first(rank))


def to_cl(ctx, x: ir.Value, rank: int) -> ir.Value:
    return ctx.op("Transpose", x, perm=to_channels_last(rank))


def spatial(values: Sequence[int], rank: int, cl: bool) -> list[int]:
    """The spatial entries of a per-dimension attribute (strides, dilations, ksize)."""
    values = list(values) or [1] * rank
    return values[1:-1] if cl else values[2:]


def weight(ctx, w: ir.Value, fn: Callable[[np.ndarray], np.ndarray], shape: Sequence[int],
           onnx_fn: Callable[[ir.Value], ir.Value]) -> ir.Value:
    """A weight re-laid-out: a new lazy initializer if ``w`` is one, else the ONNX ops."""
    tensor = w.const_value
    if tensor is not None:
        def read(t=tensor, f=fn):
            return f(np.asarray(t.numpy()))

        return ctx.b.initializer(f"{w.name}/{ctx.node.op}",
                                 lazy_tensor(read, tensor.dtype, list(shape)))
    return onnx_fn(w)


def axis_of(ctx, value: ir.Value, what: str = "axis") -> int:
    return int(np.asarray(ctx.need_const(value, what)).reshape(-1)[0])


def int64(ctx, value: ir.Value) -> ir.Value:
    return ctx.cast(value, ir.DataType.INT64)


def same_pads(in_sizes, kernels, strides, dilations) -> list[int]:
    """TensorFlow's SAME padding: total = max((ceil(in/s)-1)*s + (k-1)*d + 1 - in, 0), the
    extra element at the end; as ONNX pads [begins..., ends...]."""
    begins, ends = [], []
    for n, k, s, d in zip(in_sizes, kernels, strides, dilations):
        out = -(-n // s)
        total = max((out - 1) * s + (k - 1) * d + 1 - n, 0)
        begins.append(total // 2)
        ends.append(total - total // 2)
    return begins + ends


def pad_attrs(ctx, node, x_cf: ir.Value, kernels, strides, dilations) -> dict:
    """ONNX padding attributes of a TF conv/pool (x in channels-first layout)."""
    padding = node.s("padding", "VALID")
    n = len(kernels)
    if padding == "VALID":
        return {"pads": [0] * (2 * n)}
    if padding == "EXPLICIT":
        explicit = node.ints("explicit_paddings")
        pairs = [explicit[2 * i: 2 * i + 2] for i in range(len(explicit) // 2)]
        sp = pairs[1:-1] if channels_last(node) else pairs[2:]
        return {"pads": [p[0] for p in sp] + [p[1] for p in sp]}
    shape = ctx.shape(x_cf)
    sizes = shape[2:] if shape is not None else None
    if sizes is not None and all(isinstance(d, int) for d in sizes):
        return {"pads": same_pads(sizes, kernels, strides, dilations)}
    return {"auto_pad": "SAME_UPPER"}
