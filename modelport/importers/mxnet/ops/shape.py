"""Shape and layout operators: Flatten, Reshape (codes 0, -1, -2, -3, -4 and ``reverse``),
transpose, expand_dims, squeeze, Concat, stack, SliceChannel / split, slice, slice_axis,
slice_like, Pad, tile, repeat, reshape_like, shape_array, UpSampling, BilinearResize2D."""

from __future__ import annotations

import numpy as np

from modelport.importers.mxnet.ops._util import norm_axis
from modelport.importers.mxnet.symbol import BadNodeError
from modelport.importers.mxnet.table import mxnet_op


@mxnet_op("Flatten", "flatten")
def flatten(ctx, node, inputs):
    x = ctx.data(inputs[0])
    shape = ctx.shape(x)
    rest = int(np.prod(shape[1:], dtype=np.int64)) if len(shape) > 1 else 1
    return [ctx.op("Reshape", x, ctx.ints([shape[0], rest]))]


def mxnet_reshape(src: tuple[int, ...], spec: tuple[int, ...], reverse: bool = False
                  ) -> list[int]:
    """MXNet's Reshape shape inference, special codes included."""
    src, spec = list(src), list(spec)
    if reverse:
        src.reverse()
        spec.reverse()
    out: list[int] = []
    i = j = 0
    infer = -1
    while j < len(spec):
        p = spec[j]
        if p == 0:
            out.append(src[i])
            i += 1
        elif p == -1:
            if infer >= 0:
                raise BadNodeError("more than one -1 in the shape")
            infer = len(out)
            out.append(1)
            i += 1
        elif p == -2:
            out.extend(src[i:])
            i = len(src)
        elif p == -3:
            out.append(src[i] * src[i + 1])
            i += 2
        elif p == -4:
            d1, d2 = spec[j + 1], spec[j + 2]
            j += 2
            if d1 == -1:
                d1 = src[i] // d2
            if d2 == -1:
                d2 = src[i] // d1
            if d1 * d2 != src[i]:
                raise BadNodeError(f"-4 split {d1}x{d2} does not match dim {src[i]}")
            out += [d1, d2]
            i += 1
        elif p > 0:
            out.append(p)
            i += 1
        else:
            raise BadNodeError(f"invalid shape code {p}")
        j += 1
    total = int(np.prod(src, dtype=np.int64))
    if infer >= 0:
        known = int(np.prod([d for k, d in enumerate(out) if k != infer], dtype=np.int64))
        out[infer] = total // known if known else 0
    if int(np.prod(out, dtype=np.int64)) != total:
        raise BadNodeError(f"cannot reshape {list(src)} to {out}")
    if reverse:
        out.reverse()
    return out


@mxnet_op("Reshape", "reshape")
def reshape(ctx, node, inputs):
    x = ctx.data(inputs[0])
    a = node.attrs
    src = ctx.shape(x)
    if "shape" in a and a.ints("shape"):
        target = mxnet_reshape(src, a.ints("shape"), a.bool("reverse", False))
    elif "target_shape" in a:  # the deprecated form
        t = list(a.ints("target_shape"))
        if a.bool("keep_highest", False):
            t = [src[0]] + t
        target = mxnet_reshape(src, tuple(d if d else -1 for d in t))
    else:
        raise ctx.fail("Reshape has no shape")
    return [ctx.op("Reshape", x, ctx.ints(target))]


@mxnet_op("transpose")
def transpose(ctx, node, inputs):
    x = ctx.data(inputs[0])
    axes = node.attrs.ints("axes")
    rank = ctx.rank(x)
    perm = [norm_axis(p, rank) for p in axes] if axes else list(range(rank))[::-1]
    return [ctx.op("Transpose", x, perm=perm)]


@mxnet_op("SwapAxis", "swapaxes")
def swap_axis(ctx, node, inputs):
    x = ctx.data(inputs[0])
    rank = ctx.rank(x)
    d1 = norm_axis(node.attrs.int("dim1", 0), rank)
    d2 = norm_axis(node.attrs.int("dim2", 0), rank)
    perm = list(range(rank))
    perm[d1], perm[d2] = perm[d2], perm[d1]
    return [ctx.op("Transpose", x, perm=perm)]


@mxnet_op("expand_dims")
def expand_dims(ctx, node, inputs):
    x = ctx.data(inputs[0])
    axis = node.attrs.int("axis")
    axis = axis + ctx.rank(x) + 1 if axis < 0 else axis
    return [ctx.op("Unsqueeze", x, ctx.ints([axis], "axes"))]


@mxnet_op("squeeze")
def squeeze(ctx, node, inputs):
    x = ctx.data(inputs[0])
    shape = ctx.shape(x)
    if "axis" in node.attrs and node.attrs.ints("axis"):
        axes = [norm_axis(v, len(shape)) for v in node.attrs.ints("axis")]
    else:
        axes = [i for i, d in enumerate(shape) if d == 1]
    if len(axes) == len(shape):  # MXNet keeps one dimension
        return [ctx.op("Reshape", x, ctx.ints([1]))]
    return [ctx.op("Squeeze", x, ctx.ints(axes, "axes"))]


