"""Normalisation layers: BatchNormalization, LayerNormalization, GroupNormalization,
UnitNormalization (all in whatever physical layout the input has)."""

from __future__ import annotations

import numpy as np

from modelport.importers.keras.table import (
    KT,
    Context,
    Layer,
    ints,
    keras_layer,
    reduce,
    scalar,
)


def _axes(c: dict, rank: int) -> list[int]:
    axis = c.get("axis", -1)
    axis = axis if isinstance(axis, list) else [axis]
    return sorted(a % rank for a in axis)


def _broadcast_weight(ctx: Context, layer: Layer, index: int, name: str, t: KT,
                      axes: list[int], fn=None):
    """Weight of logical shape [shape[a] for a in axes], laid out to broadcast against t."""
    phys = list(t.perm or range(t.rank))
    kept = [a for a in phys if a in axes]  # norm axes in physical order
    order = [axes.index(a) for a in kept]
    bshape = [t.shape[a] if a in axes else 1 for a in phys]

    def tr(w):
        w = fn(w) if fn is not None else w
        return np.transpose(w.reshape([t.shape[a] for a in axes]), order).reshape(bshape)

    return ctx.weight(layer, index, name, transform=tr, shape=bshape)


def bn_terms(layer: Layer) -> tuple[np.ndarray, np.ndarray]:
    """(scale, shift) with BatchNormalization(x) = x * scale + shift, as Keras computes it."""
    c = layer.config
    ws = layer.weights()
    i = 0
    gamma = beta = None
    if c.get("scale", True):
        gamma, i = np.asarray(ws[i][()], np.float32), i + 1
    if c.get("center", True):
        beta, i = np.asarray(ws[i][()], np.float32), i + 1
    mean = np.asarray(ws[i][()], np.float32)
    var = np.asarray(ws[i + 1][()], np.float32)
    inv = (1.0 / np.sqrt(var + np.float32(c.get("epsilon", 1e-3)))).astype(np.float32)
    if gamma is not None:
        inv = inv * gamma
    shift = -mean * inv
    if beta is not None:
        shift = shift + beta
    return inv, shift


@keras_layer("BatchNormalization")
def batch_norm(ctx: Context, layer: Layer, inputs: list[KT]) -> KT:
    if layer.name in ctx.bn_folded:  # already folded into the preceding convolution
        return inputs[0]
    c = layer.config
    t = ctx.unflatten(inputs[0])
    axes = _axes(c, t.rank)
    eps = float(c.get("epsilon", 1e-3))
    scale, center = c.get("scale", True), c.get("center", True)
    i = 0
    gi = bi = None
    if scale:
        gi, i = i, i + 1
    if center:
        bi, i = i, i + 1
    mi, vi = i, i + 1
    ws = layer.weights()
    n = int(np.prod(ws[mi].shape))
    if len(axes) == 1 and t.phys_axis(axes[0]) == 1 and t.rank >= 2:
        g = ctx.weight(layer, gi, "gamma") if gi is not None else \
            ctx.const(np.ones(n, np.float32), "gamma")
        b = ctx.weight(layer, bi, "beta") if bi is not None else \
            ctx.const(np.zeros(n, np.float32), "beta")
        y = ctx.op("BatchNormalization", t.value, g, b, ctx.weight(layer, mi, "moving_mean"),
                   ctx.weight(layer, vi, "moving_variance"), epsilon=eps)
        return t.like(y)
    # Any other axis: y = x * s + (beta - mean * s), s = gamma / sqrt(var + eps).
    def s_of(_unused):
        v = np.asarray(ws[vi][()], np.float32)
        s = 1.0 / np.sqrt(v + np.float32(eps))
        return s * np.asarray(ws[gi][()], np.float32) if gi is not None else s

    def o_of(_unused):
        s = s_of(None)
        o = -np.asarray(ws[mi][()], np.float32) * s
        return o + np.asarray(ws[bi][()], np.float32) if bi is not None else o

    s = _broadcast_weight(ctx, layer, vi, "scale", t, axes, s_of)
    o = _broadcast_weight(ctx, layer, mi, "offset", t, axes, o_of)
    return t.like(ctx.op("Add", ctx.op("Mul", t.value, s), o))


