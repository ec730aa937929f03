"""Attention: MultiHeadAttention (rank-3 inputs, attention over the sequence) and Attention
(dot-product and concat scores). Dropout is identity at inference."""

from __future__ import annotations

import math

import numpy as np

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
        raise ValueError("MultiHeadAttention called without a value tensor")
    if q.rank != 3 or c.get("attention_axes") not in (None, [1], (1,)):
        raise ValueError("MultiHeadAttention is supported for (batch, seq, features) inputs "
                         "attending over the sequence")
    heads = int(c["num_heads"])
    kd = int(c["key_dim"])
    vd = int(c.get("value_dim") or kd)
    use_bias = c.get("use_bias", True)
    ws = layer.weights()
    step = 2 if use_bias else 1
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
    oi = 3 * step
    oshape = tuple(ws[oi].shape)  # (h, vd, out...)
    out_dim = int(np.prod(oshape[2:]))
    wo = ctx.weight(layer, oi, "output_kernel", transform=lambda a: a.reshape(heads * vd, -1),
                    shape=(heads * vd, out_dim))
    y = ctx.op("MatMul", att, wo)
    if use_bias:
        y = ctx.op("Add", y, ctx.weight(layer, oi + 1, "output_bias",
                                        transform=lambda a: a.reshape(-1), shape=(out_dim,)))
    result = KT(y, (q.shape[0], q.shape[1], out_dim), q.dtype)
    result.mask = qmask
    if not layer.keras2:
        # Keras 3 deletes the masks of the tensors it attended over: a later layer given the
        # same tensors sees no mask.
        for t in (q, v, k):
            t.mask = None
    if kw.get("return_attention_scores"):
        return [result, KT(probs, (q.shape[0], heads, q.shape[1], v.shape[1]), q.dtype)]
    return result


@keras_layer("Attention")
def attention(ctx: Context, layer: Layer, inputs: list[KT]) -> KT:
    c = layer.config
    kw = getattr(ctx, "kwargs", {}) or {}
    q, v = inputs[0], inputs[1]
    k = inputs[2] if len(inputs) > 2 else v
    xq, xk, xv = ctx.logical(q), ctx.logical(k), ctx.logical(v)
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
        raise ValueError(f"score_mode {mode!r} is not supported")
    if kw.get("use_causal_mask"):
        scores = _causal_mask(ctx, scores, xq, xv)
    given = kw.get("mask")
    given = [_kt_mask(m) for m in given] + [None, None] if isinstance(given, list) else None
    # Attention masks the values only; the query mask zeroes the output rows.
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
