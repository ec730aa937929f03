"""Attention layers: MultiHeadAttention (any attention_axes; masks on the common
(batch, seq, features) path), Attention (dot-product and concat scores) and AdditiveAttention
(Bahdanau scores). Dropout is identity at inference."""

from __future__ import annotations

import math

import numpy as np

from modelport.errors import UnsupportedFeatureError
from modelport.importers.keras.table import KT, Context, Layer, ints, keras_layer, scalar


def _causal_mask(ctx: Context, scores, q, k):
    """Add -inf-like values above the diagonal of (.., T, S) scores."""
    tq = ctx.op("Gather", ctx.op("Shape", q), ints(ctx, [1], "i"), axis=0)
    tk = ctx.op("Gather", ctx.op("Shape", k), ints(ctx, [1], "i"), axis=0)
    ones = ctx.op("ConstantOfShape", ctx.op("Concat", tq, tk, axis=0),
                  value=np.array([1.0], np.float32))
    lower = ctx.op("Trilu", ones, upper=0)
    penalty = ctx.op("Mul", ctx.op("Sub", scalar(ctx, 1.0), lower), scalar(ctx, -1e9))
    return ctx.op("Add", scores, penalty)


def _kt_mask(x):
    return x.value if isinstance(x, KT) else None


def _attention_mask(ctx: Context, q: KT, v: KT, k: KT, kw: dict, explicit_qv=None):
    """The bool (N, T, S) mask of the positions a query may attend to, or None: the
    query/value/key Keras masks (of the inputs, or passed explicitly) and an explicit
    attention_mask, ANDed as Keras does. Also returns the query mask (None if none)."""
    qm = _kt_mask(kw.get("query_mask")) or q.mask
    vm = _kt_mask(kw.get("value_mask")) or v.mask
    km = _kt_mask(kw.get("key_mask")) or (k.mask if k is not v else None)
    if explicit_qv is not None:
        qm = explicit_qv[0] if explicit_qv[0] is not None else qm
        vm = explicit_qv[1] if explicit_qv[1] is not None else vm
    mask = None
    if qm is not None:
        mask = ctx.op("Unsqueeze", qm, ints(ctx, [2], "axes"))  # (N, T, 1)
    for m in (vm, km):
        if m is not None:
            m = ctx.op("Unsqueeze", m, ints(ctx, [1], "axes"))  # (N, 1, S)
            mask = m if mask is None else ctx.op("And", mask, m)
    am = kw.get("attention_mask")
    if isinstance(am, KT):
        a = ctx.logical(am)
        a = a if am.dtype == bool else ctx.op("Cast", a, to=9)
        mask = a if mask is None else ctx.op("And", a, mask)
    return mask, qm


def _mask_scores(ctx: Context, scores, mask):
    """Masked positions get a large negative score (a row masked entirely then averages
    every value, as Keras' softmax does)."""
    return ctx.op("Where", mask, scores, scalar(ctx, -1e9))


@keras_layer("MultiHeadAttention")
def multi_head_attention(ctx: Context, layer: Layer, inputs: list[KT]) -> KT:
    c = layer.config
    kw = getattr(ctx, "kwargs", {}) or {}
    q = inputs[0]
    v = inputs[1] if len(inputs) > 1 else kw.get("value")
    k = inputs[2] if len(inputs) > 2 else kw.get("key") or v
    if not isinstance(v, KT):
        raise UnsupportedFeatureError("MultiHeadAttention called without a value tensor")
    if c.get("use_gate"):
        raise UnsupportedFeatureError("MultiHeadAttention(use_gate=True) is not supported")
    if c.get("sliding_window") is not None:
        raise UnsupportedFeatureError("MultiHeadAttention(sliding_window=...) is not supported")
    axes = _mha_axes(layer, q.rank)
    if q.rank == 3 and axes == (1,):
        return _mha_sequence(ctx, layer, q, v, k, kw)
    return _mha_general(ctx, layer, q, v, k, kw, axes)


def _mha_axes(layer: Layer, rank: int) -> tuple[int, ...]:
    """The attention axes of inputs of ``rank``, as non-negative input axes."""
    given = layer.config.get("attention_axes")
    if given is None:
        return tuple(range(1, rank - 1))
    given = [given] if isinstance(given, int) else list(given)
    # Negative axes count from the end of the projected (rank + 1) tensor in Keras 2, and
    # from rank in Keras 3 (which stores them normalised once the layer is built).
    base = rank + 1 if layer.keras2 else rank
    axes = tuple(int(a) + base if int(a) < 0 else int(a) for a in given)
    if not axes or any(not 1 <= a <= rank - 2 for a in axes) or len(set(axes)) != len(axes):
        raise UnsupportedFeatureError(f"MultiHeadAttention attention_axes={given} on rank-{rank} inputs: "
                         "only distinct axes between the batch and the feature axis are "
                         "supported")
    return axes


