"""Core layers: Dense, Embedding, Flatten, Reshape, Permute, RepeatVector, identities."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from modelport.errors import InvalidModelError
from modelport.importers.keras import masks
from modelport.importers.keras.layers.activations import activate
from modelport.importers.keras.table import (
    KT,
    Context,
    Layer,
    cf_perm,
    ints,
    keras_layer,
    reduce,
)

_IDENTITY_AT_INFERENCE = (
    "Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D", "GaussianDropout",
    "GaussianNoise", "AlphaDropout", "ActivityRegularization", "Identity",
)


@keras_layer(*_IDENTITY_AT_INFERENCE)
def identity(ctx: Context, layer: Layer, inputs: list[KT]) -> KT:
    t = inputs[0]
    return KT(ctx.op("Identity", t.value), t.shape, t.dtype, t.perm, t.fperm)


@keras_layer("Dense")
def dense(ctx: Context, layer: Layer, inputs: list[KT]) -> KT:
    c = layer.config
    t = inputs[0]
    units = int(c["units"])
    use_bias = c.get("use_bias", True)
    kin = int(layer.weights()[0].shape[0])
    if isinstance(t.shape[-1], int) and t.shape[-1] != kin:
        # The config (the shapes leading here) and the weights disagree: a corrupt file.
        raise InvalidModelError(
            f"layer {layer.name!r} (Dense): its kernel has {kin} rows but its input has "
            f"{t.shape[-1]} features (the config does not fit the weights)", path=ctx.path)
    out_shape = (*t.shape[:-1], units)
    if t.rank == 2 and t.fperm is not None:
        w = _permuted_rows(ctx, layer, t.fperm, kin, units)
        y = ctx.op("Gemm", t.value, w, ctx.weight(layer, 1, "bias") if use_bias else None)
        out = KT(y, out_shape, t.dtype)
    elif t.rank == 2:
        y = ctx.op("Gemm", t.value, ctx.weight(layer, 0, "kernel"),
                   ctx.weight(layer, 1, "bias") if use_bias else None)
        out = KT(y, out_shape, t.dtype)
    elif t.perm is not None and tuple(t.perm) == cf_perm(t.rank) and t.rank <= 5:
        # Channels-first physical layout: a Dense on the channel axis is a 1x1 convolution.
        n = t.rank - 2
        w = ctx.weight(layer, 0, "kernel",
                       transform=lambda k: k.T.reshape(units, kin, *([1] * n)),
                       shape=(units, kin, *([1] * n)))
        y = ctx.op("Conv", t.value, w, ctx.weight(layer, 1, "bias") if use_bias else None,
                   kernel_shape=[1] * n)
        out = KT(y, out_shape, t.dtype, t.perm)
    else:
        x = ctx.logical(t)
        y = ctx.op("MatMul", x, ctx.weight(layer, 0, "kernel"))
        if use_bias:
            y = ctx.op("Add", y, ctx.weight(layer, 1, "bias"))
        out = KT(y, out_shape, t.dtype)
    return activate(ctx, c.get("activation"), out, keras2=layer.keras2)


def _permuted_rows(ctx: Context, layer: Layer, fperm: np.ndarray, kin: int, units: int):
    """Dense kernel with row j moved to fperm[j], read in blocks straight into place (a
    VGG fc1 kernel is 400 MB: no second full copy)."""
    from modelport.graph_ir.tensors import lazy_tensor

    ds = layer.weights()[0]
    dtype = np.dtype(ds.dtype if ds.dtype.kind == "f" else np.float32)

    def read() -> np.ndarray:
        out = np.empty((kin, units), dtype)
        step = max(1, (16 << 20) // max(1, units * dtype.itemsize))
        for r0 in range(0, kin, step):
            r1 = min(kin, r0 + step)
            out[fperm[r0:r1]] = ds[r0:r1]
        return out

    return ctx.b.initializer(f"{layer.name}/kernel", lazy_tensor(read, dtype, (kin, units)))


@keras_layer("Embedding")
def embedding(ctx: Context, layer: Layer, inputs: list[KT]) -> KT:
    t = inputs[0]
    w = ctx.weight(layer, 0, "embeddings")
    dim = int(layer.weights()[0].shape[1])
    ids = ctx.logical(t)
    idx = ctx.op("Cast", ids, to=7)
    out = KT(ctx.op("Gather", w, idx, axis=0), (*t.shape, dim), np.dtype(np.float32))
    if layer.config.get("mask_zero"):
        # Keras masks the steps whose id is 0 (see importers/keras/masks.py).
        zero = ctx.const(np.zeros((), t.dtype), "zero")
        out.mask = ctx.op("Not", ctx.op("Equal", ids, zero)) if t.rank == 2 else masks.UNKNOWN
    return out


@keras_layer("Masking")
def masking(ctx: Context, layer: Layer, inputs: list[KT]) -> KT:
    """Zeroes the time steps whose features all equal mask_value, and masks them."""
    t = inputs[0]
    x = ctx.logical(t)
    value = ctx.const(np.array(layer.config.get("mask_value", 0.0), t.dtype), "mask_value")
    to = ir.DataType.from_numpy(t.dtype).value
    differs = ctx.op("Cast", ctx.op("Not", ctx.op("Equal", x, value)), to=to)
    keep = reduce(ctx, "ReduceMax", differs, [-1], True)  # (N, T, 1): 1 where a step is kept
    y = ctx.op("Mul", x, keep)
    out = KT(y, t.shape, t.dtype)
    out.mask = ctx.op("Cast", ctx.op("Squeeze", keep, ints(ctx, [-1], "axes")), to=9) \
        if t.rank == 3 else masks.UNKNOWN
    return out


def flatten_order(t: KT, axes_order: list[int]) -> np.ndarray | None:
    """Physical position of each logical feature when flattening in ``axes_order``."""
    phys = list(t.perm or range(t.rank))[1:]
    dims = [t.shape[a] for a in phys]
    if not all(isinstance(d, int) for d in dims):
        return None
    idx = np.arange(int(np.prod(dims))).reshape(dims)
    order = np.transpose(idx, [phys.index(a) for a in axes_order]).ravel()
    if np.array_equal(order, np.arange(order.size)):
        return np.array([], np.int64)  # identity
    return order


@keras_layer("Flatten")
def flatten(ctx: Context, layer: Layer, inputs: list[KT]) -> KT:
    t = ctx.unflatten(inputs[0])
    r = t.rank
    axes = list(range(1, r))
    if layer.config.get("data_format") == "channels_first" and r > 2:
        axes = [*range(2, r), 1]
    dims = [t.shape[a] for a in axes]
    total = int(np.prod(dims)) if all(isinstance(d, int) for d in dims) else None
    order = flatten_order(t, axes)
    if order is None:  # dynamic dims: go through the logical order
        x = ctx.logical(t)
        if axes != list(range(1, r)):
            x = ctx.op("Transpose", x, perm=[0, *axes])
        return KT(ctx.op("Flatten", x, axis=1), (t.shape[0], total), t.dtype)
    y = ctx.op("Flatten", t.value, axis=1)
    if order.size:
        phys = list(t.perm or range(t.rank))
        ctx.flat_notes[id(order)] = ",".join(str(t.shape[a]) for a in phys[1:]) + "|" + \
            ",".join(map(str, [0, *[phys.index(a) for a in axes]]))
    return KT(y, (t.shape[0], total), t.dtype, None, order if order.size else None)


@keras_layer("Reshape")
def reshape(ctx: Context, layer: Layer, inputs: list[KT]) -> KT:
    t = inputs[0]
    target = [int(d) for d in layer.config["target_shape"]]
    x = ctx.logical(t)
    known = [d for d in t.shape[1:]]
    if -1 in target and all(isinstance(d, int) for d in known):
        total = int(np.prod(known))
        rest = int(np.prod([d for d in target if d != -1]))
        target = [total // rest if d == -1 else d for d in target]
    if -1 in target:
        spec = [0, *target]
    else:
        spec = [-1, *target]
    y = ctx.op("Reshape", x, ints(ctx, spec, "shape"))
    return KT(y, (t.shape[0], *[d if d != -1 else None for d in target]), t.dtype)


@keras_layer("Permute")
def permute(ctx: Context, layer: Layer, inputs: list[KT]) -> KT:
    t = ctx.unflatten(inputs[0])
    q = [0, *[int(d) for d in layer.config["dims"]]]
    shape = tuple(t.shape[a] for a in q)
    src = list(t.perm or range(t.rank))
    perm = tuple(q.index(a) for a in src)  # no data moves: only the logical view changes
    if perm == tuple(range(t.rank)):
        perm = None
    return KT(ctx.op("Identity", t.value), shape, t.dtype, perm)


@keras_layer("RepeatVector")
def repeat_vector(ctx: Context, layer: Layer, inputs: list[KT]) -> KT:
    t = inputs[0]
    n = int(layer.config["n"])
    x = ctx.op("Unsqueeze", ctx.logical(t), ints(ctx, [1], "axes"))
    y = ctx.op("Expand", x, ints(ctx, [1, n, 1], "shape"))
    return KT(y, (t.shape[0], n, t.shape[1]), t.dtype)
