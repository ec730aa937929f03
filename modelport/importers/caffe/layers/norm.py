"""Normalisation and per-channel affine layers: BatchNorm, Scale, Bias, LRN, MVN and SSD's
Normalize."""

from __future__ import annotations

import numpy as np

from modelport.importers.caffe.layers._util import axis as norm_axis
from modelport.importers.caffe.layers._util import broadcast_shape
from modelport.importers.caffe.table import caffe_layer


@caffe_layer("BatchNorm")
def batch_norm(ctx, layer, inputs):
    (x,) = inputs
    p = layer.batch_norm_param
    shape = ctx.shape(x)
    c = shape[1] if len(shape) > 1 else 1
    eps = float(p.eps)
    use_global = p.use_global_stats if p.HasField("use_global_stats") else True
    if not use_global:
        # Normalise with the statistics of the current batch, over all axes but channels.
        # The stored running statistics are unused; with random weights they are still made,
        # so that a caffemodel written from them has the three blobs Caffe layers carry.
        if ctx.blob_count() is None:
            for i, kind in enumerate(("mean", "var", "factor")):
                ctx.reader(i, [c] if i < 2 else [1], kind)
        axes = [0] + list(range(2, len(shape)))
        mean = ctx.reduce("ReduceMean", x, axes, keepdims=1,
                      shape=[1 if i in axes else d for i, d in enumerate(shape)])
        centered = ctx.op("Sub", x, mean, shape=shape)
        sq = ctx.op("Mul", centered, centered, shape=shape)
        var = ctx.reduce("ReduceMean", sq, axes, keepdims=1,
                     shape=ctx.shape(mean))
        std = ctx.op("Sqrt", ctx.op("Add", var, ctx.const(eps, "eps"), shape=ctx.shape(mean)),
                     shape=ctx.shape(mean))
        return [ctx.op("Div", centered, std, shape=shape)]
    factor_read = ctx.reader(2, [1], "factor")

    def scaled(values: np.ndarray) -> np.ndarray:
        f = float(np.asarray(factor_read()).reshape(-1)[0])
        return values * (0.0 if f == 0 else 1.0 / f)

    mean = ctx.blob(0, [c], "mean", transform=scaled)
    var = ctx.blob(1, [c], "var", transform=scaled)
    one = ctx.const(np.ones(c, np.float32), "gamma")
    zero = ctx.const(np.zeros(c, np.float32), "beta")
    return [ctx.op("BatchNormalization", x, one, zero, mean, var, epsilon=eps, shape=shape)]


def _param_shape(ctx, shape, ax: int, num_axes: int):
    if num_axes == -1:
        return list(shape[ax:])
    return list(shape[ax: ax + num_axes])


def _second_bottom(ctx, value, rank: int, ax: int):
    """A Scale/Bias second bottom reshaped to broadcast from axis ``ax``: (value, its shape,
    the broadcast shape)."""
    own = list(ctx.shape(value))
    target = broadcast_shape(own, rank, ax)
    if target != own:
        value = ctx.op("Reshape", value, ctx.ints(target), shape=target)
    return value, own, target


@caffe_layer("Scale")
def scale(ctx, layer, inputs):
    p = layer.scale_param
    x = inputs[0]
    shape = ctx.shape(x)
    ax = norm_axis(p.axis, len(shape))
    if len(inputs) == 2:
        gamma, gshape, target = _second_bottom(ctx, inputs[1], len(shape), ax)
        bias_index = 0
    else:
        gshape = _param_shape(ctx, shape, ax, p.num_axes)
        if ax == 1 and len(shape) >= 2 and gshape == [shape[1]]:
            # Per-channel: a BatchNormalization with mean 0, variance 1, eps 0 computes exactly
            # x * gamma + beta, and the optimiser folds it into a preceding Conv like the
            # BatchNorm layer before it.
            c = shape[1]
            gamma = ctx.blob(0, [c], "gamma")
            beta = (ctx.blob(1, [c], "bias") if p.bias_term
                    else ctx.const(np.zeros(c, np.float32), "beta"))
            return [ctx.op("BatchNormalization", x, gamma, beta,
                           ctx.const(np.zeros(c, np.float32), "mean"),
                           ctx.const(np.ones(c, np.float32), "var"), epsilon=0.0, shape=shape)]
        target = broadcast_shape(gshape, len(shape), ax)
        gamma = ctx.blob(0, gshape or [1], "gamma", out_shape=target,
                         transform=lambda a, t=target: a.reshape(t))
        bias_index = 1
    y = ctx.op("Mul", x, gamma, shape=shape)
    if p.bias_term:
        beta = ctx.blob(bias_index, gshape or [1], "bias", out_shape=target,
                        transform=lambda a, t=target: a.reshape(t))
        y = ctx.op("Add", y, beta, shape=shape)
    return [y]


