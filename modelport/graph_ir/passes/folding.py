"""Constant folding: onnxscript's constant folder (evaluates nodes whose inputs are all constant,
with node-level shape inference), bounded so that folding never materialises large tensors.

Two guards on top of it, both found by running the ONNX backend test suite:
- its partial evaluators of sequence ops emit opset-13 forms (Unsqueeze/Split with an axes
  input), so they are skipped on graphs older than opset 13;
- an evaluator that raises on an unusual node leaves that node unfolded instead of aborting
  the whole conversion.
"""

from __future__ import annotations

import logging

import onnx_ir as ir

from modelport._deferred import defer_reference_evaluator

defer_reference_evaluator()

from onnxscript.optimizer._constant_folding import FoldConstantsPass  # noqa: E402

logger = logging.getLogger(__name__)

# Inputs up to 1 Mi elements may be folded (Transpose/Reshape of a weight, shape arithmetic);
# outputs larger than that stay as computed nodes rather than growing the file.
INPUT_SIZE_LIMIT = 1 << 20
OUTPUT_SIZE_LIMIT = 1 << 20
_OPSET13_EVALUATORS = {"SequenceConstruct", "ConcatFromSequence", "SplitToSequence", "SequenceAt"}


class GuardedFoldConstantsPass(FoldConstantsPass):
    def process_node(self, node: ir.Node, is_function: bool):  # type: ignore[override]
        if (
            node.domain == ""
            and node.op_type in _OPSET13_EVALUATORS
            and self._opset_imports.get("", 0) < 13
        ):
            return None
        try:
            return super().process_node(node, is_function)
        except RuntimeError as exc:
            if "Error during constant folding" not in str(exc):
                raise
            logger.debug("not folding %s: %s", node.op_type, exc.__cause__)
            return None


def folding_passes() -> list[ir.passes.PassBase]:
    return [
        GuardedFoldConstantsPass(
            shape_inference=True,
            input_size_limit=INPUT_SIZE_LIMIT,
            output_size_limit=OUTPUT_SIZE_LIMIT,
        )
    ]
