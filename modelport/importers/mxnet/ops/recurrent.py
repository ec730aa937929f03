"""Recurrent layers: the fused ``RNN`` operator (LSTM, GRU, vanilla ReLU/tanh; several layers;
uni- and bidirectional; as Gluon exports it, with its parameters concatenated by
``_rnn_param_concat``) and the ``_zeros``/``_ones`` begin states Gluon adds.

MXNet's flat parameter vector holds, for each layer and direction, the input and recurrent
weight matrices, then all biases in the same order; gates are in cuDNN order (LSTM i, f, c, o;
GRU r, z, n). ONNX wants LSTM i, o, f, c and GRU z, r, h (with ``linear_before_reset``, which
is cuDNN's GRU), so each block is re-ordered with a constant Gather.
"""

from __future__ import annotations

import numpy as np

from modelport.importers.mxnet.ops._util import norm_axis
from modelport.importers.mxnet.table import mxnet_op

_GATES = {"lstm": 4, "gru": 3, "rnn_relu": 1, "rnn_tanh": 1}
_ORDER = {"lstm": [0, 3, 1, 2], "gru": [1, 0, 2], "rnn_relu": [0], "rnn_tanh": [0]}


class ZerosState:
    """A ``_zeros``/``_ones`` begin state whose batch dimension MXNet leaves to inference (0);
    the RNN translator makes it with the real batch size."""

    def __init__(self, shape: tuple[int, ...], value: float) -> None:
        self.shape = shape
        self.value = value


@mxnet_op("_zeros", "_ones", "zeros", "ones", "_full", "full")
def fill(ctx, node, inputs):
    shape = tuple(node.attrs.ints("shape"))
    value = {"_zeros": 0.0, "zeros": 0.0, "_ones": 1.0, "ones": 1.0}.get(node.op)
    if value is None:
        value = node.attrs.float("value", 0.0)
    if any(d <= 0 for d in shape):
        return [ZerosState(shape, value)]
    dtype = np.dtype(node.attrs.str("dtype", "float32"))
    return [ctx.op("Identity", ctx.const(np.full(shape, value, dtype), "fill"))]


@mxnet_op("_rnn_param_concat")
def rnn_param_concat(ctx, node, inputs):
    values = [ctx.data(v) for v in inputs]
    axis = norm_axis(node.attrs.int("dim", 0), ctx.rank(values[0]))
    return [ctx.op("Concat", *values, axis=axis)]


def _state(ctx, value, shape, name):
    if isinstance(value, ZerosState):
        return ctx.const(np.full(shape, value.value, np.float32), name)
    value = ctx.data(value)
    if tuple(ctx.shape(value)) != tuple(shape):
        raise ctx.fail(f"begin state has shape {list(ctx.shape(value))}, expected {list(shape)}")
    return value