def _mha_sizes(layer: Layer):
    """(heads, key_dim, value_dim, use_bias, weights, weights per projection)."""
    c = layer.config
    kd = int(c["key_dim"])
    use_bias = c.get("use_bias", True)
    return (int(c["num_heads"]), kd, int(c.get("value_dim") or kd), use_bias, layer.weights(),
            2 if use_bias else 1)


def _mha_output(ctx: Context, layer: Layer, att, lead: int):
    """The output projection of ``att`` (``lead`` kept axes, then heads * value_dim merged):
    (result, output dims), reshaped when output_shape has several axes."""
    heads, _, vd, use_bias, ws, step = _mha_sizes(layer)
    oi = 3 * step
    out_dims = [int(d) for d in ws[oi].shape[2:]]  # kernel (heads, vd, out...)
    out_size = int(np.prod(out_dims))
    wo = ctx.weight(layer, oi, "output_kernel", transform=lambda a: a.reshape(heads * vd, -1),
                    shape=(heads * vd, out_size))
    y = ctx.op("MatMul", att, wo)
    if use_bias:
        y = ctx.op("Add", y, ctx.weight(layer, oi + 1, "output_bias",
                                        transform=lambda a: a.reshape(-1), shape=(out_size,)))
    if len(out_dims) != 1:
        y = ctx.op("Reshape", y, ints(ctx, [0] * lead + out_dims, "shape"))
    return y, out_dims


def _mha_sequence(ctx: Context, layer: Layer, q: KT, v: KT, k: KT, kw: dict) -> KT:
    """(batch, seq, features) inputs attending over the sequence, with masks."""
    heads, kd, vd, use_bias, ws, step = _mha_sizes(layer)
    xq, xk, xv = ctx.logical(q), ctx.logical(k), ctx.logical(v)

    def project(x, i, dim, name, perm_to):
        d_in = int(ws[i].shape[0])
        w = ctx.weight(layer, i, f"{name}_kernel", transform=lambda a: a.reshape(d_in, -1),
                       shape=(d_in, heads * dim))
        y = ctx.op("MatMul", x, w)
        if use_bias:
            y = ctx.op("Add", y, ctx.weight(layer, i + 1, f"{name}_bias",
                                            transform=lambda a: a.reshape(-1),
                                            shape=(heads * dim,)))
        y = ctx.op("Reshape", y, ints(ctx, [0, 0, heads, dim], "shape"))
        return ctx.op("Transpose", y, perm=perm_to)

    qh = project(xq, 0, kd, "query", [0, 2, 1, 3])  # (N, h, T, kd)
    kh = project(xk, step, kd, "key", [0, 2, 3, 1])  # (N, h, kd, S)
    vh = project(xv, 2 * step, vd, "value", [0, 2, 1, 3])  # (N, h, S, vd)
    qh = ctx.op("Mul", qh, scalar(ctx, 1.0 / math.sqrt(kd)))
    scores = ctx.op("MatMul", qh, kh)
    if kw.get("use_causal_mask"):
        scores = _causal_mask(ctx, scores, xq, xv)
    mask, qmask = _attention_mask(ctx, q, v, k, kw)
    if mask is not None:
        mask = ctx.op("Unsqueeze", mask, ints(ctx, [1], "axes"))  # over the heads
        scores = _mask_scores(ctx, scores, mask)
    probs = ctx.op("Softmax", scores, axis=-1)
    if mask is not None and kw.get("return_attention_scores") and not layer.keras2:
        # Keras 3 computes the scores it returns with its Softmax layer, which zeroes the
        # masked positions (its fused path without scores does not).
        probs = ctx.op("Where", mask, probs, scalar(ctx, 0.0))
    att = ctx.op("MatMul", probs, vh)  # (N, h, T, vd)
    att = ctx.op("Reshape", ctx.op("Transpose", att, perm=[0, 2, 1, 3]),
                 ints(ctx, [0, 0, heads * vd], "shape"))
    y, out_dims = _mha_output(ctx, layer, att, 2)
    result = KT(y, (q.shape[0], q.shape[1], *out_dims), q.dtype)
    result.mask = qmask
    if not layer.keras2:
        # Keras 3 deletes the masks of the tensors it attended over: a later layer given the
        # same tensors sees no mask.
        for t in (q, v, k):
            t.mask = None
    if kw.get("return_attention_scores"):
        return [result, KT(probs, (q.shape[0], heads, q.shape[1], v.shape[1]), q.dtype)]
    return result


