"""Pooling: Max/Average 1D-3D (valid and same padding) and the global poolings."""

from __future__ import annotations

import numpy as np

from modelport.errors import UnsupportedFeatureError
from modelport.importers.keras import theano
from modelport.importers.keras.layers.conv import _layout, _out_shape, padding_attrs, spatial
from modelport.importers.keras.table import KT, Context, Layer, as_tuple, keras_layer, reduce


@keras_layer("MaxPooling1D", "MaxPooling2D", "MaxPooling3D", "MaxPool1D", "MaxPool2D",
             "MaxPool3D", "AveragePooling1D", "AveragePooling2D", "AveragePooling3D",
             "AvgPool1D", "AvgPool2D", "AvgPool3D")
def pool(ctx: Context, layer: Layer, inputs: list[KT]) -> KT:
    c = layer.config
    t = inputs[0]
    n = t.rank - 2
    cfirst = c.get("data_format") == "channels_first"
    ks = as_tuple(c.get("pool_size", 2), n)
    strides = c.get("strides")
    ss = as_tuple(strides if strides is not None else ks, n)
    x, perm = _layout(ctx, t, cfirst)
    sizes, channels = spatial(t, cfirst)
    padding = c.get("padding", "valid")
    if padding == "same" and theano.is_theano(ctx):
        pads = [theano.pool_same_pads(sizes[i], ks[i], ss[i], n == 3) for i in range(n)]
        if any(p is None for p in pads):
            raise UnsupportedFeatureError("'same' pooling of a Theano-backend file needs static spatial sizes")
        attrs = {"pads": [p[0] for p in pads] + [p[1] for p in pads]}
        outs = [-(-sizes[i] // ss[i]) for i in range(n)]
    else:
        attrs, outs = padding_attrs(padding, sizes, ks, ss, (1,) * n)
    if layer.class_name.startswith("Max"):
        y = ctx.op("MaxPool", x, kernel_shape=list(ks), strides=list(ss), **attrs)
    else:
        y = ctx.op("AveragePool", x, kernel_shape=list(ks), strides=list(ss),
                   count_include_pad=0, **attrs)
    return KT(y, _out_shape(t, cfirst, outs, channels), t.dtype, perm)


@keras_layer("GlobalMaxPooling1D", "GlobalMaxPooling2D", "GlobalMaxPooling3D",
             "GlobalAveragePooling1D", "GlobalAveragePooling2D", "GlobalAveragePooling3D",
             "GlobalMaxPool1D", "GlobalMaxPool2D", "GlobalMaxPool3D", "GlobalAvgPool1D",
             "GlobalAvgPool2D", "GlobalAvgPool3D")
def global_pool(ctx: Context, layer: Layer, inputs: list[KT]) -> KT:
    c = layer.config
    t = ctx.unflatten(inputs[0])
    cfirst = c.get("data_format") == "channels_first"
    keep = bool(c.get("keepdims", False))
    logical_axes = list(range(2, t.rank)) if cfirst else list(range(1, t.rank - 1))
    axes = sorted(t.phys_axis(a) for a in logical_axes)
    op = "ReduceMax" if "Max" in layer.class_name else "ReduceMean"
    mask = getattr(ctx, "mask", None)
    if mask is not None and op == "ReduceMean":
        y = _masked_mean(ctx, t, mask, cfirst, keep)
        return KT(y, (t.shape[0], 1, t.shape[2]) if keep else (t.shape[0], t.shape[2]), t.dtype)
    y = reduce(ctx, op, t.value, axes, keep)
    if keep:
        shape = tuple(1 if i in logical_axes else d for i, d in enumerate(t.shape))
        return KT(y, shape, t.dtype, t.perm)
    channels = t.shape[1] if cfirst else t.shape[-1]
    return KT(y, (t.shape[0], channels), t.dtype)


def _masked_mean(ctx: Context, t: KT, mask, cfirst: bool, keep: bool):
    """GlobalAveragePooling1D of a masked sequence: the mean of its unmasked steps, as Keras
    computes it (sum of the masked input over the sum of the mask)."""
    if cfirst:
        raise UnsupportedFeatureError("a masked GlobalAveragePooling1D with channels_first is not supported")
    x = ctx.logical(t)
    m = ctx.op("Unsqueeze", ctx.op("Cast", mask, to=1), ctx.const(np.array([2], np.int64), "ax"))
    total = reduce(ctx, "ReduceSum", ctx.op("Mul", x, m), [1], keep)
    return ctx.op("Div", total, reduce(ctx, "ReduceSum", m, [1], keep))
