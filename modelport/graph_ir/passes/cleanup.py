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


def inline_passes() -> list[ir.passes.PassBase]:
    """Model-local functions are inlined first so that every other pass sees plain nodes."""
    return [common.InlinePass(), common.LiftConstantsToInitializersPass(lift_all_constants=False)]
