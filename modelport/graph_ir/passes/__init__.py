"""Optimisation passes over the IR, and the pass manager that runs them by level.

Each module holds one pass or rule family and says in its docstring what it rewrites:

- :mod:`.cleanup`  onnx_ir's common passes (dead code, identities, CSE, initializer dedup)
- :mod:`.folding`  onnxscript's constant folder
- :mod:`.fusions`  onnxscript's rewriter rule sets (BatchNorm into Conv, Pad into Conv, ...)

This project's own -O2 passes, for what onnxscript lacks:

- :mod:`.shapes`     symbolic shape arithmetic (Shape/Gather/Slice/Concat chains, Reshape
                     targets with 0/-1, reshape chains, packed q/k/v selects, Slices to Split)
- :mod:`.recurrent`  all-zero LSTM/GRU/RNN initial states dropped
- :mod:`.noops`      Add/Mul/Sub/Div by zero/one constants of any shape, zero Pad, unit Reduce*
- :mod:`.patterns`   standard operators from their spelled-out chains, where the opset has
                     them: LayerNormalization, Gelu, RMSNormalization; with
                     :mod:`.activations` (HardSwish, Mish, Swish) and :mod:`.attention`
                     (Attention)
- :mod:`.conv`       per-channel Mul/Add after Conv folded into it
- :mod:`.linear`     BatchNormalization after a bias-free MatMul folded into a Gemm
- :mod:`.dense`      dense layers on N-D inputs as 2-D Gemms (no more nodes), a scalar Mul
                     after a Gemm into its alpha/beta; run at the others' fixed point

Importer-specific passes (e.g. layout transposes) register themselves with
:func:`register_pass` and run at the level they ask for. A pass that counts what it rewrites
for the report derives from :class:`.counting.CountingPass`.
"""

from modelport.graph_ir.passes.manager import (
    OptimizeReport,
    PassStats,
    optimize,
    register_pass,
)

__all__ = ["OptimizeReport", "PassStats", "optimize", "register_pass"]
