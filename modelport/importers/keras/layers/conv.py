"""Convolutions: ConvND, ConvNDTranspose, DepthwiseConvND, SeparableConvND.

Kernels are re-laid out for ONNX inside the weight read (never as graph nodes):
Keras ``(k..., in/groups, out)`` becomes ``(out, in/groups, k...)``.
"""

from __future__ import annotations

import math

import numpy as np

from modelport.errors import UnsupportedFeatureError
from modelport.importers.keras import theano
from modelport.importers.keras.layers.activations import activate
from modelport.importers.keras.table import KT, Context, Layer, as_tuple, cf_perm, keras_layer


def same_pads(size, k: int, s: int, d: int) -> tuple[int, int] | None:
    """TensorFlow's SAME padding: the odd pixel goes at the end."""
    if not isinstance(size, int):
        return None
    eff = (k - 1) * d + 1
    total = max((math.ceil(size / s) - 1) * s + eff - size, 0)
    return total // 2, total - total // 2


def conv_weights(ctx: Context, layer: Layer, k_index: int, name: str, transform, shape,
                 b_index: int | None):
    """Kernel and bias initializers; when a BatchNormalization directly follows this layer
    (see load.plan_bn_folds), its scale and shift are folded in inside the weight reads.
    Returns (kernel, bias, name of the layer the node should be attributed to)."""
    from modelport.graph_ir.tensors import contiguous, lazy_tensor
    from modelport.importers.keras.layers.normalization import bn_terms

    bn = ctx.bn_fold.get(layer.name)
    if bn is None:
        w = ctx.weight(layer, k_index, name, transform=transform, shape=shape)
        b = ctx.weight(layer, b_index, "bias") if b_index is not None else None
        return w, b, layer.name
    terms: list = []  # (scale, shift), read from the file once for kernel and bias

    def bn_scale_shift():
        if not terms:
            terms.extend(bn_terms(bn))
        return terms

    def folded_kernel(k):
        scale, _ = bn_scale_shift()
        # One pass: the re-laid-out kernel, scaled as it is copied.
        return contiguous(transform(k).astype(np.float32, copy=False), scale)

    def folded_bias():
        scale, shift = bn_scale_shift()
        base = np.asarray(layer.weights()[b_index][()], np.float32) if b_index is not None \
            else np.float32(0)
        return base * scale + shift

    w = ctx.weight(layer, k_index, name, transform=folded_kernel, shape=shape)
    b = ctx.b.initializer(f"{bn.name}/folded_bias",
                          lazy_tensor(folded_bias, np.float32, (shape[0],)))
    return w, b, bn.name


def conv_out(size, k, s, d, pb, pe):
    if not isinstance(size, int):
        return None
    return (size + pb + pe - ((k - 1) * d + 1)) // s + 1


def spatial(t: KT, channels_first: bool) -> tuple[list, int | None]:
    if channels_first:
        return list(t.shape[2:]), t.shape[1]
    return list(t.shape[1:-1]), t.shape[-1]


def padding_attrs(padding: str, sizes, ks, ss, ds, on_theano: bool = False) -> tuple[dict, list]:
    """ONNX pads (or auto_pad) and the output sizes for Keras padding (``on_theano``: the
    ``same`` padding of Keras' Theano backend, see importers/keras/theano.py)."""
    n = len(ks)
    if padding == "valid":
        pads = [(0, 0)] * n
    elif padding == "causal":
        pads = [((ks[i] - 1) * ds[i], 0) for i in range(n)]
    elif on_theano:
        pads = [theano.same_pads(sizes[i], ks[i], ss[i], ds[i]) for i in range(n)]
        if any(p is None for p in pads):
            raise UnsupportedFeatureError("'same' padding of a Theano-backend file needs static spatial sizes")
    else:
        pads = [same_pads(sizes[i], ks[i], ss[i], ds[i]) for i in range(n)]
        if any(p is None for p in pads):
            outs = [math.ceil(sz / s) if isinstance(sz, int) else None
                    for sz, s in zip(sizes, ss)]
            return {"auto_pad": "SAME_UPPER"}, outs
    outs = [conv_out(sizes[i], ks[i], ss[i], ds[i], *pads[i]) for i in range(n)]
    return {"pads": [p[0] for p in pads] + [p[1] for p in pads]}, outs


def _layout(ctx: Context, t: KT, channels_first: bool):
    if channels_first:
        return ctx.logical(t), None
    return ctx.channels_first(t), cf_perm(t.rank)