def _mha_general(ctx: Context, layer: Layer, q: KT, v: KT, k: KT, kw: dict,
                 axes: tuple[int, ...]) -> KT:
    """Attention over any axes of inputs of rank >= 3, as Keras' einsum equations do it:
    the axes that are neither batch, attention nor features act as extra batch axes (the
    query's and the key's must match), and one softmax runs over all key attention axes.

    Each projection ``(B, d..., heads, dim)`` is transposed to ``(B, other..., heads,
    attention..., dim)`` and its attention axes merged into one, so the scores are a single
    MatMul ``(B, other..., heads, Tq, Tk)``; the results are unmerged with their run-time
    shapes."""
    if q.rank != v.rank or k.rank != v.rank:
        raise UnsupportedFeatureError("MultiHeadAttention with query, value and key of different ranks "
                         "is not supported")
    if (q.mask is not None or v.mask is not None or k.mask is not None or kw.get(
            "use_causal_mask") or any(isinstance(kw.get(n), KT) for n in (
                "query_mask", "value_mask", "key_mask", "attention_mask"))):
        raise UnsupportedFeatureError(f"MultiHeadAttention attention_axes={list(axes)} with a mask "
                         "(Keras mask, attention_mask or use_causal_mask) is not supported")
    r = q.rank
    heads, kd, vd, use_bias, ws, step = _mha_sizes(layer)
    others = [a for a in range(1, r - 1) if a not in axes]
    lead = 2 + len(others)  # B, other axes, heads
    # Axes of a projection (B, d1..d{r-2}, heads, dim): heads at r - 1, dim at r.
    q_order = [0, *others, r - 1, *axes, r]  # (B, other..., heads, attention..., dim)
    k_order = [0, *others, r - 1, r, *axes]  # (B, other..., heads, dim, attention...)

    def project(t: KT, i: int, dim: int, name: str, order: list[int]):
        d_in = int(ws[i].shape[0])
        w = ctx.weight(layer, i, f"{name}_kernel", transform=lambda a: a.reshape(d_in, -1),
                       shape=(d_in, heads * dim))
        y = ctx.op("MatMul", ctx.logical(t), w)
        if use_bias:
            y = ctx.op("Add", y, ctx.weight(layer, i + 1, f"{name}_bias",
                                            transform=lambda a: a.reshape(-1),
                                            shape=(heads * dim,)))
        y = ctx.op("Reshape", y, ints(ctx, [0] * (r - 1) + [heads, dim], "shape"))
        return ctx.op("Transpose", y, perm=order)

    qt = project(q, 0, kd, "query", q_order)
    kt = project(k, step, kd, "key", k_order)
    vt = project(v, 2 * step, vd, "value", q_order)
    qf = ctx.op("Reshape", qt, ints(ctx, [0] * lead + [-1, kd], "shape"))  # (.., Tq, kd)
    kf = ctx.op("Reshape", kt, ints(ctx, [0] * (lead + 1) + [-1], "shape"))  # (.., kd, Tk)
    vf = ctx.op("Reshape", vt, ints(ctx, [0] * lead + [-1, vd], "shape"))  # (.., Tk, vd)
    qf = ctx.op("Mul", qf, scalar(ctx, 1.0 / math.sqrt(kd)))
    probs = ctx.op("Softmax", ctx.op("MatMul", qf, kf), axis=-1)
    att = ctx.op("MatMul", probs, vf)  # (B, other..., heads, Tq, vd)
    q_lead = ctx.op("Slice", ctx.op("Shape", qt), ints(ctx, [0], "starts"),
                    ints(ctx, [-1], "ends"))  # (B, other..., heads, attention...)
    att = ctx.op("Reshape", att, ctx.op("Concat", q_lead, ints(ctx, [vd], "dim"), axis=0))
    back = [q_order.index(a) for a in range(r + 1)]
    att = ctx.op("Transpose", att, perm=back)  # (B, d..., heads, vd)
    att = ctx.op("Reshape", att, ints(ctx, [0] * (r - 1) + [heads * vd], "shape"))
    y, out_dims = _mha_output(ctx, layer, att, r - 1)
    result = KT(y, (*q.shape[:-1], *out_dims), q.dtype)
    if not kw.get("return_attention_scores"):
        return result
    k_att = ctx.op("Slice", ctx.op("Shape", kt), ints(ctx, [lead + 1], "starts"),
                   ints(ctx, [r + 1], "ends"))  # the key attention dims
    scores = ctx.op("Reshape", probs, ctx.op("Concat", q_lead, k_att, axis=0))
    shape = (q.shape[0], *(q.shape[a] for a in others), heads,
             *(q.shape[a] for a in axes), *(k.shape[a] for a in axes))
    return [result, KT(scores, shape, q.dtype)]


