"""BatchNormalization after a bias-free MatMul, folded into a Gemm.

onnxscript folds BatchNormalization into a preceding Conv, ConvTranspose or Gemm; a MatMul
with a bias becomes a Gemm at -O2 first and is covered by that. What is left is the
bias-free MatMul (``nn.Linear(bias=False)`` followed by ``nn.BatchNorm1d``)::

    BatchNormalization(MatMul(x[N, K], W[K, C]), s, b, m, v)
        ->  Gemm(x, W * s / sqrt(v + eps), b - m * s / sqrt(v + eps))

Only for a 2-D ``x``: BatchNormalization normalises axis 1, which is the MatMul's output
feature axis only when the product is 2-D.
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir
from onnxscript.rewriter import pattern

from modelport.graph_ir.passes.fusions import OpFilteredRewritePass
from modelport.graph_ir.passes.manager import register_pass


class BatchNormIntoMatMul(pattern.RewriteRuleClassBase):
    def pattern(self, op, x, w, scale, bias, mean, var):
        return op.BatchNormalization(op.MatMul(x, w), scale, bias, mean, var,
                                     _allow_other_attributes=True)

    def check(self, context, x, w, scale, bias, mean, var, **_) -> pattern.MatchResult:
        result = pattern.MatchResult()
        if x.shape is None or len(x.shape) != 2:
            return result.fail("MatMul input is not 2-D")
        if any(v.const_value is None for v in (w, scale, bias, mean, var)):
            return result.fail("weights or statistics are not constant")
        if len(w.const_value.shape) != 2:
            return result.fail("weight is not 2-D")
        if w.dtype not in (ir.DataType.FLOAT, ir.DataType.DOUBLE):
            return result.fail("not float")
        bn = context.root
        if bn.attributes.get_int("training_mode", 0) or len(bn.outputs) > 1:
            return result.fail("training-mode BatchNormalization")
        self._eps = bn.attributes.get_float("epsilon", 1e-5)
        return result

    def rewrite(self, op, x, w, scale, bias, mean, var, **_):
        wv = w.const_value.numpy()
        factor = scale.const_value.numpy() / np.sqrt(var.const_value.numpy() + self._eps)
        new_w = (wv * factor[None, :]).astype(wv.dtype)
        new_b = (bias.const_value.numpy() - mean.const_value.numpy() * factor).astype(wv.dtype)
        w_name, b_name = f"{w.name}_bn_folded", f"{bias.name}_bn_folded"
        return op.Gemm(x, op.initializer(ir.tensor(new_w, name=w_name), name=w_name),
                       op.initializer(ir.tensor(new_b, name=b_name), name=b_name))


BATCHNORM_MATMUL_RULE = BatchNormIntoMatMul.rule()


@register_pass(2, "batchnorm-into-matmul")
def batchnorm_matmul_pass() -> ir.passes.PassBase:
    return OpFilteredRewritePass([BATCHNORM_MATMUL_RULE], "batchnorm-into-matmul")
