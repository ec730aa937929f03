"""Convolutional LSTMs: ConvLSTM1D, ConvLSTM2D, ConvLSTM3D, unrolled over a static time axis.

ONNX has no convolutional recurrence, so the loop is written out step by step, which needs the
number of timesteps in the input shape. The input-to-gates convolution does not depend on the
state, so it runs once for all timesteps (time folded into the batch); each step then adds the
recurrent convolution of the previous output (stride 1, SAME padding, no dilation, as Keras
does), splits the four gates (Keras order i, f, c, o) and updates the carry:

    c' = f * c + i * act(g),   h' = o * act(c')

Values are kept channels-first inside the loop (``(N, F, *spatial)``); the results are handed on
as channels-first tensors with their ``perm``, so a following convolution needs no Transpose.
Kernels are re-laid out for ONNX inside the weight read: ``(k..., in, 4F) -> (4F, in, k...)``.
"""

from __future__ import annotations

from modelport.errors import UnsupportedFeatureError
from modelport.importers.keras import theano
from modelport.importers.keras.layers.activations import activate
from modelport.importers.keras.layers.conv import kernel_transform, padding_attrs, same_pads
from modelport.importers.keras.layers.recurrent import _states
from modelport.importers.keras.table import KT, Context, Layer, as_tuple, cf_perm, ints, keras_layer


def _kernel_perm(rank: int) -> list[int]:
    return [rank - 1, rank - 2, *range(rank - 2)]


@keras_layer("ConvLSTM1D", "ConvLSTM2D", "ConvLSTM3D")
def conv_lstm(ctx: Context, layer: Layer, inputs: list[KT]) -> list[KT] | KT:
    c = layer.config
    x = inputs[0]
    name = layer.class_name
    if c.get("stateful"):
        raise UnsupportedFeatureError(f"stateful {name} layers are not supported")
    kw = getattr(ctx, "kwargs", {}) or {}
    if isinstance(kw.get("mask"), KT) or getattr(ctx, "mask", None) is not None:
        raise UnsupportedFeatureError(f"{name} with a mask (padded sequences) is not supported")
    n = x.rank - 3  # spatial rank
    if n < 1:
        raise UnsupportedFeatureError(f"{name} expects (batch, time, ..., channels) inputs, got rank {x.rank}")
    steps = x.shape[1]
    if not isinstance(steps, int) or steps < 1:
        raise UnsupportedFeatureError(f"{name} needs a fixed number of timesteps (the input's time axis is "
                         "unknown); build the model with a static sequence length or give it "
                         "with --input NAME:DIMS")
    cfirst = c.get("data_format") == "channels_first"
    ks = as_tuple(c["kernel_size"], n)
    ss = as_tuple(c.get("strides", 1), n)
    ds = as_tuple(c.get("dilation_rate", 1), n)
    filters = int(c["filters"])
    sizes = list(x.shape[3:]) if cfirst else list(x.shape[2:-1])
    cin = x.shape[2] if cfirst else x.shape[-1]
    if not all(isinstance(s, int) for s in [*sizes, cin]):
        raise UnsupportedFeatureError(f"{name} needs static spatial and channel sizes")
    padding = str(c.get("padding", "valid")).lower()
    if padding not in ("valid", "same"):
        raise UnsupportedFeatureError(f"{name} padding {padding!r} is not supported")
    on_theano = theano.is_theano(ctx)
    attrs, outs = padding_attrs(padding, sizes, ks, ss, ds, on_theano)
    if any(o is None or o < 1 for o in outs):
        raise UnsupportedFeatureError(f"{name}: the kernel does not fit the input")

    # Weights: kernel, recurrent_kernel, bias (Keras order).
    ws = layer.weights()
    kshape = tuple(int(d) for d in ws[0].shape)
    rshape = tuple(int(d) for d in ws[1].shape)
    kp = _kernel_perm(len(kshape))
    w = ctx.weight(layer, 0, "kernel", transform=kernel_transform(ctx, layer, 0, kshape),
                   shape=[kshape[p] for p in kp])
    r = ctx.weight(layer, 1, "recurrent_kernel",
                   transform=kernel_transform(ctx, layer, 1, rshape),
                   shape=[rshape[p] for p in kp])
    b = ctx.weight(layer, 2, "bias") if c.get("use_bias", True) else None

    # All timesteps' input convolutions at once: (N, T, C, *S) -> (N*T, C, *S) -> Conv.
    seq_perm = None if cfirst else (0, 1, x.rank - 1, *range(2, x.rank - 1))
    xs = ctx.to_perm(x, seq_perm)
    xs = ctx.op("Reshape", xs, ints(ctx, [-1, cin, *sizes], "shape"))
    xg = ctx.op("Conv", xs, w, b, kernel_shape=list(ks), strides=list(ss), dilations=list(ds),
                **attrs)
    # (N*T, 4F, *S') -> (N, T*4F, *S') -> one (N, 4F, *S') piece per timestep.
    xg = ctx.op("Reshape", xg, ints(ctx, [-1, steps * 4 * filters, *outs], "shape"))
    if steps > 1:
        xg = ctx.op("Split", xg, ints(ctx, [4 * filters] * steps, "split"), axis=1,
                    outputs=steps)
    xg = list(xg) if steps > 1 else [xg]

    state_shape = (x.shape[0], filters, *outs) if cfirst else (x.shape[0], *outs, filters)
    state_perm = None if cfirst else cf_perm(n + 2)
    rpads = [(theano.same_pads if on_theano else same_pads)(o, k, 1, 1)
             for o, k in zip(outs, ks)]
    rattrs = {"kernel_shape": list(ks), "pads": [p[0] for p in rpads] + [p[1] for p in rpads]}
    split = ints(ctx, [filters] * 4, "split")
    keras2 = layer.keras2

    def act(spec, v):
        return activate(ctx, spec, KT(v, state_shape, x.dtype, state_perm), keras2=keras2).value

    states = _states(ctx, inputs)
    if len(states) not in (0, 2):
        raise UnsupportedFeatureError(f"{name} takes two initial states (h and c), got {len(states)}")
    h = ctx.to_perm(states[0], state_perm) if states else None
    cs = ctx.to_perm(states[1], state_perm) if states else None
    rec, cact = c.get("recurrent_activation", "sigmoid"), c.get("activation", "tanh")
    order = range(steps - 1, -1, -1) if c.get("go_backwards") else range(steps)
    hs = []
    for t in order:
        z = xg[t]
        if h is not None:
            z = ctx.op("Add", z, ctx.op("Conv", h, r, **rattrs))
        gi, gf, gc, go = ctx.op("Split", z, split, axis=1, outputs=4)
        cand = ctx.op("Mul", act(rec, gi), act(cact, gc))
        cs = cand if cs is None else ctx.op("Add", ctx.op("Mul", act(rec, gf), cs), cand)
        h = ctx.op("Mul", act(rec, go), act(cact, cs))
        hs.append(h)

    last_h = KT(h, state_shape, x.dtype, state_perm)
    if c.get("return_sequences"):
        seq = hs[0] if steps == 1 else ctx.op("Concat", *hs, axis=1)
        seq = ctx.op("Reshape", seq, ints(ctx, [-1, steps, filters, *outs], "shape"))
        shape = (x.shape[0], steps, *state_shape[1:])
        out = KT(seq, shape, x.dtype, None if cfirst else (0, 1, n + 2, *range(2, n + 2)))
    else:
        out = last_h
    if c.get("return_state"):
        return [out, last_h, KT(cs, state_shape, x.dtype, state_perm)]
    return out
