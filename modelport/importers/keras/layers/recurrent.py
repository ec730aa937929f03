"""Recurrent layers: SimpleRNN, LSTM, GRU (as ONNX RNN/LSTM/GRU), with return_sequences,
return_state, go_backwards and initial states.

Keras kernels are ``(input, gates*units)`` with gates in Keras order; ONNX wants
``(gates*units, input)`` in its own order (LSTM: Keras i,f,c,o -> ONNX i,o,f,c). The
reordering happens in the weight read.
"""

from __future__ import annotations

import numpy as np

from modelport.errors import UnsupportedFeatureError
from modelport.importers.keras.layers.activations import activation_name
from modelport.importers.keras.table import KT, Context, Layer, ints, keras_layer

_ONNX_ACT = {"tanh": "Tanh", "sigmoid": "Sigmoid", "relu": "Relu", "softsign": "Softsign",
             "softplus": "Softplus", "elu": "Elu", "linear": "Affine", "hard_sigmoid": "HardSigmoid"}
_GATES = {"SimpleRNN": 1, "LSTM": 4, "GRU": 3}
_ONNX_OP = {"SimpleRNN": "RNN", "LSTM": "LSTM", "GRU": "GRU"}


def _act(name: str, keras2: bool) -> tuple[str, float | None, float | None]:
    name = activation_name(name)
    if name not in _ONNX_ACT:
        raise UnsupportedFeatureError(f"recurrent activation {name!r} is not supported")
    if name == "hard_sigmoid":
        return "HardSigmoid", (0.2 if keras2 else 1.0 / 6.0), 0.5
    if name == "linear":
        return "Affine", 1.0, 0.0
    return _ONNX_ACT[name], None, None


def _reorder(kind: str, units: int):
    if kind != "LSTM":
        return lambda a: a
    idx = np.concatenate([np.arange(g * units, (g + 1) * units) for g in (0, 3, 1, 2)])
    return lambda a: a[..., idx]


def _reverse_time(ctx: Context, x):
    return ctx.op("Slice", x, ints(ctx, [-1], "starts"), ints(ctx, [-(2 ** 62)], "ends"),
                  ints(ctx, [1], "axes"), ints(ctx, [-1], "steps"))


_INT32, _INT64, _FLOAT = 6, 7, 1


def _compact(ctx: Context, seq, mask):
    """Move the unmasked steps of (N, T, F) ``seq`` to the front, in order.

    Keras skips a masked step (the state is carried over), so a masked sequence gives the
    same state as the sequence of its unmasked steps alone, wherever the padding is. ONNX
    recurrent ops take a length per sequence: the compacted sequence with those lengths
    computes what Keras computes. Returns (compacted sequence, lengths (N,) int32,
    running count of unmasked steps (N, T) int64).
    """
    m = ctx.op("Cast", mask, to=_INT64)
    shape = ctx.op("Shape", seq)
    t = ctx.op("Slice", shape, ints(ctx, [1], "s1"), ints(ctx, [2], "e2"))
    steps = ctx.op("Range", ctx.const(np.array(0, np.int64), "zero"),
                   ctx.op("Squeeze", t, ints(ctx, [0], "axes")),
                   ctx.const(np.array(1, np.int64), "one"))
    # Sort key: unmasked steps first, each group in time order (keys are distinct).
    key = ctx.op("Add", ctx.op("Mul", ctx.op("Sub", ctx.const(np.array(1, np.int64), "one"), m),
                               t), steps)
    _, order = ctx.op("TopK", ctx.op("Cast", key, to=_FLOAT), t, axis=1, largest=0, sorted=1,
                      outputs=2)
    index = ctx.op("Expand", ctx.op("Unsqueeze", order, ints(ctx, [2], "axes")), shape)
    compact = ctx.op("GatherElements", seq, index, axis=1)
    lengths = ctx.op("Cast", ctx.op("ReduceSum", m, ints(ctx, [1], "axes"), keepdims=0),
                     to=_INT32)
    return compact, lengths, ctx.op("CumSum", m, ctx.const(np.array(1, np.int64), "axis"))


