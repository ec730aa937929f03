"""Padding, cropping and up-sampling 1D/2D/3D (in any physical layout; no transposes)."""

from __future__ import annotations

import numpy as np

from modelport.errors import UnsupportedFeatureError
from modelport.importers.keras.table import KT, Context, Layer, ints, keras_layer, scalar

INT_MAX = np.iinfo(np.int64).max


def _spatial_axes(t: KT, c: dict) -> list[int]:
    if c.get("data_format") == "channels_first":
        return list(range(2, t.rank))
    return list(range(1, t.rank - 1))


def _pairs(v, n: int) -> list[tuple[int, int]]:
    """Keras padding/cropping specs: int, (a, b) for 1D, or per-axis ints/pairs."""
    if isinstance(v, int):
        return [(v, v)] * n
    v = list(v)
    if n == 1 and len(v) == 2 and all(isinstance(x, int) for x in v):
        return [(v[0], v[1])]
    out = []
    for x in v:
        out.append((x, x) if isinstance(x, int) else (int(x[0]), int(x[1])))
    return out


def _image_layout(ctx: Context, t: KT, c: dict) -> KT:
    """Images (rank >= 4, channels-last) move to channels-first here, as a convolution would."""
    t = ctx.unflatten(t)
    if t.rank >= 4 and t.perm is None and c.get("data_format") != "channels_first":
        from modelport.importers.keras.table import cf_perm

        return KT(ctx.channels_first(t), t.shape, t.dtype, cf_perm(t.rank))
    return t


@keras_layer("ZeroPadding1D", "ZeroPadding2D", "ZeroPadding3D")
def zero_padding(ctx: Context, layer: Layer, inputs: list[KT]) -> KT:
    t = _image_layout(ctx, inputs[0], layer.config)
    axes = _spatial_axes(t, layer.config)
    pairs = _pairs(layer.config.get("padding", 1), len(axes))
    begin, end = [0] * t.rank, [0] * t.rank
    shape = list(t.shape)
    for a, (p0, p1) in zip(axes, pairs):
        k = t.phys_axis(a)
        begin[k], end[k] = p0, p1
        if isinstance(shape[a], int):
            shape[a] += p0 + p1
    y = ctx.op("Pad", t.value, ints(ctx, begin + end, "pads"), scalar(ctx, 0.0))
    return t.like(y, shape)


@keras_layer("Cropping1D", "Cropping2D", "Cropping3D")
def cropping(ctx: Context, layer: Layer, inputs: list[KT]) -> KT:
    t = _image_layout(ctx, inputs[0], layer.config)
    axes = _spatial_axes(t, layer.config)
    pairs = _pairs(layer.config.get("cropping", 1), len(axes))
    starts, ends, paxes = [], [], []
    shape = list(t.shape)
    for a, (c0, c1) in zip(axes, pairs):
        paxes.append(t.phys_axis(a))
        starts.append(c0)
        ends.append(-c1 if c1 else INT_MAX)
        if isinstance(shape[a], int):
            shape[a] -= c0 + c1
    y = ctx.op("Slice", t.value, ints(ctx, starts, "starts"), ints(ctx, ends, "ends"),
               ints(ctx, paxes, "axes"))
    return t.like(y, shape)


def resize_to(ctx: Context, t: KT, axes: list[int], sizes: list[int], mode: str,
              antialias: bool = False) -> KT:
    """Resize logical ``axes`` of ``t`` to ``sizes`` the way tf.image.resize does."""
    from modelport.importers.keras.table import cf_perm

    channels_first_logical = axes == list(range(2, t.rank))
    if channels_first_logical:
        x, perm = ctx.logical(t), None
    else:
        x, perm = ctx.channels_first(t), cf_perm(t.rank)
    lead = ctx.op("Slice", ctx.op("Shape", x), ints(ctx, [0], "s"), ints(ctx, [2], "e"))
    full = ctx.op("Concat", lead, ints(ctx, sizes, "sizes"), axis=0)
    attrs: dict = {}
    sources = [t.shape[a] for a in axes]
    grows = all(isinstance(n, int) and s >= n for n, s in zip(sources, sizes))
    if antialias and not grows:
        raise UnsupportedFeatureError("resizing down with antialias is not supported")
    if mode == "nearest":
        attrs = dict(mode="nearest", coordinate_transformation_mode="tf_half_pixel_for_nn",
                     nearest_mode="floor")
    elif mode in ("bilinear", "linear"):
        attrs = dict(mode="linear", coordinate_transformation_mode="half_pixel")
    else:
        # bicubic included: TensorFlow's bicubic weights equal ONNX's cubic resize (Keys,
        # a = -0.5, exclude_outside) only for a 2x enlargement; elsewhere they differ by ~2e-3.
        raise UnsupportedFeatureError(f"interpolation {mode!r} is not supported")
    y = ctx.op("Resize", x, None, None, full, **attrs)
    shape = list(t.shape)
    for a, s in zip(axes, sizes):
        shape[a] = s
    return KT(y, tuple(shape), t.dtype, perm)


@keras_layer("UpSampling1D", "UpSampling2D", "UpSampling3D")
def upsampling(ctx: Context, layer: Layer, inputs: list[KT]) -> KT:
    t = _image_layout(ctx, inputs[0], layer.config)
    c = layer.config
    axes = _spatial_axes(t, c)
    size = c.get("size", 2)
    size = [size] * len(axes) if isinstance(size, int) else list(size)
    mode = c.get("interpolation", "nearest")
    if mode == "nearest":
        # Repeating each element: exact with any layout.
        scales = [1.0] * t.rank
        for a, s in zip(axes, size):
            scales[t.phys_axis(a)] = float(s)
        y = ctx.op("Resize", t.value, None, ctx.const(np.array(scales, np.float32), "scales"),
                   mode="nearest", coordinate_transformation_mode="asymmetric",
                   nearest_mode="floor")
        shape = list(t.shape)
        for a, s in zip(axes, size):
            shape[a] = shape[a] * s if isinstance(shape[a], int) else None
        return t.like(y, shape)
    if not all(isinstance(t.shape[a], int) for a in axes):
        raise UnsupportedFeatureError("bilinear up-sampling needs static spatial sizes")
    return resize_to(ctx, t, axes, [t.shape[a] * s for a, s in zip(axes, size)], mode)