@mxnet_op("Concat", "concat")
def concat(ctx, node, inputs):
    values = [ctx.data(v) for v in inputs]
    axis = norm_axis(node.attrs.int("dim", 1), ctx.rank(values[0]))
    if len(values) == 1:
        return [ctx.op("Identity", values[0])]
    return [ctx.op("Concat", *values, axis=axis)]


@mxnet_op("stack")
def stack(ctx, node, inputs):
    values = [ctx.data(v) for v in inputs]
    axis = node.attrs.int("axis", 0)
    axis = axis + ctx.rank(values[0]) + 1 if axis < 0 else axis
    parts = [ctx.op("Unsqueeze", v, ctx.ints([axis], "axes")) for v in values]
    return [ctx.op("Concat", *parts, axis=axis) if len(parts) > 1 else parts[0]]


@mxnet_op("SliceChannel", "split")
def slice_channel(ctx, node, inputs):
    x = ctx.data(inputs[0])
    a = node.attrs
    shape = ctx.shape(x)
    n = a.required_int("num_outputs")
    axis = norm_axis(a.int("axis", 1), len(shape))
    if shape[axis] % n:
        raise ctx.fail(f"cannot split dim {shape[axis]} into {n} equal parts")
    parts = ctx.op("Split", x, ctx.ints([shape[axis] // n] * n, "split"), axis=axis,
                   outputs=n)
    parts = list(parts) if n > 1 else [parts]
    if a.bool("squeeze_axis", False):
        if shape[axis] // n != 1:
            raise ctx.fail("squeeze_axis needs parts of size 1")
        parts = [ctx.op("Squeeze", p, ctx.ints([axis], "axes")) for p in parts]
    return parts


def _slice(ctx, x, starts, ends, axes, steps=None):
    args = [x, ctx.ints(starts, "starts"), ctx.ints(ends, "ends"), ctx.ints(axes, "axes")]
    if steps is not None:
        args.append(ctx.ints(steps, "steps"))
    return ctx.op("Slice", *args)


@mxnet_op("slice", "crop", "_slice")
def slice_(ctx, node, inputs):
    x = ctx.data(inputs[0])
    a = node.attrs
    shape = ctx.shape(x)
    begin, end, step = a.optional_ints("begin"), a.optional_ints("end"), a.optional_ints("step")
    starts, ends, axes, steps = [], [], [], []
    big = np.iinfo(np.int64).max
    for i, b in enumerate(begin):
        s = step[i] if i < len(step) and step[i] is not None else 1
        e = end[i] if i < len(end) else None
        if b is None:
            b = 0 if s > 0 else shape[i] - 1
        if e is None:
            e = big if s > 0 else -big
        starts.append(b)
        ends.append(e)
        axes.append(i)
        steps.append(s)
    return [_slice(ctx, x, starts, ends, axes, steps)]


@mxnet_op("slice_axis")
def slice_axis(ctx, node, inputs):
    x = ctx.data(inputs[0])
    a = node.attrs
    axis = norm_axis(a.required_int("axis"), ctx.rank(x))
    begin = a.int("begin", 0)
    end = a.int("end")
    if end is None:
        end = np.iinfo(np.int64).max
    return [_slice(ctx, x, [begin], [end], [axis])]


@mxnet_op("slice_like")
def slice_like(ctx, node, inputs):
    x, like = ctx.data(inputs[0]), ctx.data(inputs[1])
    shape, target = ctx.shape(x), ctx.shape(like)
    axes = node.attrs.ints("axes")
    axes = [norm_axis(v, len(shape)) for v in axes] if axes else list(range(len(target)))
    return [_slice(ctx, x, [0] * len(axes), [target[i] for i in axes], axes)]


@mxnet_op("Pad", "pad")
def pad(ctx, node, inputs):
    x = ctx.data(inputs[0])
    a = node.attrs
    widths = list(a.ints("pad_width"))
    rank = ctx.rank(x)
    begin, end = widths[0::2], widths[1::2]
    if len(begin) != rank:
        raise ctx.fail(f"pad_width {widths} does not fit rank {rank}")
    mode = a.str("mode", "constant")
    onnx_mode = {"constant": "constant", "edge": "edge", "reflect": "reflect"}.get(mode)
    if onnx_mode is None:
        raise ctx.fail(f"pad mode {mode!r} is not supported")
    args = [x, ctx.ints(begin + end, "pads")]
    if mode == "constant":
        args.append(ctx.scalar(a.float("constant_value", 0.0), x, "value"))
    return [ctx.op("Pad", *args, mode=onnx_mode)]


@mxnet_op("tile")
def tile(ctx, node, inputs):
    x = ctx.data(inputs[0])
    reps = list(node.attrs.ints("reps"))
    rank = ctx.rank(x)
    if len(reps) > rank:
        x = ctx.op("Reshape", x, ctx.ints([1] * (len(reps) - rank) + list(ctx.shape(x))))
    reps = [1] * (ctx.rank(x) - len(reps)) + reps
    return [ctx.op("Tile", x, ctx.ints(reps, "reps"))]


@mxnet_op("repeat")
def repeat(ctx, node, inputs):
    x = ctx.data(inputs[0])
    n = node.attrs.int("repeats")
    if "axis" not in node.attrs:
        x = ctx.op("Reshape", x, ctx.ints([-1]))
        axis = 0
    else:
        axis = norm_axis(node.attrs.int("axis"), ctx.rank(x))
    shape = list(ctx.shape(x))
    expanded = ctx.op("Unsqueeze", x, ctx.ints([axis + 1], "axes"))
    tiles = [1] * (len(shape) + 1)
    tiles[axis + 1] = n
    tiled = ctx.op("Tile", expanded, ctx.ints(tiles, "reps"))
    shape[axis] *= n
    return [ctx.op("Reshape", tiled, ctx.ints(shape))]


@mxnet_op("reshape_like")
def reshape_like(ctx, node, inputs):
    x, like = ctx.data(inputs[0]), ctx.data(inputs[1])
    a = node.attrs
    src, target = list(ctx.shape(x)), list(ctx.shape(like))
    lb, le = a.int("lhs_begin"), a.int("lhs_end")
    rb, re_ = a.int("rhs_begin"), a.int("rhs_end")
    if lb is None and le is None and rb is None and re_ is None:
        return [ctx.op("Reshape", x, ctx.ints(target))]
    lb, le = lb or 0, len(src) if le is None else le
    rb, re_ = rb or 0, len(target) if re_ is None else re_
    lb, le = [v + len(src) if v < 0 else v for v in (lb, le)]
    rb, re_ = [v + len(target) if v < 0 else v for v in (rb, re_)]
    return [ctx.op("Reshape", x, ctx.ints(src[:lb] + target[rb:re_] + src[le:]))]


@mxnet_op("shape_array")
def shape_array(ctx, node, inputs):
    x = ctx.data(inputs[0])
    return [ctx.op("Identity", ctx.ints(ctx.shape(x), "shape"))]


@mxnet_op("size_array")
def size_array(ctx, node, inputs):
    x = ctx.data(inputs[0])
    return [ctx.op("Identity", ctx.ints([int(np.prod(ctx.shape(x)))], "size"))]


@mxnet_op("UpSampling")
def upsampling(ctx, node, inputs):
    a = node.attrs
    scale = a.required_int("scale")
    kind = a.str("sample_type", "nearest")
    if kind == "bilinear":
        x = ctx.data(inputs[0])
        c = ctx.shape(x)[1]
        k = 2 * scale - scale % 2
        p = int(np.ceil((scale - 1) / 2.0))
        w = ctx.weight(inputs[1], [c, 1, k, k], "weight")
        return [ctx.op("ConvTranspose", x, w, kernel_shape=[k, k], strides=[scale, scale],
                       pads=[p, p, p, p], group=c)]
    if kind != "nearest":
        raise ctx.fail(f"sample_type {kind!r} is not supported")
    values = [ctx.data(v) for v in inputs]
    first = ctx.shape(values[0])
    th, tw = first[2] * scale, first[3] * scale
    outs = []
    for v in values:
        h, w = ctx.shape(v)[2:]
        s = [1.0, 1.0, th / h, tw / w]
        outs.append(ctx.op("Resize", v, None, ctx.const(np.asarray(s, np.float32), "scales"),
                           mode="nearest", coordinate_transformation_mode="asymmetric",
                           nearest_mode="floor"))
    if len(outs) == 1:
        return outs
    if a.str("multi_input_mode", "concat") == "sum":
        return [ctx.op("Sum", *outs)]
    return [ctx.op("Concat", *outs, axis=1)]


@mxnet_op("_contrib_BilinearResize2D")
def bilinear_resize(ctx, node, inputs):
    x = ctx.data(inputs[0])
    a = node.attrs
    n, c, h, w = ctx.shape(x)
    mode = a.str("mode", "size")
    if mode == "size":
        oh, ow = a.int("height", 1), a.int("width", 1)
        sh, sw = a.float("scale_height"), a.float("scale_width")
        if sh is not None:
            oh = int(h * sh)
        if sw is not None:
            ow = int(w * sw)
    elif mode in ("odd_scale", "like"):
        if mode == "like":
            _, _, oh, ow = ctx.shape(ctx.data(inputs[1]))
        else:
            oh, ow = int(h * a.float("scale_height")), int(w * a.float("scale_width"))
    else:
        raise ctx.fail(f"mode {mode!r} is not supported")
    transform = "align_corners" if a.bool("align_corners", True) else "half_pixel"
    return [ctx.op("Resize", x, None, None, ctx.ints([n, c, oh, ow], "sizes"), mode="linear",
                   coordinate_transformation_mode=transform)]