def _expand_masked(ctx: Context, y, count, mask, zero_for_mask: bool):
    """Outputs per original step from the outputs of the compacted sequence (N, T, U): a
    masked step repeats the last unmasked step's output (zeros before the first), or is
    zero when the layer was built with zero_output_for_mask."""
    shape = ctx.op("Shape", y)
    head = ctx.op("Concat", ctx.op("Slice", shape, ints(ctx, [0], "s0"), ints(ctx, [1], "e1")),
                  ints(ctx, [1], "one"),
                  ctx.op("Slice", shape, ints(ctx, [2], "s2"), ints(ctx, [3], "e3")), axis=0)
    zeros = ctx.op("ConstantOfShape", head)
    padded = ctx.op("Concat", zeros, y, axis=1)  # row k+1 = output of the k-th unmasked step
    index = ctx.op("Expand", ctx.op("Unsqueeze", count, ints(ctx, [2], "axes")), shape)
    out = ctx.op("GatherElements", padded, index, axis=1)
    if zero_for_mask:
        keep = ctx.op("Unsqueeze", ctx.op("Cast", mask, to=_FLOAT), ints(ctx, [2], "axes"))
        out = ctx.op("Mul", out, keep)
    return out


def run_rnn(ctx: Context, layer: Layer, kind: str, cfg: dict, base: int, x: KT,
            states: list[KT], tag: str = "", mask=None) -> list[KT]:
    """One recurrent layer over (N, T, F) ``x`` using weights ``base..`` of ``layer``;
    ``mask`` (bool (N, T) or None) marks the steps Keras processes."""
    units = int(cfg["units"])
    gates = _GATES[kind]
    ws = layer.weights()
    fin = int(ws[base].shape[0])
    reorder = _reorder(kind, units)
    use_bias = cfg.get("use_bias", True)
    w = ctx.weight(layer, base, f"{tag}W", transform=lambda k: reorder(k).T[None],
                   shape=(1, gates * units, fin))
    r = ctx.weight(layer, base + 1, f"{tag}R", transform=lambda k: reorder(k).T[None],
                   shape=(1, gates * units, units))
    attrs: dict = {"hidden_size": units}
    bias = None
    if use_bias:
        bshape = tuple(ws[base + 2].shape)
        if kind == "GRU" and len(bshape) == 2:  # reset_after: input and recurrent biases
            bias = ctx.weight(layer, base + 2, f"{tag}B",
                              transform=lambda b: b.reshape(1, -1), shape=(1, 2 * gates * units))
        else:
            bias = ctx.weight(layer, base + 2, f"{tag}B", transform=lambda b: np.concatenate(
                [reorder(b), np.zeros_like(b)])[None], shape=(1, 2 * gates * units))
    if kind == "GRU":
        attrs["linear_before_reset"] = int(bool(cfg.get("reset_after", True)))
    acts, alphas, betas = [], [], []
    keras2 = layer.keras2
    order = [cfg.get("activation", "tanh")]
    if kind in ("LSTM", "GRU"):
        order = [cfg.get("recurrent_activation", "sigmoid"), cfg.get("activation", "tanh")]
        if kind == "LSTM":
            order.append(cfg.get("activation", "tanh"))
    for a in order:
        op_name, alpha, beta = _act(a, keras2)
        acts.append(op_name)
        if alpha is not None:
            alphas.append(alpha)
            betas.append(beta)
    attrs["activations"] = acts
    if alphas:
        attrs["activation_alpha"] = alphas
        attrs["activation_beta"] = betas
    seq = ctx.logical(x)
    if cfg.get("go_backwards"):
        seq = _reverse_time(ctx, seq)
        if mask is not None:
            mask = _reverse_time(ctx, mask)
    lengths = count = None
    if mask is not None:
        seq, lengths, count = _compact(ctx, seq, mask)
    tm = ctx.op("Transpose", seq, perm=[1, 0, 2])
    init = [ctx.op("Unsqueeze", ctx.logical(s), ints(ctx, [0], "axes")) for s in states]
    n_out = 3 if kind == "LSTM" else 2
    inputs = [tm, w, r, bias, lengths]
    inputs += init[:2] if kind == "LSTM" else init[:1]
    if kind == "LSTM" and len(init) == 1:
        inputs.append(None)
    while inputs and inputs[-1] is None:
        inputs.pop()
    outs = ctx.op(_ONNX_OP[kind], *inputs, outputs=n_out, **attrs)
    y, yh = outs[0], outs[1]
    n, t = x.shape[0], x.shape[1]
    results: list[KT] = []
    if cfg.get("return_sequences"):
        seq_out = ctx.op("Transpose", ctx.op("Squeeze", y, ints(ctx, [1], "axes")), perm=[1, 0, 2])
        if mask is not None:
            seq_out = _expand_masked(ctx, seq_out, count, mask,
                                     bool(cfg.get("zero_output_for_mask")))
        results.append(KT(seq_out, (n, t, units), x.dtype))
    else:
        results.append(KT(ctx.op("Squeeze", yh, ints(ctx, [0], "axes")), (n, units), x.dtype))
    if cfg.get("return_state"):
        h = results[0] if not cfg.get("return_sequences") else KT(
            ctx.op("Squeeze", yh, ints(ctx, [0], "axes")), (n, units), x.dtype)
        results.append(h)
        if kind == "LSTM":
            results.append(KT(ctx.op("Squeeze", outs[2], ints(ctx, [0], "axes")), (n, units),
                              x.dtype))
    return results