@keras_layer("Attention")
def attention(ctx: Context, layer: Layer, inputs: list[KT]) -> KT:
    c = layer.config
    q, v = inputs[0], inputs[1]
    k = inputs[2] if len(inputs) > 2 else v
    xq, xk = ctx.logical(q), ctx.logical(k)
    mode = c.get("score_mode", "dot")
    i = 0
    if mode == "dot":
        scores = ctx.op("MatMul", xq, ctx.op("Transpose", xk, perm=[0, 2, 1]))
        if c.get("use_scale"):
            scores = ctx.op("Mul", scores, ctx.weight(layer, 0, "scale"))
    elif mode == "concat":
        qe = ctx.op("Unsqueeze", xq, ints(ctx, [2], "axes"))  # (N, T, 1, D)
        ke = ctx.op("Unsqueeze", xk, ints(ctx, [1], "axes"))  # (N, 1, S, D)
        summed = ctx.op("Add", qe, ke)
        if c.get("use_scale"):
            summed = ctx.op("Mul", summed, ctx.weight(layer, 0, "scale"))
            i = 1
        total = ctx.op("ReduceSum", ctx.op("Tanh", summed), ints(ctx, [-1], "axes"), keepdims=0)
        scores = ctx.op("Mul", ctx.weight(layer, i, "concat_score_weight"), total)
    else:
        raise UnsupportedFeatureError(f"score_mode {mode!r} is not supported")
    return _attend(ctx, layer, scores, q, v)


@keras_layer("AdditiveAttention")
def additive_attention(ctx: Context, layer: Layer, inputs: list[KT]) -> KT:
    """Bahdanau scores ``sum(scale * tanh(q_i + k_j))`` over the features (``scale`` is a
    learned vector, or 1 without use_scale)."""
    q, v = inputs[0], inputs[1]
    k = inputs[2] if len(inputs) > 2 else v
    if q.rank != 3 or k.rank != 3 or v.rank != 3:
        raise UnsupportedFeatureError("AdditiveAttention is supported for (batch, seq, features) inputs")
    qe = ctx.op("Unsqueeze", ctx.logical(q), ints(ctx, [2], "axes"))  # (N, T, 1, D)
    ke = ctx.op("Unsqueeze", ctx.logical(k), ints(ctx, [1], "axes"))  # (N, 1, S, D)
    t = ctx.op("Tanh", ctx.op("Add", qe, ke))
    if layer.config.get("use_scale", True):
        t = ctx.op("Mul", t, ctx.weight(layer, 0, "scale"))
    scores = ctx.op("ReduceSum", t, ints(ctx, [-1], "axes"), keepdims=0)  # (N, T, S)
    return _attend(ctx, layer, scores, q, v)


def _attend(ctx: Context, layer: Layer, scores, q: KT, v: KT) -> KT | list[KT]:
    """The part Attention and AdditiveAttention share: causal and value masks keep keys out
    of the softmax, the weights average the values, the query mask zeroes output rows (and
    is the output's mask)."""
    kw = getattr(ctx, "kwargs", {}) or {}
    xv = ctx.logical(v)
    if kw.get("use_causal_mask") or layer.config.get("causal"):
        scores = _causal_mask(ctx, scores, ctx.logical(q), xv)
    given = kw.get("mask")
    given = [_kt_mask(m) for m in given] + [None, None] if isinstance(given, list) else None
    # The value mask keeps padded keys out; the query mask zeroes the output rows.
    qmask = (given[0] if given and given[0] is not None else q.mask)
    vmask = (given[1] if given and given[1] is not None else v.mask)
    if vmask is not None:
        scores = _mask_scores(ctx, scores, ctx.op("Unsqueeze", vmask, ints(ctx, [1], "axes")))
    probs = ctx.op("Softmax", scores, axis=-1)
    y = ctx.op("MatMul", probs, xv)
    if qmask is not None:
        keep = ctx.op("Unsqueeze", ctx.op("Cast", qmask, to=1), ints(ctx, [2], "axes"))
        y = ctx.op("Mul", y, keep)
    out = KT(y, (q.shape[0], q.shape[1], v.shape[-1]), q.dtype)
    out.mask = qmask
    if kw.get("return_attention_scores"):
        return [out, KT(probs, (q.shape[0], q.shape[1], v.shape[1]), q.dtype)]
    return out