def _moments_norm(ctx: Context, x, axes: list[int], eps: float, rms: bool = False):
    if rms:
        ms = reduce(ctx, "ReduceMean", ctx.op("Mul", x, x), axes, True)
        return ctx.op("Mul", x, ctx.op("Reciprocal", ctx.op("Sqrt", ctx.op(
            "Add", ms, scalar(ctx, eps)))))
    mean = reduce(ctx, "ReduceMean", x, axes, True)
    d = ctx.op("Sub", x, mean)
    var = reduce(ctx, "ReduceMean", ctx.op("Mul", d, d), axes, True)
    return ctx.op("Div", d, ctx.op("Sqrt", ctx.op("Add", var, scalar(ctx, eps))))


@keras_layer("LayerNormalization")
def layer_norm(ctx: Context, layer: Layer, inputs: list[KT]) -> KT:
    c = layer.config
    t = ctx.unflatten(inputs[0])
    axes = _axes(c, t.rank)
    eps = float(c.get("epsilon", 1e-3))
    rms = bool(c.get("rms_scaling", False))
    scale, center = c.get("scale", True), c.get("center", True)
    phys_axes = sorted(t.phys_axis(a) for a in axes)
    trailing = phys_axes == list(range(t.rank - len(axes), t.rank))
    if trailing and scale and center and not rms:
        shape = [t.shape[a] for a in (t.perm or range(t.rank)) if a in axes]
        order = [axes.index(a) for a in (t.perm or range(t.rank)) if a in axes]
        g = ctx.weight(layer, 0, "gamma", transform=lambda w: np.transpose(
            w.reshape([t.shape[a] for a in axes]), order), shape=shape)
        b = ctx.weight(layer, 1, "beta", transform=lambda w: np.transpose(
            w.reshape([t.shape[a] for a in axes]), order), shape=shape)
        y = ctx.op("LayerNormalization", t.value, g, b, axis=phys_axes[0], epsilon=eps)
        return t.like(y)
    y = _moments_norm(ctx, t.value, phys_axes, eps, rms)
    i = 0
    if scale:
        y = ctx.op("Mul", y, _broadcast_weight(ctx, layer, i, "gamma", t, axes))
        i += 1
    if center and not rms:
        y = ctx.op("Add", y, _broadcast_weight(ctx, layer, i, "beta", t, axes))
    return t.like(y)


@keras_layer("GroupNormalization")
def group_norm(ctx: Context, layer: Layer, inputs: list[KT]) -> KT:
    c = layer.config
    t = ctx.unflatten(inputs[0])
    axis = c.get("axis", -1) % t.rank
    groups = int(c.get("groups", 32))
    eps = float(c.get("epsilon", 1e-3))
    # Physical order with the channel axis second: (N, C, rest...), then (N, G, C/G, rest...).
    others = [a for a in range(1, t.rank) if a != axis]
    perm = (0, axis, *others)
    x = ctx.to_perm(t, perm)
    ch = t.shape[axis]
    rest = [t.shape[a] for a in others]
    g = ctx.op("Reshape", x, ints(ctx, [0, groups, ch // groups, *[
        d if isinstance(d, int) else 0 for d in rest]], "shape"))
    red = list(range(2, 3 + len(rest)))
    y = _moments_norm(ctx, g, red, eps)
    y = ctx.op("Reshape", y, ctx.op("Shape", x))
    pt = KT(y, t.shape, t.dtype, perm)
    i = 0
    if c.get("scale", True):
        y = ctx.op("Mul", y, _broadcast_weight(ctx, layer, i, "gamma", pt, [axis]))
        i += 1
    if c.get("center", True):
        y = ctx.op("Add", y, _broadcast_weight(ctx, layer, i, "beta", pt, [axis]))
    return KT(y, t.shape, t.dtype, perm if perm != tuple(range(t.rank)) else None)


@keras_layer("UnitNormalization")
def unit_norm(ctx: Context, layer: Layer, inputs: list[KT]) -> KT:
    t = ctx.unflatten(inputs[0])
    axes = sorted(t.phys_axis(a) for a in _axes(layer.config, t.rank))
    ss = reduce(ctx, "ReduceSum", ctx.op("Mul", t.value, t.value), axes, True)
    inv = ctx.op("Reciprocal", ctx.op("Sqrt", ctx.op("Max", ss, scalar(ctx, 1e-12))))
    return t.like(ctx.op("Mul", t.value, inv))
