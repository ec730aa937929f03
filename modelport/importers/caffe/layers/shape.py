"""Layers that move, combine or reduce data: Concat, Eltwise, Softmax, Flatten, Reshape, Split,
Slice, Crop, Permute, Reduction, ArgMax, Tile, ShuffleChannel, Silence."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from modelport.importers.caffe.layers._util import axis as norm_axis
from modelport.importers.caffe.table import caffe_layer


@caffe_layer("Concat")
def concat(ctx, layer, inputs):
    p = layer.concat_param
    shapes = [ctx.shape(v) for v in inputs]
    rank = len(shapes[0])
    ax = norm_axis(p.axis if p.HasField("axis") or not p.HasField("concat_dim")
                   else p.concat_dim, rank)
    if len(inputs) == 1:
        return [ctx.op("Identity", inputs[0], shape=shapes[0])]
    out = list(shapes[0])
    out[ax] = sum(s[ax] for s in shapes)
    return [ctx.op("Concat", *inputs, axis=ax, shape=out)]


@caffe_layer("Eltwise")
def eltwise(ctx, layer, inputs):
    p = layer.eltwise_param
    shape = ctx.shape(inputs[0])
    if p.operation == 0:  # PROD
        y = inputs[0]
        for v in inputs[1:]:
            y = ctx.op("Mul", y, v, shape=shape)
        return [y]
    if p.operation == 2:  # MAX
        return [ctx.op("Max", *inputs, shape=shape)]
    coeffs = list(p.coeff)
    if coeffs and len(coeffs) != len(inputs):
        raise ctx.fail(f"{len(coeffs)} coefficients for {len(inputs)} bottoms")
    terms = []
    for i, v in enumerate(inputs):
        c = coeffs[i] if coeffs else 1.0
        if c == 1.0:
            terms.append(v)
        elif c == -1.0:
            terms.append(ctx.op("Neg", v, shape=shape))
        else:
            terms.append(ctx.op("Mul", v, ctx.const(float(c), f"coeff{i}"), shape=shape))
    if len(terms) == 1:
        return [ctx.op("Identity", terms[0], shape=shape)]
    if len(terms) == 2:
        return [ctx.op("Add", *terms, shape=shape)]
    return [ctx.op("Sum", *terms, shape=shape)]


@caffe_layer("Softmax")
def softmax(ctx, layer, inputs):
    (x,) = inputs
    shape = ctx.shape(x)
    return [ctx.op("Softmax", x, axis=norm_axis(layer.softmax_param.axis, len(shape)),
                   shape=shape)]


def _reshape(ctx, x, out):
    return ctx.op("Reshape", x, ctx.ints(out), shape=out)


@caffe_layer("Flatten")
def flatten(ctx, layer, inputs):
    (x,) = inputs
    shape = ctx.shape(x)
    p = layer.flatten_param
    start = norm_axis(p.axis, len(shape))
    end = norm_axis(p.end_axis, len(shape))
    out = [*shape[:start], int(np.prod(shape[start:end + 1], dtype=np.int64)), *shape[end + 1:]]
    return [_reshape(ctx, x, out)]


@caffe_layer("Reshape")
def reshape(ctx, layer, inputs):
    (x,) = inputs
    shape = list(ctx.shape(x))
    p = layer.reshape_param
    rank = len(shape)
    start = p.axis + rank + 1 if p.axis < 0 else p.axis
    end = rank if p.num_axes == -1 else start + p.num_axes
    if not 0 <= start <= end <= rank:
        raise ctx.fail(f"reshape axis {p.axis} / num_axes {p.num_axes} do not fit rank {rank}")
    spec = list(p.shape.dim)
    middle = []
    infer = None
    for i, d in enumerate(spec):
        if d == 0:
            if start + i >= rank:
                raise ctx.fail("reshape dim 0 copies an axis the input does not have")
            middle.append(shape[start + i])
        elif d == -1:
            if infer is not None:
                raise ctx.fail("reshape has more than one -1")
            infer = i
            middle.append(1)
        else:
            middle.append(int(d))
    total = int(np.prod(shape, dtype=np.int64))
    out = shape[:start] + middle + shape[end:]
    if infer is not None:
        known = int(np.prod(out, dtype=np.int64))
        if known == 0 or total % known:
            raise ctx.fail(f"cannot reshape {shape} to {list(spec)}")
        out[start + infer] = total // known
    if int(np.prod(out, dtype=np.int64)) != total:
        raise ctx.fail(f"cannot reshape {shape} to {out}")
    return [_reshape(ctx, x, out)]


@caffe_layer("Split")
def split(ctx, layer, inputs):
    (x,) = inputs
    return [x for _ in layer.top]


@caffe_layer("Silence")
def silence(ctx, layer, inputs):
    return []


@caffe_layer("Slice")
def slice_(ctx, layer, inputs):
    (x,) = inputs
    shape = ctx.shape(x)
    p = layer.slice_param
    ax = norm_axis(p.axis if p.HasField("axis") or not p.HasField("slice_dim")
                   else p.slice_dim, len(shape))
    n = len(layer.top)
    size = shape[ax]
    points = list(p.slice_point)
    if points:
        if len(points) != n - 1:
            raise ctx.fail(f"{len(points)} slice points for {n} tops")
        bounds = [0, *points, size]
        sizes = [bounds[i + 1] - bounds[i] for i in range(n)]
    else:
        if size % n:
            raise ctx.fail(f"axis {ax} of size {size} does not split into {n} equal parts")
        sizes = [size // n] * n
    if any(s <= 0 for s in sizes):
        raise ctx.fail(f"slice sizes {sizes} are not all positive")
    if n == 1:
        return [ctx.op("Identity", x, shape=shape)]
    outs = ctx.b.op("Split", x, ctx.ints(sizes, "split"), axis=ax, outputs=n)
    result = []
    for v, s in zip(outs, sizes):
        out = list(shape)
        out[ax] = s
        v.shape = ir.Shape(out)
        v.type = ir.TensorType(ir.DataType.FLOAT)
        result.append(v)
    return result


@caffe_layer("Crop")
def crop(ctx, layer, inputs):
    x, ref = inputs
    shape, ref_shape = ctx.shape(x), ctx.shape(ref)
    p = layer.crop_param
    ax = norm_axis(p.axis, len(shape))
    offsets = list(p.offset)
    starts, ends, axes = [], [], []
    out = list(shape)
    for i in range(ax, len(shape)):
        off = 0
        if len(offsets) == 1:
            off = offsets[0]
        elif len(offsets) > 1:
            off = offsets[i - ax]
        if off + ref_shape[i] > shape[i]:
            raise ctx.fail(f"crop of axis {i} ({ref_shape[i]} from offset {off}) exceeds "
                           f"its size {shape[i]}")
        starts.append(off)
        ends.append(off + ref_shape[i])
        axes.append(i)
        out[i] = ref_shape[i]
    return [ctx.op("Slice", x, ctx.ints(starts, "starts"), ctx.ints(ends, "ends"),
                   ctx.ints(axes, "axes"), shape=out)]


@caffe_layer("Permute")
def permute(ctx, layer, inputs):
    (x,) = inputs
    shape = ctx.shape(x)
    order = [int(o) for o in layer.permute_param.order]
    for i in range(len(shape)):  # SSD's Permute completes a partial order with the rest
        if i not in order:
            order.append(i)
    if sorted(order) != list(range(len(shape))):
        raise ctx.fail(f"permute order {order} does not fit rank {len(shape)}")
    if order == list(range(len(shape))):
        return [ctx.op("Identity", x, shape=shape)]
    return [ctx.op("Transpose", x, perm=order, shape=[shape[o] for o in order])]


@caffe_layer("Reduction")
def reduction(ctx, layer, inputs):
    (x,) = inputs
    shape = ctx.shape(x)
    p = layer.reduction_param
    ax = norm_axis(p.axis, len(shape))
    axes = list(range(ax, len(shape)))
    out = list(shape[:ax])
    op = {1: "ReduceSum", 2: "ReduceL1", 3: "ReduceSumSquare", 4: "ReduceMean"}[p.operation]
    if not axes:
        y = x
        if p.operation == 2:
            y = ctx.op("Abs", x, shape=shape)
        elif p.operation == 3:
            y = ctx.op("Mul", x, x, shape=shape)
        if y is x:
            y = ctx.op("Identity", x, shape=shape)
    else:
        y = ctx.reduce(op, x, axes, keepdims=0, shape=out)
    if p.coeff != 1.0:
        y = ctx.op("Mul", y, ctx.const(float(p.coeff), "coeff"), shape=out)
    return [y]


@caffe_layer("ArgMax")
def argmax(ctx, layer, inputs):
    (x,) = inputs
    shape = ctx.shape(x)
    p = layer.argmax_param
    k = int(p.top_k)
    if p.HasField("axis"):
        ax = norm_axis(p.axis, len(shape))
        src = x
        out = list(shape)
        out[ax] = k
    else:  # over all but the first axis; output (N, 1 or 2, top_k)
        inner = int(np.prod(shape[1:], dtype=np.int64))
        src = ctx.op("Reshape", x, ctx.ints([shape[0], inner]), shape=[shape[0], inner])
        ax = 1
        out = [shape[0], k]
    values, indices = ctx.b.op("TopK", src, ctx.ints([k], "k"), axis=ax, largest=1, sorted=1,
                               outputs=2)
    values.shape, values.type = ir.Shape(out), ir.TensorType(ir.DataType.FLOAT)
    indices.shape, indices.type = ir.Shape(out), ir.TensorType(ir.DataType.INT64)
    idx = ctx.op("Cast", indices, to=ir.DataType.FLOAT, shape=out)
    if p.HasField("axis"):
        return [values if p.out_max_val else idx]
    final = [shape[0], 2 if p.out_max_val else 1, k]
    if p.out_max_val:
        both = ctx.op("Concat", idx, values, axis=1, shape=[shape[0], 2 * k])
        return [_reshape(ctx, both, final)]
    return [_reshape(ctx, idx, final)]


@caffe_layer("Tile")
def tile(ctx, layer, inputs):
    (x,) = inputs
    shape = ctx.shape(x)
    p = layer.tile_param
    ax = norm_axis(p.axis, len(shape))
    reps = [1] * len(shape)
    reps[ax] = int(p.tiles)
    out = list(shape)
    out[ax] *= int(p.tiles)
    return [ctx.op("Tile", x, ctx.ints(reps, "repeats"), shape=out)]


@caffe_layer("ShuffleChannel")
def shuffle_channel(ctx, layer, inputs):
    (x,) = inputs
    shape = ctx.shape(x)
    g = int(layer.shuffle_channel_param.group)
    n, c = shape[0], shape[1]
    if c % g:
        raise ctx.fail(f"{c} channels do not split into {g} groups")
    rest = list(shape[2:])
    grouped = _reshape(ctx, x, [n, g, c // g, *rest])
    perm = [0, 2, 1, *range(3, 3 + len(rest))]
    swapped = ctx.op("Transpose", grouped, perm=perm, shape=[n, c // g, g, *rest])
    return [_reshape(ctx, swapped, list(shape))]
