"""Merge layers: Add, Subtract, Multiply, Average, Maximum, Minimum, Concatenate, Dot."""

from __future__ import annotations

import numpy as np

from modelport.errors import UnsupportedFeatureError
from modelport.importers.keras.table import KT, Context, Layer, keras_layer, reduce, scalar


def _broadcast_shape(shapes: list[tuple]) -> tuple:
    rank = max(len(s) for s in shapes)
    out = []
    for i in range(rank):
        dims = [s[i - rank + len(s)] for s in shapes if i - rank + len(s) >= 0]
        known = [d for d in dims if isinstance(d, int) and d != 1]
        out.append(known[0] if known else (1 if all(d == 1 for d in dims) else None))
    return tuple(out)


def _chain(ctx: Context, op_type: str, inputs: list[KT]) -> KT:
    perm, values = ctx.common_layout(inputs)
    y = values[0]
    for v in values[1:]:
        y = ctx.op(op_type, y, v)
    shape = _broadcast_shape([t.shape for t in inputs])
    return KT(y, shape, inputs[0].dtype, perm)


@keras_layer("Add")
def add(ctx: Context, layer: Layer, inputs: list[KT]) -> KT:
    return _chain(ctx, "Add", inputs)


@keras_layer("Subtract")
def subtract(ctx: Context, layer: Layer, inputs: list[KT]) -> KT:
    return _chain(ctx, "Sub", inputs)


@keras_layer("Multiply")
def multiply(ctx: Context, layer: Layer, inputs: list[KT]) -> KT:
    return _chain(ctx, "Mul", inputs)


@keras_layer("Maximum")
def maximum(ctx: Context, layer: Layer, inputs: list[KT]) -> KT:
    return _chain(ctx, "Max", inputs)


@keras_layer("Minimum")
def minimum(ctx: Context, layer: Layer, inputs: list[KT]) -> KT:
    return _chain(ctx, "Min", inputs)


@keras_layer("Average")
def average(ctx: Context, layer: Layer, inputs: list[KT]) -> KT:
    s = _chain(ctx, "Add", inputs)
    return s.like(ctx.op("Mul", s.value, scalar(ctx, 1.0 / len(inputs))))


@keras_layer("Concatenate")
def concatenate(ctx: Context, layer: Layer, inputs: list[KT]) -> KT:
    axis = int(layer.config.get("axis", -1)) % inputs[0].rank
    perm, values = ctx.common_layout(inputs)
    ref = KT(values[0], inputs[0].shape, inputs[0].dtype, perm)
    y = ctx.op("Concat", *values, axis=ref.phys_axis(axis))
    dims = [t.shape[axis] for t in inputs]
    shape = list(inputs[0].shape)
    shape[axis] = sum(dims) if all(isinstance(d, int) for d in dims) else None
    return KT(y, tuple(shape), inputs[0].dtype, perm)


def _l2_normalize(ctx: Context, x, axis: int):
    ss = reduce(ctx, "ReduceSum", ctx.op("Mul", x, x), [axis], True)
    return ctx.op("Mul", x, ctx.op("Reciprocal", ctx.op("Sqrt", ctx.op(
        "Max", ss, scalar(ctx, 1e-12)))))


@keras_layer("Dot")
def dot(ctx: Context, layer: Layer, inputs: list[KT]) -> KT:
    """Keras' batch_dot: one axis of each input contracted, per sample; the result holds the
    other axes of the first input, then those of the second (both Keras 2 and 3)."""
    a, b = inputs
    axes = layer.config.get("axes", -1)
    axes = list(axes) if isinstance(axes, (list, tuple)) else [axes, axes]
    if a.rank < 2 or b.rank < 2:
        raise UnsupportedFeatureError(f"Dot of ranks {a.rank} and {b.rank} is not supported")
    ax = [int(axes[0]) % a.rank, int(axes[1]) % b.rank]
    if 0 in ax:
        raise UnsupportedFeatureError("Dot over the batch axis is not supported (Keras refuses it too)")
    x, y = ctx.logical(a), ctx.logical(b)
    if layer.config.get("normalize"):
        x, y = _l2_normalize(ctx, x, ax[0]), _l2_normalize(ctx, y, ax[1])
    if a.rank == 2 and b.rank == 2:
        out = reduce(ctx, "ReduceSum", ctx.op("Mul", x, y), [1], True)
        return KT(out, (a.shape[0], 1), a.dtype)
    if a.rank == 3 and b.rank == 3:
        # Move the contracted axis last in x and first (after batch) in y, then MatMul.
        if ax[0] == 1:
            x = ctx.op("Transpose", x, perm=[0, 2, 1])
        if ax[1] == 2:
            y = ctx.op("Transpose", y, perm=[0, 2, 1])
        out = ctx.op("MatMul", x, y)
        d0 = a.shape[2] if ax[0] == 1 else a.shape[1]
        d1 = b.shape[2] if ax[1] == 1 else b.shape[1]
        return KT(out, (a.shape[0], d0, d1), a.dtype)
    # Any other ranks: an Einsum with the batch letter shared, one contracted letter, and the
    # free axes of x followed by those of y (a rank-2 input leaves no free axis).
    letters = iter("cdefghijklmnopqrstuvwxyz")
    sx = ["a"] + [next(letters) for _ in range(a.rank - 1)]
    sy = ["a"] + [next(letters) for _ in range(b.rank - 1)]
    sx[ax[0]] = sy[ax[1]] = "b"
    free_x = [i for i in range(1, a.rank) if i != ax[0]]
    free_y = [i for i in range(1, b.rank) if i != ax[1]]
    eq = (f"{''.join(sx)},{''.join(sy)}->a" + "".join(sx[i] for i in free_x)
          + "".join(sy[i] for i in free_y))
    out = ctx.op("Einsum", x, y, equation=eq)
    shape = (a.shape[0], *(a.shape[i] for i in free_x), *(b.shape[i] for i in free_y))
    return KT(out, shape, a.dtype)


_ = np
