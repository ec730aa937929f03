"""Clean-up passes, all from onnx_ir: dead nodes, identities, common subexpressions, duplicate
initializers, unused functions and opsets. Nothing here is written by this project; this module
only chooses them and their order."""

from __future__ import annotations

import onnx_ir as ir
import onnx_ir.passes.common as common


def cleanup_passes() -> list[ir.passes.PassBase]:
    return [
        common.RemoveUnusedNodesPass(),
        common.IdentityEliminationPass(),
        common.CommonSubexpressionEliminationPass(),
        common.DeduplicateInitializersPass(),
        common.RemoveUnusedFunctionsPass(),
        common.RemoveUnusedOpsetsPass(),
    ]


def final_passes() -> list[ir.passes.PassBase]:
    """Run once after the fixed point: Constant nodes (the exporter's and the folder's shape
    vectors and scalars) become initializers, as onnxscript's own optimizer does; the
    computation is the same with fewer nodes."""
    return [
        common.LiftConstantsToInitializersPass(lift_all_constants=True, size_limit=0),
        common.LiftSubgraphInitializersToMainGraphPass(),
        common.DeduplicateInitializersPass(),
    ]


def inline_passes() -> list[ir.passes.PassBase]:
    """Model-local functions are inlined first so that every other pass sees plain nodes."""
    return [common.InlinePass(), common.LiftConstantsToInitializersPass(lift_all_constants=False)]
