"""Operator fusions from onnxscript's rewriter rule sets.

-O1 (safe): onnxscript's default rule set: no-op removal (Add 0, Mul 1, Dropout at inference),
  Relu/Clip chains, Min/Max to Clip, Transpose/Reshape/Cast/Slice collapsing, Pad absorbed into
  Conv, BatchNormalization folded into a preceding Conv/ConvTranspose/Gemm, optional-bias
  removal.
-O2 (more): adds MatMul+Add → Gemm (with transposed operands), Conv-affine fusions and
  HardSwish/HardSigmoid recognition.
"""

from __future__ import annotations

import onnx_ir as ir
from onnxscript import rewriter
from onnxscript.rewriter.rules import common as rules

O2_RULES = (
    rules.matmul_add_to_gemm_rule,
    rules.transpose_a_matmul_add_to_gemm_rule,
    rules.transpose_b_matmul_add_to_gemm_rule,
    rules.transpose_ab_matmul_add_to_gemm_rule,
    rules.affine_conv_fusion_rule,
    rules.conv_affine_fusion_rule,
    *rules.fuse_hardswish_rules().rules,
)


# onnxscript's rules emit the opset-13 forms of Unsqueeze/Split/Squeeze/Reduce* (axes as an
# input), so they only run on graphs at opset 13 or later.
MIN_RULES_OPSET = 13


def fusion_passes(level: int, opset: int | None = None) -> list[ir.passes.PassBase]:
    if level < 1 or (opset is not None and opset < MIN_RULES_OPSET):
        return []
    passes: list[ir.passes.PassBase] = [rewriter.RewritePass(rewriter._DEFAULT_REWRITE_RULES)]
    if level >= 2:
        passes.append(rewriter.RewritePass(list(O2_RULES)))
    return passes