def _out_shape(t: KT, channels_first: bool, sizes, channels) -> tuple:
    if channels_first:
        return (t.shape[0], channels, *sizes)
    return (t.shape[0], *sizes, channels)


def _geometry(c: dict, t: KT) -> tuple[int, bool, tuple, tuple, tuple]:
    """Spatial rank, channels_first, kernel size, strides and dilations of a conv layer."""
    n = t.rank - 2
    return (n, c.get("data_format") == "channels_first", as_tuple(c["kernel_size"], n),
            as_tuple(c.get("strides", 1), n), as_tuple(c.get("dilation_rate", 1), n))


def _kernel_perm(rank: int) -> list[int]:
    return [rank - 1, rank - 2, *range(rank - 2)]


def kernel_transform(ctx: Context, layer: Layer, index: int, kshape: tuple):
    """Keras ``(k..., a, b)`` to ONNX ``(b, a, k...)``; a Theano kernel is unflipped first."""
    kp = _kernel_perm(len(kshape))
    if theano.flips(ctx, layer.class_name, index):
        return lambda k: np.transpose(theano.unflip(k), kp)
    return lambda k: np.transpose(k, kp)


@keras_layer("Conv1D", "Conv2D", "Conv3D", "Convolution1D", "Convolution2D", "Convolution3D")
def conv(ctx: Context, layer: Layer, inputs: list[KT]) -> KT:
    c = layer.config
    t = inputs[0]
    n, cfirst, ks, ss, ds = _geometry(c, t)
    groups = int(c.get("groups", 1) or 1)
    kshape = tuple(layer.weights()[0].shape)
    filters = kshape[-1]
    x, perm = _layout(ctx, t, cfirst)
    sizes, _ = spatial(t, cfirst)
    attrs, outs = padding_attrs(c.get("padding", "valid"), sizes, ks, ss, ds,
                                theano.is_theano(ctx))
    w, b, owner = conv_weights(ctx, layer, 0, "kernel", kernel_transform(ctx, layer, 0, kshape),
                               [kshape[p] for p in _kernel_perm(len(kshape))],
                               1 if c.get("use_bias", True) else None)
    with ctx.b.layer(owner):
        y = ctx.op("Conv", x, w, b, kernel_shape=list(ks), strides=list(ss),
                   dilations=list(ds), group=groups, **attrs)
    out = KT(y, _out_shape(t, cfirst, outs, filters), t.dtype, perm)
    return activate(ctx, c.get("activation"), out, keras2=layer.keras2)


def _depthwise_weight(ctx: Context, layer: Layer, index: int, name: str,
                      bias_index: int | None, fold: bool):
    kshape = tuple(layer.weights()[index].shape)  # (k..., in, multiplier)
    cin, mult = kshape[-2], kshape[-1]
    n = len(kshape) - 2

    def tr(k):
        k = k.reshape(*kshape[:-2], 1, cin * mult)
        return np.transpose(k, _kernel_perm(n + 2))

    shape = (cin * mult, 1, *kshape[:-2])
    if fold:
        w, b, owner = conv_weights(ctx, layer, index, name, tr, shape, bias_index)
    else:
        w = ctx.weight(layer, index, name, transform=tr, shape=shape)
        b = ctx.weight(layer, bias_index, "bias") if bias_index is not None else None
        owner = layer.name
    return w, b, owner, cin, mult


def _depthwise(ctx: Context, layer: Layer, t: KT, index: int, bias_index: int | None):
    c = layer.config
    n, cfirst, ks, ss, ds = _geometry(c, t)
    x, perm = _layout(ctx, t, cfirst)
    sizes, _ = spatial(t, cfirst)
    attrs, outs = padding_attrs(c.get("padding", "valid"), sizes, ks, ss, ds,
                                theano.is_theano(ctx))
    fold = layer.class_name.startswith("Depthwise")
    w, b, owner, cin, mult = _depthwise_weight(ctx, layer, index, "depthwise_kernel",
                                               bias_index, fold)
    with ctx.b.layer(owner):
        y = ctx.op("Conv", x, w, b, kernel_shape=list(ks), strides=list(ss),
                   dilations=list(ds), group=cin, **attrs)
    return y, perm, _out_shape(t, cfirst, outs, cin * mult)


@keras_layer("DepthwiseConv1D", "DepthwiseConv2D")
def depthwise_conv(ctx: Context, layer: Layer, inputs: list[KT]) -> KT:
    t = inputs[0]
    c = layer.config
    y, perm, shape = _depthwise(ctx, layer, t, 0, 1 if c.get("use_bias", True) else None)
    return activate(ctx, c.get("activation"), KT(y, shape, t.dtype, perm), keras2=layer.keras2)


