"""Activations, softmax, pooling, normalisation, quantisation and image ops."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from modelport.importers.tensorflow import dtypes
from modelport.importers.tensorflow.ops._util import (
    channels_last,
    int64,
    pad_attrs,
    spatial,
    to_cf,
    to_cl,
)
from modelport.importers.tensorflow.ops.conv import atrous_conv, fold_batch_norm
from modelport.importers.tensorflow.table import tf_op

_UNARY = {
    "Relu": "Relu", "Elu": "Elu", "Sigmoid": "Sigmoid", "Tanh": "Tanh", "Softplus": "Softplus",
    "Softsign": "Softsign", "Erf": "Erf", "Selu": "Selu",
}


def _unary(onnx_op):
    def translate(ctx, node, inputs):
        return ctx.op(onnx_op, inputs[0])

    return translate


for _tf, _onnx in _UNARY.items():
    tf_op(_tf)(_unary(_onnx))


@tf_op("Erfc")
def erfc(ctx, node, inputs):
    (x,) = inputs
    return ctx.op("Sub", ctx.scalar(1.0, x, "one"), ctx.op("Erf", x))


@tf_op("Relu6")
def relu6(ctx, node, inputs):
    (x,) = inputs
    return ctx.op("Clip", x, ctx.scalar(0.0, x, "min"), ctx.scalar(6.0, x, "max"))


@tf_op("LeakyRelu")
def leaky_relu(ctx, node, inputs):
    return ctx.op("LeakyRelu", inputs[0], alpha=node.f("alpha", 0.2))


@tf_op("Gelu")
def gelu(ctx, node, inputs):
    (x,) = inputs
    half = ctx.scalar(0.5, x, "half")
    if node.b("approximate"):
        c = ctx.scalar(np.sqrt(2 / np.pi), x, "c")
        k = ctx.scalar(0.044715, x, "k")
        inner = ctx.op("Mul", c, ctx.op("Add", x, ctx.op("Mul", k, ctx.op("Mul", x,
                                                                        ctx.op("Mul", x, x)))))
        t = ctx.op("Tanh", inner)
    else:
        t = ctx.op("Erf", ctx.op("Mul", x, ctx.scalar(1 / np.sqrt(2), x, "rsqrt2")))
    return ctx.op("Mul", ctx.op("Mul", half, x), ctx.op("Add", ctx.scalar(1.0, x, "one"), t))


@tf_op("Softmax")
def softmax(ctx, node, inputs):
    return ctx.op("Softmax", inputs[0], axis=-1)


@tf_op("LogSoftmax")
def log_softmax(ctx, node, inputs):
    return ctx.op("LogSoftmax", inputs[0], axis=-1)


def _pool(ctx, node, inputs, onnx_op):
    x = inputs[0]
    rank = ctx.rank(x)
    cl = channels_last(node)
    ksize = node.ints("ksize")
    strides = node.ints("strides")
    if len(inputs) == 3:  # MaxPoolV2: ksize and strides as inputs
        ksize = [int(v) for v in ctx.need_const(inputs[1], "ksize")]
        strides = [int(v) for v in ctx.need_const(inputs[2], "strides")]
    kernels = spatial(ksize, rank, cl)
    strides = spatial(strides, rank, cl)
    xc = to_cf(ctx, x, rank) if cl else x
    pads = pad_attrs(ctx, node, xc, kernels, strides, [1] * len(kernels))
    extra = {"count_include_pad": 0} if onnx_op == "AveragePool" else {}
    y = ctx.op(onnx_op, xc, kernel_shape=kernels, strides=strides, **pads, **extra)
    return to_cl(ctx, y, rank) if cl else y


@tf_op("MaxPool", "MaxPool3D", "MaxPoolV2")
def max_pool(ctx, node, inputs):
    return _pool(ctx, node, inputs, "MaxPool")


@tf_op("AvgPool", "AvgPool3D")
def avg_pool(ctx, node, inputs):
    return _pool(ctx, node, inputs, "AveragePool")


@tf_op("FusedBatchNorm", "FusedBatchNormV2", "FusedBatchNormV3")
def fused_batch_norm(ctx, node, inputs):
    x, gamma, beta, mean, var = inputs[:5]
    eps = node.f("epsilon", 1e-4)
    rank = ctx.rank(x)
    cl = channels_last(node)
    axes = list(range(rank - 1)) if cl else [0, *range(2, rank)]

    def shaped(v):
        return v if cl else ctx.op("Reshape", v, ctx.ints([-1] + [1] * (rank - 2)))

    if node.b("is_training", True):  # the op's default
        # Training mode: normalise with the batch's own statistics (the inputs are ignored).
        extra, attrs = ctx.b.reduce_axes("ReduceMean", axes)
        m = ctx.op("ReduceMean", x, *extra, keepdims=1, **attrs)
        d = ctx.op("Sub", x, m)
        v = ctx.op("ReduceMean", ctx.op("Mul", d, d), *extra, keepdims=1, **attrs)
        scale = ctx.op("Div", shaped(gamma), ctx.op("Sqrt", ctx.op("Add", v, ctx.scalar(
            eps, x, "eps"))))
        y = ctx.op("Add", ctx.op("Mul", d, scale), shaped(beta))
        return [y, m, v, m, v, m]
    folded = fold_batch_norm(ctx, node, x, [gamma, beta, mean, var], eps)
    if folded is not None:
        return [folded, mean, var, mean, var, mean]
    f32 = ctx.dtype(x) == ir.DataType.FLOAT
    g, b, m, v = (p if f32 else ctx.cast(p, ctx.dtype(x)) for p in (gamma, beta, mean, var))
    scale = ctx.op("Mul", g, ctx.op("Reciprocal", ctx.op("Sqrt", ctx.op(
        "Add", v, ctx.scalar(eps, v, "eps")))))
    shift = ctx.op("Sub", b, ctx.op("Mul", m, scale))
    y = ctx.op("Add", ctx.op("Mul", x, shaped(scale)), shaped(shift))
    return [y, mean, var, mean, var, mean]


@tf_op("LRN")
def lrn(ctx, node, inputs):
    (x,) = inputs
    r = node.i("depth_radius", 5)
    size = 2 * r + 1
    rank = ctx.rank(x)
    # TF: x / (bias + alpha * sum(x^2 over the window)) ** beta; ONNX divides alpha by size.
    y = ctx.op("LRN", to_cf(ctx, x, rank), size=size, alpha=node.f("alpha", 1.0) * size,
               beta=node.f("beta", 0.5), bias=node.f("bias", 1.0))
    return to_cl(ctx, y, rank)


@tf_op("Dequantize")
def dequantize(ctx, node, inputs):
    x, lo, hi = inputs[:3]
    mode = node.s("mode", "MIN_COMBINED")
    if node.i("axis", -1) != -1:
        raise ctx.fail("per-channel Dequantize (axis) is not supported")
    t = dtypes.base(node.type("T"))
    info = np.iinfo(dtypes.to_numpy(t))
    lo_v = ctx.need_const(lo, "min_range").astype(np.float64).reshape(-1)[0]
    hi_v = ctx.need_const(hi, "max_range").astype(np.float64).reshape(-1)[0]
    xf = ctx.cast(x, ir.DataType.FLOAT)
    levels = float(info.max) - float(info.min)
    if mode == "MIN_COMBINED":
        scale = (hi_v - lo_v) / levels
        offset = lo_v + (-float(info.min)) * scale if info.min < 0 else lo_v
        return ctx.op("Add", ctx.op("Mul", xf, ctx.const(np.float32(scale), "scale")),
                      ctx.const(np.float32(offset), "offset"))
    if mode == "MIN_FIRST":
        # (x - lowest) * scale + min rounded to a multiple of the scale (TF's QuantizedToFloat),
        # the scale in double precision. (A step below float32's smallest normal number is
        # flushed to zero by TF's CPU kernel, which then returns NaN; OpenCV and this keep it.)
        scale = (hi_v - lo_v) / levels
        if not scale:
            return ctx.op("Add", ctx.op("Mul", xf, ctx.const(np.float32(0), "zero")),
                          ctx.const(np.float32(lo_v), "min"))
        lo_r = np.round(lo_v / np.float32(scale)) * np.float32(scale)
        return ctx.op("Add", ctx.op("Mul", xf, ctx.const(np.float32(scale), "scale")),
                      ctx.const(np.float32(lo_r - float(info.min) * scale), "offset"))
    if mode == "SCALED":
        if node.b("narrow_range"):
            qmin = info.min + 1
        else:
            qmin = info.min
        scale = max(abs(lo_v) / abs(qmin) if qmin else 0.0,
                    hi_v / info.max if info.max else 0.0) if qmin < 0 else hi_v / info.max
        return ctx.op("Mul", xf, ctx.const(np.float32(scale), "scale"))
    raise ctx.fail(f"mode {mode!r} is not supported")


def _resize_sizes(ctx, node, x, size):
    sizes = [int(s) for s in ctx.need_const(size, "size")]
    shape = ctx.shape(x)
    return [shape[0], shape[3], *sizes] if shape and shape[0] is not None else None, sizes


def _resize(ctx, node, inputs, mode):
    x, size = inputs[:2]
    xc = to_cf(ctx, x, 4)
    align = node.b("align_corners")
    half = node.b("half_pixel_centers")
    if mode == "linear":
        coord = "align_corners" if align else ("half_pixel" if half else "asymmetric")
        extra = {}
    else:
        if align:
            coord, nearest = "align_corners", "round_prefer_ceil"
        elif half:
            # TF: floor((x + 0.5) / scale) = round_prefer_ceil((x + 0.5) / scale - 0.5)
            coord, nearest = "half_pixel", "round_prefer_ceil"
        else:
            coord, nearest = "asymmetric", "floor"
        extra = {"nearest_mode": nearest}
    shape = ctx.op("Shape", xc)
    nc = ctx.op("Slice", shape, ctx.ints([0], "start"), ctx.ints([2], "end"))
    sizes = ctx.op("Concat", nc, int64(ctx, size), axis=0)
    y = ctx.op("Resize", xc, None, None, sizes, mode=mode,
               coordinate_transformation_mode=coord, **extra)
    return to_cl(ctx, y, 4)


@tf_op("ResizeBilinear")
def resize_bilinear(ctx, node, inputs):
    return _resize(ctx, node, inputs, "linear")


@tf_op("ResizeNearestNeighbor")
def resize_nearest(ctx, node, inputs):
    return _resize(ctx, node, inputs, "nearest")


@tf_op("DepthToSpace", "SpaceToDepth")
def depth_space(ctx, node, inputs):
    (x,) = inputs
    cl = channels_last(node)
    xc = to_cf(ctx, x, 4) if cl else x
    bs = node.i("block_size")
    if node.op == "DepthToSpace":
        y = ctx.op("DepthToSpace", xc, blocksize=bs, mode="DCR")
    else:
        y = ctx.op("SpaceToDepth", xc, blocksize=bs)
    return to_cl(ctx, y, 4) if cl else y


@tf_op("SpaceToBatchND")
def space_to_batch(ctx, node, inputs):
    x, block, paddings = inputs
    block = [int(b) for b in ctx.need_const(block, "block_shape")]
    pads = ctx.need_const(paddings, "paddings").astype(np.int64).reshape(-1, 2)
    rank = ctx.rank(x)
    m = len(block)
    full = [0, *pads[:, 0], *([0] * (rank - 1 - m)), 0, *pads[:, 1], *([0] * (rank - 1 - m))]
    y = ctx.op("Pad", x, ctx.ints(full, "pads")) if any(full) else x
    if all(b == 1 for b in block):
        return y
    shape = ctx.shape(y)
    if shape is None or any(d is None for d in shape[1:]):
        raise ctx.fail("needs a static input shape (the batch may be dynamic)")
    n, sp, rest = shape[0] if shape[0] is not None else -1, shape[1:1 + m], shape[1 + m:]
    split = [n]
    for s, b in zip(sp, block):
        split += [s // b, b]
    y = ctx.op("Reshape", y, ctx.ints(split + rest))
    perm = [2 * i + 2 for i in range(m)] + [0] + [2 * i + 1 for i in range(m)] + \
        list(range(1 + 2 * m, 1 + 2 * m + len(rest)))
    y = ctx.op("Transpose", y, perm=perm)
    return ctx.op("Reshape", y, ctx.ints([n * int(np.prod(block)) if n > 0 else -1] +
                                         [s // b for s, b in zip(sp, block)] + rest))


@tf_op("BatchToSpaceND")
def batch_to_space(ctx, node, inputs):
    dilated = atrous_conv(ctx, node, inputs)  # the end of a dilated convolution
    if dilated is not None:
        return dilated
    x, block, crops = inputs
    block = [int(b) for b in ctx.need_const(block, "block_shape")]
    crops = ctx.need_const(crops, "crops").astype(np.int64).reshape(-1, 2)
    m = len(block)
    y = x
    if not all(b == 1 for b in block):
        shape = ctx.shape(x)
        if shape is None or any(d is None for d in shape[1:]):
            raise ctx.fail("needs a static input shape (the batch may be dynamic)")
        n, sp, rest = shape[0], shape[1:1 + m], shape[1 + m:]
        nb = n // int(np.prod(block)) if n is not None else -1
        y = ctx.op("Reshape", x, ctx.ints(block + [nb] + sp + rest))
        perm = [m]
        for i in range(m):
            perm += [m + 1 + i, i]
        perm += list(range(2 * m + 1, 2 * m + 1 + len(rest)))
        y = ctx.op("Transpose", y, perm=perm)
        y = ctx.op("Reshape", y, ctx.ints([nb] + [s * b for s, b in zip(sp, block)] + rest))
    if crops.any():
        shape = ctx.shape(y)
        starts = [int(c) for c in crops[:, 0]]
        ends = [int(shape[1 + i] - crops[i, 1]) for i in range(m)]
        y = ctx.op("Slice", y, ctx.ints(starts, "starts"), ctx.ints(ends, "ends"),
                   ctx.ints(list(range(1, 1 + m)), "axes"))
    return y


@tf_op("RandomUniform")
def random_uniform(ctx, node, inputs):
    shape = [int(s) for s in ctx.need_const(inputs[0], "shape")]
    seed = node.i("seed2", 0) or node.i("seed", 0)
    return ctx.op("RandomUniform", shape=shape, dtype=int(dtypes.to_ir(node.type("dtype"))),
                  seed=float(seed) if seed else None)
