"""Per-channel Mul/Add by constants after a Conv, folded into its weight and bias.

onnxscript's conv-affine rules take a scalar Mul followed by a scalar Add only. A converted
layer-scale, a BatchNorm split into Mul and Add by an exporter, or a channel-wise bias added
separately give per-channel constants, alone or in either order::

    Mul(Conv(x, W[, B]), s)  ->  Conv(x, W * s[:, None, ...], B * s)
    Add(Conv(x, W[, B]), b)  ->  Conv(x, W, B + b)

``s`` and ``b`` (either operand of the Mul/Add) must broadcast over the Conv's output only
along the channel axis: a scalar, or a constant whose dims are all 1 except dim 1 of the
output (C or 1), e.g. ``[C, 1, 1]`` or ``[1, C, 1, 1]`` for a 2-D Conv.
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir
from onnxscript.rewriter import pattern

from modelport.graph_ir.passes.fusions import OpFilteredRewritePass
from modelport.graph_ir.passes.manager import register_pass


def _per_channel(c: ir.Value, out: ir.Value, channels: int) -> np.ndarray | None:
    """The constant as a [channels] vector, or None if it varies along other axes."""
    t = c.const_value
    if t is None or out.shape is None or t.size > 1 << 20:
        return None
    arr = t.numpy()
    rank = len(out.shape)
    if arr.ndim > rank or not np.issubdtype(arr.dtype, np.floating):
        return None
    full = arr.reshape((1,) * (rank - arr.ndim) + arr.shape)
    if any(d != 1 for i, d in enumerate(full.shape) if i != 1):
        return None
    if full.shape[1] not in (1, channels):
        return None
    return np.broadcast_to(full.reshape(-1), (channels,)).astype(arr.dtype)


class _ConvAffine(pattern.RewriteRuleClassBase):
    def __init__(self, kind: str, const_first: bool, with_bias: bool) -> None:
        super().__init__(f"Conv{kind}{'Bias' if with_bias else ''}"
                         f"{'Swapped' if const_first else ''}")
        self.kind, self.const_first, self.with_bias = kind, const_first, with_bias

    def _combine(self, op, conv, c):
        args = (c, conv) if self.const_first else (conv, c)
        return op.Mul(*args) if self.kind == "Mul" else op.Add(*args)

    def check(self, context, x, w, c, conv_out, b=None, **_) -> pattern.MatchResult:
        result = pattern.MatchResult()
        if w.const_value is None or (self.with_bias and b.const_value is None):
            return result.fail("Conv weight or bias not constant")
        wv = w.const_value.numpy()
        if not np.issubdtype(wv.dtype, np.floating):
            return result.fail("not float")
        out = context.output_values[0]
        if out.dtype != conv_out.dtype:
            return result.fail("type changes")
        vec = _per_channel(c, conv_out, wv.shape[0])
        if vec is None:
            return result.fail("constant is not per-channel")
        if len(conv_out.uses()) != 1:
            return result.fail("Conv output has other uses")
        self._vec = vec
        return result

    def rewrite(self, op, x, w, c, conv_out, b=None, **_):
        conv = conv_out.producer()
        wv = w.const_value.numpy()
        bias = (b.const_value.numpy() if self.with_bias
                else np.zeros(wv.shape[0], dtype=wv.dtype))
        if self.kind == "Mul":
            wv = wv * self._vec.reshape((-1,) + (1,) * (wv.ndim - 1))
            bias = bias * self._vec
        else:
            bias = bias + self._vec
        w_name, b_name = f"{w.name}_affine", f"{conv_out.name}_affine_bias"
        new_w = op.initializer(ir.tensor(wv.astype(w.const_value.numpy().dtype), name=w_name),
                               name=w_name)
        new_b = op.initializer(ir.tensor(bias.astype(w.const_value.numpy().dtype),
                                         name=b_name), name=b_name)
        return op.Conv(x, new_w, new_b, **conv.attributes)


class _ConvBiasAffine(_ConvAffine):
    def pattern(self, op, x, w, b, c):
        return self._combine(op, op.Conv(x, w, b, _outputs=["conv_out"]), c)


class _ConvNoBiasAffine(_ConvAffine):
    def pattern(self, op, x, w, c):
        return self._combine(op, op.Conv(x, w, _outputs=["conv_out"]), c)


CONV_AFFINE_RULES = [
    (_ConvBiasAffine if bias else _ConvNoBiasAffine).rule(kind, first, bias)
    for kind in ("Mul", "Add") for first in (False, True) for bias in (True, False)
]


@register_pass(2, "conv-per-channel-affine")
def conv_affine_pass() -> ir.passes.PassBase:
    return OpFilteredRewritePass(CONV_AFFINE_RULES, "conv-per-channel-affine")
