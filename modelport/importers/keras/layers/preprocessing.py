"""Preprocessing layers that belong to the inference graph: Rescaling, Normalization,
Resizing, CenterCrop."""

from __future__ import annotations

import numpy as np

from modelport.errors import UnsupportedFeatureError
from modelport.importers.keras.layers.reshaping import INT_MAX, resize_to
from modelport.importers.keras.table import KT, Context, Layer, ints, keras_layer


def _channel_const(ctx: Context, t: KT, value, name: str):
    """A scalar, or a vector along the last logical axis, laid out to broadcast against t."""
    arr = np.asarray(value, np.float32)
    if arr.ndim == 0 or arr.size == 1:
        return ctx.const(arr.reshape(()), name)
    shape = [1] * t.rank
    shape[t.phys_axis(t.rank - 1)] = arr.size
    return ctx.const(arr.reshape(shape), name)


@keras_layer("Rescaling")
def rescaling(ctx: Context, layer: Layer, inputs: list[KT]) -> KT:
    t = ctx.unflatten(inputs[0])
    c = layer.config
    x = t.value
    if t.dtype.kind != "f":
        x = ctx.op("Cast", ctx.logical(t), to=1)
        t = KT(x, t.shape, np.dtype(np.float32))
    y = ctx.op("Mul", x, _channel_const(ctx, t, c.get("scale", 1.0), "scale"))
    y = ctx.op("Add", y, _channel_const(ctx, t, c.get("offset", 0.0), "offset"))
    return t.like(y, dtype=np.float32)


@keras_layer("Normalization")
def normalization(ctx: Context, layer: Layer, inputs: list[KT]) -> KT:
    t = ctx.unflatten(inputs[0])
    c = layer.config
    axis = c.get("axis", -1)
    axes = [] if axis is None else [a % t.rank for a in (axis if isinstance(axis, list)
                                                        else [axis])]
    if c.get("mean") is not None:
        mean = np.asarray(c["mean"], np.float32)
        var = np.asarray(c["variance"], np.float32)
    else:
        mean = ctx.weight_array(layer, 0).astype(np.float32)
        var = ctx.weight_array(layer, 1).astype(np.float32)
    # Broadcast over the kept axes in the physical layout.
    phys = list(t.perm or range(t.rank))
    kept_shape = [t.shape[a] for a in axes]
    bshape = [t.shape[a] if a in axes else 1 for a in phys]
    order = [axes.index(a) for a in phys if a in axes]

    def lay(v):
        if v.size == 1:
            return v.reshape(())
        return np.transpose(v.reshape(kept_shape), order).reshape(bshape)

    eps = np.float32(1e-7)
    std = np.maximum(np.sqrt(var), eps)
    if c.get("invert"):
        y = ctx.op("Add", ctx.op("Mul", t.value, ctx.const(lay(std), "std")),
                   ctx.const(lay(mean), "mean"))
    else:
        y = ctx.op("Div", ctx.op("Sub", t.value, ctx.const(lay(mean), "mean")),
                   ctx.const(lay(std), "std"))
    return t.like(y)


@keras_layer("Resizing")
def resizing(ctx: Context, layer: Layer, inputs: list[KT]) -> KT:
    t = ctx.unflatten(inputs[0])
    c = layer.config
    if c.get("crop_to_aspect_ratio") or c.get("pad_to_aspect_ratio"):
        raise UnsupportedFeatureError("Resizing with crop/pad to aspect ratio is not supported")
    axes = [2, 3] if c.get("data_format") == "channels_first" else [1, 2]
    return resize_to(ctx, t, axes, [int(c["height"]), int(c["width"])],
                     c.get("interpolation", "bilinear"), bool(c.get("antialias", False)))


@keras_layer("CenterCrop")
def center_crop(ctx: Context, layer: Layer, inputs: list[KT]) -> KT:
    t = ctx.unflatten(inputs[0])
    c = layer.config
    axes = [2, 3] if c.get("data_format") == "channels_first" else [1, 2]
    target = [int(c["height"]), int(c["width"])]
    starts, ends = [], []
    shape = list(t.shape)
    for a, size in zip(axes, target):
        have = t.shape[a]
        if not isinstance(have, int) or have < size:
            raise UnsupportedFeatureError("CenterCrop needs static input sizes at least the target size")
        s0 = (have - size) // 2
        starts.append(s0)
        ends.append(s0 + size)
        shape[a] = size
    _ = INT_MAX
    y = ctx.op("Slice", t.value, ints(ctx, starts, "starts"), ints(ctx, ends, "ends"),
               ints(ctx, [t.phys_axis(a) for a in axes], "axes"))
    return t.like(y, shape)
