"""Normalisation: BatchNorm (fix_gamma, use_global_stats, axis; inference always uses the
moving statistics), LayerNorm, InstanceNorm, L2Normalization."""

from __future__ import annotations

import numpy as np

from modelport.importers.mxnet.ops._util import norm_axis
from modelport.importers.mxnet.table import mxnet_op


def _along(ctx, value, axis: int, rank: int, what: str):
    """A per-channel vector reshaped to broadcast along ``axis`` of a rank-``rank`` tensor."""
    dims = [1] * rank
    dims[axis] = -1
    return ctx.op("Reshape", value, ctx.ints(dims, f"{what}_bcast"))


@mxnet_op("BatchNorm", "BatchNorm_v1", "CuDNNBatchNorm", "_contrib_SyncBatchNorm")
def batch_norm(ctx, node, inputs):
    x = ctx.data(inputs[0])
    a = node.attrs
    shape = ctx.shape(x)
    axis = norm_axis(a.int("axis", 1), len(shape))
    c = shape[axis]
    eps = a.float("eps", 1e-3)
    if a.bool("fix_gamma", True):
        ctx.weight(inputs[1], [c], "gamma", "gamma")  # still checked, then replaced by ones
        gamma = ctx.const(np.ones(c, np.float32), "gamma_fixed")
    else:
        gamma = ctx.weight(inputs[1], [c], "gamma", "gamma")
    beta = ctx.weight(inputs[2], [c], "bias", "beta")
    mean = ctx.weight(ctx.aux(inputs, 3, "moving_mean"), [c], "mean", "moving_mean")
    var = ctx.weight(ctx.aux(inputs, 4, "moving_var"), [c], "var", "moving_var")
    if axis == 1 and len(shape) >= 2:
        return [ctx.op("BatchNormalization", x, gamma, beta, mean, var, epsilon=eps)]
    rank = len(shape)
    centered = ctx.op("Sub", x, _along(ctx, mean, axis, rank, "mean"))
    denom = ctx.op("Sqrt", ctx.op("Add", _along(ctx, var, axis, rank, "var"),
                                  ctx.scalar(eps, x, "eps")))
    scaled = ctx.op("Mul", ctx.op("Div", centered, denom), _along(ctx, gamma, axis, rank, "g"))
    return [ctx.op("Add", scaled, _along(ctx, beta, axis, rank, "beta"))]


@mxnet_op("LayerNorm")
def layer_norm(ctx, node, inputs):
    x = ctx.data(inputs[0])
    a = node.attrs
    shape = ctx.shape(x)
    rank = len(shape)
    axis = norm_axis(a.int("axis", -1), rank)
    eps = a.float("eps", 1e-5)
    c = shape[axis]
    gamma = ctx.weight(inputs[1], [c], "gamma", "gamma")
    beta = ctx.weight(inputs[2], [c], "bias", "beta")
    if axis == rank - 1:
        return [ctx.op("LayerNormalization", x, gamma, beta, axis=-1, epsilon=eps)]
    mean = ctx.reduce("ReduceMean", x, [axis], keepdims=1)
    centered = ctx.op("Sub", x, mean)
    var = ctx.reduce("ReduceMean", ctx.op("Mul", centered, centered), [axis], keepdims=1)
    normed = ctx.op("Div", centered, ctx.op("Sqrt", ctx.op("Add", var, ctx.scalar(eps, x))))
    y = ctx.op("Mul", normed, _along(ctx, gamma, axis, rank, "gamma"))
    return [ctx.op("Add", y, _along(ctx, beta, axis, rank, "beta"))]


@mxnet_op("InstanceNorm")
def instance_norm(ctx, node, inputs):
    x = ctx.data(inputs[0])
    c = ctx.shape(x)[1]
    gamma = ctx.weight(inputs[1], [c], "gamma", "gamma")
    beta = ctx.weight(inputs[2], [c], "bias", "beta")
    return [ctx.op("InstanceNormalization", x, gamma, beta,
                   epsilon=node.attrs.float("eps", 1e-3))]


@mxnet_op("L2Normalization")
def l2_normalization(ctx, node, inputs):
    x = ctx.data(inputs[0])
    rank = ctx.rank(x)
    mode = node.attrs.str("mode", "instance")
    axes = {"instance": list(range(1, rank)), "channel": [1],
            "spatial": list(range(2, rank))}.get(mode)
    if axes is None:
        raise ctx.fail(f"mode {mode!r} is not supported")
    sq = ctx.reduce("ReduceSum", ctx.op("Mul", x, x), axes, keepdims=1)
    eps = ctx.scalar(node.attrs.float("eps", 1e-10), x, "eps")
    return [ctx.op("Div", x, ctx.op("Sqrt", ctx.op("Add", sq, eps)))]
