"""Optimisation passes over the IR, and the pass manager that runs them by level.

Each module holds one pass or rule family and says in its docstring what it rewrites:

- :mod:`.cleanup`  onnx_ir's common passes (dead code, identities, CSE, initializer dedup)
- :mod:`.folding`  onnxscript's constant folder
- :mod:`.fusions`  onnxscript's rewriter rule sets (BatchNorm into Conv, Pad into Conv, ...)

Importer-specific passes (e.g. layout transposes) register themselves with
:func:`register_pass` and run at the level they ask for.
"""

from modelport.graph_ir.passes.manager import (
    OptimizeReport,
    optimize,
    register_pass,
)

__all__ = ["OptimizeReport", "optimize", "register_pass"]