@caffe_layer("Bias")
def bias(ctx, layer, inputs):
    p = layer.bias_param
    x = inputs[0]
    shape = ctx.shape(x)
    ax = norm_axis(p.axis, len(shape))
    if len(inputs) == 2:
        beta, bshape, target = _second_bottom(ctx, inputs[1], len(shape), ax)
    else:
        bshape = _param_shape(ctx, shape, ax, p.num_axes)
        target = broadcast_shape(bshape, len(shape), ax)
        beta = ctx.blob(0, bshape or [1], "bias", out_shape=target,
                        transform=lambda a, t=target: a.reshape(t))
    return [ctx.op("Add", x, beta, shape=shape)]


@caffe_layer("LRN")
def lrn(ctx, layer, inputs):
    (x,) = inputs
    p = layer.lrn_param
    shape = ctx.shape(x)
    size = int(p.local_size)
    if p.norm_region == 0:  # ACROSS_CHANNELS
        return [ctx.op("LRN", x, size=size, alpha=float(p.alpha), beta=float(p.beta),
                       bias=float(p.k), shape=shape)]
    # WITHIN_CHANNEL: x * (1 + alpha * mean of x^2 over a size x size window)^-beta
    if size % 2 == 0:
        raise ctx.fail("WITHIN_CHANNEL LRN needs an odd local_size")
    pad = (size - 1) // 2
    sq = ctx.op("Mul", x, x, shape=shape)
    mean = ctx.op("AveragePool", sq, kernel_shape=[size, size], pads=[pad] * 4,
                  strides=[1, 1], count_include_pad=1, shape=shape)
    base = ctx.op("Add", ctx.op("Mul", mean, ctx.const(float(p.alpha), "alpha"), shape=shape),
                  ctx.const(1.0, "one"), shape=shape)
    denom = ctx.op("Pow", base, ctx.const(float(-p.beta), "neg_beta"), shape=shape)
    return [ctx.op("Mul", x, denom, shape=shape)]


@caffe_layer("MVN")
def mvn(ctx, layer, inputs):
    (x,) = inputs
    p = layer.mvn_param
    shape = ctx.shape(x)
    axes = list(range(1, len(shape))) if p.across_channels else list(range(2, len(shape)))
    reduced = [1 if i in axes else d for i, d in enumerate(shape)]
    mean = ctx.reduce("ReduceMean", x, axes, keepdims=1, shape=reduced)
    y = ctx.op("Sub", x, mean, shape=shape)
    if p.normalize_variance:
        sq = ctx.op("Mul", y, y, shape=shape)
        var = ctx.reduce("ReduceMean", sq, axes, keepdims=1, shape=reduced)
        std = ctx.op("Add", ctx.op("Sqrt", var, shape=reduced), ctx.const(float(p.eps), "eps"),
                     shape=reduced)
        y = ctx.op("Div", y, std, shape=shape)
    return [y]


@caffe_layer("Normalize")
def normalize(ctx, layer, inputs):
    (x,) = inputs
    p = layer.norm_param
    shape = ctx.shape(x)
    axes = list(range(1, len(shape))) if p.across_spatial else [1]
    reduced = [1 if i in axes else d for i, d in enumerate(shape)]
    sq = ctx.op("Mul", x, x, shape=shape)
    total = ctx.reduce("ReduceSum", sq, axes, keepdims=1, shape=reduced)
    norm = ctx.op("Sqrt", ctx.op("Add", total, ctx.const(float(p.eps), "eps"), shape=reduced),
                  shape=reduced)
    y = ctx.op("Div", x, norm, shape=shape)
    channels = 1 if p.channel_shared else shape[1]
    target = broadcast_shape([channels], len(shape), 1)
    gamma = ctx.blob(0, [channels], "scale", out_shape=target,
                     transform=lambda a, t=target: a.reshape(t))
    return [ctx.op("Mul", y, gamma, shape=shape)]
