"""Operator fusions from onnxscript's rewriter rule sets.

-O1 (safe): onnxscript's default rule set: no-op removal (Add 0, Mul 1, Dropout at inference),
  Relu/Clip chains, Min/Max to Clip, Transpose/Reshape/Cast/Slice collapsing, Pad absorbed into
  Conv, BatchNormalization folded into a preceding Conv/ConvTranspose/Gemm, optional-bias
  removal.
-O2 (more): adds MatMul+Add → Gemm (with transposed operands) and Conv-affine fusions.
  onnxscript's HardSwish/HardSigmoid rules run in :mod:`.patterns` (via :mod:`.activations`),
  which holds HardSwish back where the graph's or the output's opset is below 14.
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
)


# onnxscript's rules emit the opset-13 forms of Unsqueeze/Split/Squeeze/Reduce* (axes as an
# input), so they only run on graphs at opset 13 or later.
MIN_RULES_OPSET = 13


def _may_match(rule: rewriter.RewriteRule, present: set[tuple[str, str]]) -> bool:
    """False when the rule's pattern names an operator the graph does not contain."""
    for node in rule._target_pattern._nodes:
        op = node.op_identifier()
        if op is not None and (op[0] or "", op[1]) not in present:
            return False
    return True


class OpFilteredRewritePass(ir.passes.InPlacePass):
    """onnxscript's RewritePass, given only the rules whose operators occur in the graph.

    The rewriter tries every rule on every node; most of the ~50 default rules name
    operators a given model never uses, and skipping them halves the optimiser's time on a
    CNN without changing what it rewrites.
    """

    def __init__(self, rules, report_name: str = "rewrite") -> None:
        super().__init__()
        self.rules = list(rules)
        self.report_name = report_name
        self.rewrites = 0  # rule applications in the last run

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        present = {(n.domain or "", n.op_type) for n in model.graph.all_nodes()}
        for function in model.functions.values():
            present.update((n.domain or "", n.op_type) for n in function)
        active = [r for r in self.rules if _may_match(r, present)]
        self.rewrites = 0
        if not active:
            return ir.passes.PassResult(model, False)
        self.rewrites = rewriter.RewriteRuleSet(active).apply_to_model(model)
        return ir.passes.PassResult(model, bool(self.rewrites))


def fusion_passes(level: int, opset: int | None = None) -> list[ir.passes.PassBase]:
    if level < 1 or (opset is not None and opset < MIN_RULES_OPSET):
        return []
    passes: list[ir.passes.PassBase] = [OpFilteredRewritePass(rewriter._DEFAULT_REWRITE_RULES,
                                                                         "onnxscript-rules")]
    if level >= 2:
        passes.append(OpFilteredRewritePass(O2_RULES, "onnxscript-rules-O2"))
    return passes
