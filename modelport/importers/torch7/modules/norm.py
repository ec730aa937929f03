"""Normalisation: (Spatial)BatchNormalization in evaluation mode (running statistics, and the
old ``running_std`` form that stored 1/sqrt(var + eps)), InstanceNormalization (statistics of
each image), SpatialCrossMapLRN, Normalize (Lp norm of each row)."""

from __future__ import annotations

import math

import numpy as np

from modelport.importers.torch7.modules._util import batched
from modelport.importers.torch7.table import torch7_module


def _affine(ctx, m, c: int):
    weight = m.tensor("weight", required=False)
    bias = m.tensor("bias", required=False)
    scale = ctx.weight(weight, [c], "weight") if weight is not None else \
        ctx.const(np.ones(c), "weight")
    shift = ctx.weight(bias, [c], "bias") if bias is not None else \
        ctx.const(np.zeros(c), "bias")
    return scale, shift


@torch7_module("nn.BatchNormalization", "nn.SpatialBatchNormalization")
def batch_normalization(ctx, m, x):
    spatial = m.type == "nn.SpatialBatchNormalization"
    if spatial:
        x, undo = batched(ctx, x)
    else:
        x, undo = batched(ctx, x, 2)
    shape = ctx.shape(x)
    c = shape[1]
    eps = m.num("eps", 1e-5)
    scale, shift = _affine(ctx, m, c)
    mean_t = m.tensor("running_mean", required=False)
    mean = ctx.weight(mean_t, [c], "running_mean") if mean_t is not None else \
        ctx.const(np.zeros(c), "running_mean")
    var_t = m.tensor("running_var", required=False)
    std_t = m.tensor("running_std", required=False) if var_t is None else None
    if var_t is not None:
        var = ctx.weight(var_t, [c], "running_var")
    elif std_t is not None:
        # Before 2016 nn kept the inverse standard deviation 1/sqrt(var + eps).
        var = ctx.weight(std_t, [c], "running_var",
                         transform=lambda s: 1.0 / np.square(s.astype(np.float64)) - eps)
    else:
        var = ctx.const(np.ones(c), "running_var")
    y = ctx.op("BatchNormalization", x, scale, shift, mean, var, epsilon=eps, shape=shape)
    return undo(y)


@torch7_module("nn.InstanceNormalization")
def instance_normalization(ctx, m, x):
    x, undo = batched(ctx, x)
    shape = ctx.shape(x)
    scale, shift = _affine(ctx, m, shape[1])
    y = ctx.op("InstanceNormalization", x, scale, shift, epsilon=m.num("eps", 1e-5),
               shape=shape)
    return undo(y)


@torch7_module("nn.SpatialCrossMapLRN")
def spatial_cross_map_lrn(ctx, m, x):
    x, undo = batched(ctx, x)
    size = m.int("size")
    if size % 2 == 0:
        raise m.fail(f"an even size ({size}) is not supported (Torch's own CPU code needs it odd)")
    y = ctx.op("LRN", x, size=size, alpha=m.num("alpha", 1e-4), beta=m.num("beta", 0.75),
               bias=m.num("k", 1.0), shape=ctx.shape(x))
    return undo(y)


@torch7_module("nn.Normalize")
def normalize(ctx, m, x):
    x = ctx.tensor_input(x)
    shape = ctx.shape(x)
    if len(shape) not in (1, 2):
        raise m.fail(f"normalises 1-D or 2-D inputs, got shape {list(shape)}")
    p = m.num("p")
    eps = m.num("eps", 1e-10)
    reduced = [*shape[:-1], 1]
    if math.isinf(p):
        a = ctx.op("Abs", x, shape=shape)
        extra, attrs = ctx.b.reduce_axes("ReduceMax", [-1])
        norm = ctx.op("ReduceMax", a, *extra, keepdims=1, shape=reduced, **attrs)
        norm = ctx.op("Add", norm, ctx.const(eps, "eps"), shape=reduced)
    else:
        if p == 2:
            extra, attrs = ctx.b.reduce_axes("ReduceSumSquare", [-1])
            s = ctx.op("ReduceSumSquare", x, *extra, keepdims=1, shape=reduced, **attrs)
        else:
            a = ctx.op("Abs", x, shape=shape)
            if p != 1:
                a = ctx.op("Pow", a, ctx.const(p, "p"), shape=shape)
            extra, attrs = ctx.b.reduce_axes("ReduceSum", [-1])
            s = ctx.op("ReduceSum", a, *extra, keepdims=1, shape=reduced, **attrs)
        s = ctx.op("Add", s, ctx.const(eps, "eps"), shape=reduced)
        norm = s if p == 1 else (ctx.op("Sqrt", s, shape=reduced) if p == 2 else
                                 ctx.op("Pow", s, ctx.const(1.0 / p, "inv_p"), shape=reduced))
    return ctx.op("Div", x, norm, shape=shape)