@mxnet_op("RNN")
def rnn(ctx, node, inputs):
    a = node.attrs
    x = ctx.data(inputs[0])
    mode = a.str("mode")
    if mode not in _GATES:
        raise ctx.fail(f"mode {mode!r} is not supported")
    for unsupported in ("projection_size", "lstm_state_clip_min", "lstm_state_clip_max"):
        if unsupported in a:
            raise ctx.fail(f"{unsupported} is not supported")
    if a.bool("use_sequence_length", False):
        raise ctx.fail("use_sequence_length is not supported")
    steps, batch, width = ctx.shape(x)
    hidden, layers = a.required_int("state_size"), a.int("num_layers", 1)
    dirs = 2 if a.bool("bidirectional", False) else 1
    gates = _GATES[mode]
    flat = ctx.data(inputs[1])
    sizes = []
    for layer in range(layers):
        in_width = width if layer == 0 else hidden * dirs
        sizes += [(gates * hidden, in_width), (gates * hidden, hidden)] * dirs
    total = sum(r * c for r, c in sizes) + 2 * layers * dirs * gates * hidden
    if ctx.shape(flat) != (total,):
        raise ctx.fail(f"the parameter vector has shape {list(ctx.shape(flat))}, the layer "
                       f"needs ({total},)")
    order = ctx.const(np.asarray(_ORDER[mode], np.int64), "gate_order")
    offset = 0

    def take(rows: int, cols: int | None):
        nonlocal offset
        n = rows * (cols or 1)
        part = ctx.op("Slice", flat, ctx.ints([offset], "s"), ctx.ints([offset + n], "e"),
                      ctx.ints([0], "ax"))
        offset += n
        gate_shape = [gates, hidden] + ([cols] if cols else [])
        part = ctx.op("Reshape", part, ctx.ints(gate_shape, "gates"))
        part = ctx.op("Gather", part, order, axis=0)
        return ctx.op("Reshape", part, ctx.ints([rows] + ([cols] if cols else []), "mat"))

    weights = []
    for layer in range(layers):
        in_width = width if layer == 0 else hidden * dirs
        weights.append([(take(gates * hidden, in_width), take(gates * hidden, hidden))
                        for _ in range(dirs)])
    biases = []
    for _ in range(layers):
        biases.append([(take(gates * hidden, None), take(gates * hidden, None))
                       for _ in range(dirs)])
    state_shape = (layers * dirs, batch, hidden)
    h0 = _state(ctx, inputs[2], state_shape, "h0") if len(inputs) > 2 else \
        ctx.const(np.zeros(state_shape, np.float32), "h0")
    c0 = None
    if mode == "lstm":
        c0 = _state(ctx, inputs[3], state_shape, "c0") if len(inputs) > 3 else \
            ctx.const(np.zeros(state_shape, np.float32), "c0")
    op = {"lstm": "LSTM", "gru": "GRU"}.get(mode, "RNN")
    extra = {}
    if mode == "gru":
        extra["linear_before_reset"] = 1
    if mode in ("rnn_relu", "rnn_tanh"):
        extra["activations"] = ["Relu" if mode == "rnn_relu" else "Tanh"] * dirs
    direction = "bidirectional" if dirs == 2 else "forward"
    cur = x
    hs, cs = [], []
    for layer in range(layers):
        def stack(values):
            parts = [ctx.op("Unsqueeze", v, ctx.ints([0], "axes")) for v in values]
            return ctx.op("Concat", *parts, axis=0) if len(parts) > 1 else parts[0]

        w = stack([wi for wi, _ in weights[layer]])
        r = stack([wh for _, wh in weights[layer]])
        b = stack([ctx.op("Concat", bi, bh, axis=0) for bi, bh in biases[layer]])
        sl = [layer * dirs, (layer + 1) * dirs]
        h_l = ctx.op("Slice", h0, ctx.ints([sl[0]], "s"), ctx.ints([sl[1]], "e"),
                     ctx.ints([0], "ax"))
        args = [cur, w, r, b, None, h_l]
        if c0 is not None:
            args.append(ctx.op("Slice", c0, ctx.ints([sl[0]], "s"), ctx.ints([sl[1]], "e"),
                               ctx.ints([0], "ax")))
        n_out = 3 if mode == "lstm" else 2
        outs = ctx.op(op, *args, hidden_size=hidden, direction=direction, outputs=n_out,
                      **extra)
        y = ctx.op("Transpose", outs[0], perm=[0, 2, 1, 3])  # (T, D, N, H) -> (T, N, D, H)
        cur = ctx.op("Reshape", y, ctx.ints([steps, batch, dirs * hidden], "y"))
        hs.append(outs[1])
        if mode == "lstm":
            cs.append(outs[2])
    results = [cur]
    if a.bool("state_outputs", False):
        results.append(ctx.op("Concat", *hs, axis=0) if len(hs) > 1 else
                       ctx.op("Identity", hs[0]))
        if mode == "lstm":
            results.append(ctx.op("Concat", *cs, axis=0) if len(cs) > 1 else
                           ctx.op("Identity", cs[0]))
    # The layer's main output last, so per-layer verification reads it.
    results[0] = ctx.op("Identity", results[0])
    return results