@keras_layer("SeparableConv1D", "SeparableConv2D", "SeparableConvolution1D",
             "SeparableConvolution2D")
def separable_conv(ctx: Context, layer: Layer, inputs: list[KT]) -> KT:
    t = inputs[0]
    c = layer.config
    n = t.rank - 2
    cfirst = c.get("data_format") == "channels_first"
    y, perm, shape = _depthwise(ctx, layer, t, 0, None)
    pshape = tuple(layer.weights()[1].shape)  # (1..., in*mult, filters)
    kp = _kernel_perm(len(pshape))
    w, b, owner = conv_weights(ctx, layer, 1, "pointwise_kernel", lambda k: np.transpose(k, kp),
                               [pshape[p] for p in kp], 2 if c.get("use_bias", True) else None)
    with ctx.b.layer(owner):
        z = ctx.op("Conv", y, w, b, kernel_shape=[1] * n)
    shape = list(shape)
    shape[1 if cfirst else -1] = pshape[-1]
    return activate(ctx, c.get("activation"), KT(z, tuple(shape), t.dtype, perm),
                    keras2=layer.keras2)


def deconv_length(size, k, padding, output_padding, s, d):
    if not isinstance(size, int):
        return None
    eff = k + (k - 1) * (d - 1)
    if output_padding is None:
        return size * s + max(eff - s, 0) if padding == "valid" else size * s
    pad = eff // 2 if padding == "same" else 0
    return (size - 1) * s + eff - 2 * pad + output_padding


@keras_layer("Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose",
             "Convolution2DTranspose", "Convolution3DTranspose")
def conv_transpose(ctx: Context, layer: Layer, inputs: list[KT]) -> KT:
    c = layer.config
    t = inputs[0]
    n, cfirst, ks, ss, ds = _geometry(c, t)
    ops = c.get("output_padding")
    ops = as_tuple(ops, n) if ops is not None else (None,) * n
    padding = c.get("padding", "valid")
    # Keras 1's Deconvolution2D states its output shape instead of deriving it.
    given = ((c.get("_keras1") or {}).get("output_shape") or [None] * (n + 2))
    given = list(given[2:] if cfirst else given[1:-1])
    kshape = tuple(layer.weights()[0].shape)  # (k..., out, in)
    filters = kshape[-2]
    x, perm = _layout(ctx, t, cfirst)
    sizes, _ = spatial(t, cfirst)
    pads_b, pads_e, extra, outs = [], [], [], []
    on_theano = theano.is_theano(ctx)
    for i in range(n):
        size = sizes[i]
        eff = (ks[i] - 1) * ds[i] + 1
        out = deconv_length(size, ks[i], padding, ops[i], ss[i], ds[i])
        explicit = ops[i] is not None
        if isinstance(given[i], int) and out is not None:
            out, explicit = given[i], True
        if out is None:
            raise UnsupportedFeatureError("transposed convolutions need static spatial input sizes")
        full = (size - 1) * ss[i] + eff
        total = max(full - out, 0) if padding == "same" or explicit else 0
        if padding == "valid" and explicit:
            total = 0
        if on_theano and padding == "same":
            # The gradient of Theano's ``half`` convolution: eff // 2 cut at the start, the
            # end cut (or grown) to the output length Keras asked for.
            begin, end = eff // 2, full - out - eff // 2
            pads_b.append(begin)
            pads_e.append(max(end, 0))
            extra.append(max(-end, 0))
        else:
            pads_b.append(total // 2)
            pads_e.append(total - total // 2)
            extra.append(out - (full - total))
        outs.append(out)
    kp = _kernel_perm(len(kshape))
    w = ctx.weight(layer, 0, "kernel", transform=kernel_transform(ctx, layer, 0, kshape),
                   shape=[kshape[p] for p in kp])
    b = ctx.weight(layer, 1, "bias") if c.get("use_bias", True) else None
    y = ctx.op("ConvTranspose", x, w, b, kernel_shape=list(ks), strides=list(ss),
               dilations=list(ds), pads=pads_b + pads_e,
               output_padding=extra if any(extra) else None)
    out = KT(y, _out_shape(t, cfirst, outs, filters), t.dtype, perm)
    return activate(ctx, c.get("activation"), out, keras2=layer.keras2)