def _states(ctx: Context, inputs: list[KT]) -> list[KT]:
    kw = getattr(ctx, "kwargs", {}) or {}
    init = kw.get("initial_state")
    if isinstance(init, KT):
        return [init]
    if isinstance(init, list):
        return [s for s in init if isinstance(s, KT)]
    return list(inputs[1:])


@keras_layer("SimpleRNN", "LSTM", "GRU", "CuDNNLSTM", "CuDNNGRU")
def recurrent(ctx: Context, layer: Layer, inputs: list[KT]) -> list[KT]:
    kind = layer.class_name.replace("CuDNN", "")
    cfg = dict(layer.config)
    if layer.class_name == "CuDNNGRU":
        cfg["reset_after"] = True
    if cfg.get("stateful"):
        raise UnsupportedFeatureError("stateful recurrent layers are not supported")
    mask = getattr(ctx, "mask", None)
    out = run_rnn(ctx, layer, kind, cfg, 0, inputs[0], _states(ctx, inputs), mask=mask)
    if mask is not None and cfg.get("return_sequences"):
        out[0].mask = mask  # Keras passes the mask on with the sequence (not the states)
    return out


@keras_layer("Bidirectional")
def bidirectional(ctx: Context, layer: Layer, inputs: list[KT]) -> list[KT]:
    c = layer.config
    fwd = c["layer"]
    bwd = c.get("backward_layer")
    fcfg = dict(fwd["config"])
    if bwd is not None:
        bcfg = dict(bwd["config"])
    else:
        bcfg = dict(fcfg)
        bcfg["go_backwards"] = not fcfg.get("go_backwards", False)
    kind = fwd["class_name"]
    n_w = 3 if fcfg.get("use_bias", True) else 2
    states = _states(ctx, inputs)
    half = len(states) // 2
    mask = getattr(ctx, "mask", None)
    if mask is not None:
        # Bidirectional makes both directions output zeros at masked steps of a sequence.
        fcfg["zero_output_for_mask"] = bcfg["zero_output_for_mask"] = bool(
            fcfg.get("return_sequences"))
    f = run_rnn(ctx, layer, kind, fcfg, 0, inputs[0], states[:half], "forward_", mask)
    b = run_rnn(ctx, layer, kind, bcfg, n_w, inputs[0], states[half:], "backward_", mask)
    y, yb = f[0], b[0]
    yb_val = yb.value
    if fcfg.get("return_sequences"):
        yb_val = _reverse_time(ctx, yb_val)
    mode = c.get("merge_mode", "concat")
    if mode == "concat":
        shape = (*y.shape[:-1], y.shape[-1] * 2)
        out = [KT(ctx.op("Concat", y.value, yb_val, axis=-1), shape, y.dtype)]
    elif mode in ("sum", "ave", "mul"):
        v = ctx.op("Mul" if mode == "mul" else "Add", y.value, yb_val)
        if mode == "ave":
            v = ctx.op("Mul", v, ctx.const(np.array(0.5, np.float32), "half"))
        out = [KT(v, y.shape, y.dtype)]
    elif mode is None:
        out = [y, KT(yb_val, yb.shape, yb.dtype)]
    else:
        raise UnsupportedFeatureError(f"merge_mode {mode!r} is not supported")
    if mask is not None and fcfg.get("return_sequences"):
        for t in out[:2 if mode is None else 1]:
            t.mask = mask
    if fcfg.get("return_state"):
        out += f[1:] + b[1:]
    return out
