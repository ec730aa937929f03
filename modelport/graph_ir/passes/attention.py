"""Scaled dot-product attention blocks recognised as the standard ``Attention`` operator
(opset >= 23, default domain), by onnxscript's own SDPA pattern
(``onnxscript.rewriter.ort_fusions.sdpa``), which matches the block and its common
spellings but emits an onnxruntime-internal fusion op; this rule keeps its pattern and check
and emits the standard operator instead::

      S = MatMul(Q [* sq], Transpose(K, perm=[0, 1, 3, 2]) [* sk])   (or Reshape-Transpose-
                                                                     Reshape of K, or K in
                                                                     [B, S, H, d] order)
      S = S * scale | S / scale                                      (optional)
      S = S + mask                                                   (optional, additive)
      W = Softmax(S, axis=-1) [; W = Where(IsNaN(W), 0, W)]
      Y = MatMul(W, V)                ->  Attention(Q, K', V[, mask], scale=sq*sk*scale)

Q, K and V must be rank-4 ``[batch, heads, seq, head_dim]`` with matching batch and heads
(onnxscript's check); a key in ``[B, S, H, d]`` order gets a Transpose to ``[B, H, S, d]``.
An additive mask must be of the query's type and have the query and key lengths ``[S, L]``
as its last two dims: the spec lets it broadcast there, but onnxruntime 1.32 refuses at run
time a mask such as ``[B, 1, 1, L]`` (the padding mask of BERT-style models), so such a block
is left as it is.
The scale is left out when it is the operator's default ``1/sqrt(head_dim)``.

Numerics: the only difference is on a query row whose mask is ``-inf`` at every key. The
``Where(IsNaN)`` spelling (torch's) and ``Attention`` both give zeros there; the bare Softmax
spelling gives NaN, which ``Attention`` turns into zeros.

Below opset 23 (or when ``--opset`` is older) the block is left as it is: intact and in the
spelling runtimes' own attention fusions look for.
"""

from __future__ import annotations

from onnxscript.rewriter import pattern
from onnxscript.rewriter.ort_fusions.sdpa import SDPA

ATTENTION_OPSET = 23


def _same_dim(a, b) -> bool:
    """Known to be equal: the same number, or the same symbolic name (unknown dims compare
    equal in onnx_ir, and prove nothing)."""
    if isinstance(a, int) or isinstance(b, int):
        return a == b
    return a.value is not None and a.value == b.value


class StandardAttention(SDPA):
    """onnxscript's SDPA pattern and check; the standard ``Attention`` as replacement."""

    def check(self, context, query, key, value, mask, key_format, **bindings):
        result = super().check(context, query=query, key=key, value=value, mask=mask,
                               key_format=key_format, **bindings)
        if not result:
            return result
        for v in (query, key, value):
            if v is None or v.dtype is None or v.dtype != query.dtype:
                return result.fail("Q, K and V are not of one known type")
        if mask is not None:
            if mask.dtype != query.dtype:  # the additive mask: a bool one would differ
                return result.fail("the mask is not of the query's type", mask)
            # the spec lets the mask broadcast to [B, H, S, L]; onnxruntime (1.32) insists
            # on its last two dims being S and L: fuse only masks that have them
            if (mask.shape is None or not 2 <= len(mask.shape) <= 4
                    or not _same_dim(mask.shape[-2], query.shape[-2])
                    or not _same_dim(mask.shape[-1], value.shape[-2])):
                return result.fail("the mask does not span [S, L] in its last two dims", mask)
        return result

    def rewrite(self, op, query, key, value, mask, key_format, **_):
        if key_format == "BSHd":
            key = op.Transpose(key, perm=[0, 2, 1, 3])
        args = [query, key, value] + ([mask] if mask is not None else [])
        attrs = {} if self._scale is None else {"scale": float(self._scale)}
        return op.Attention(*args, **attrs)


ATTENTION_RULES = pattern.RewriteRuleSet([StandardAttention.rule()])


def apply(model, opset: int, ops: set[str]) -> int:
    if opset < ATTENTION_OPSET or not {"Softmax", "MatMul"} <= ops:
        return 0
    return ATTENTION_RULES.apply_to_model(model)
