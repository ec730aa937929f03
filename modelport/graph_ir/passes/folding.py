"""Constant folding: onnxscript's constant folder (evaluates nodes whose inputs are all constant,
with node-level shape inference), bounded so that folding never materialises large tensors."""

from __future__ import annotations

import onnx_ir as ir
from onnxscript.optimizer._constant_folding import FoldConstantsPass

# Inputs up to 1 MiB elements may be folded (Transpose/Reshape of a weight, shape arithmetic);
# outputs larger than that stay as computed nodes rather than growing the file.
INPUT_SIZE_LIMIT = 1 << 20
OUTPUT_SIZE_LIMIT = 1 << 20


def folding_passes() -> list[ir.passes.PassBase]:
    return [
        FoldConstantsPass(
            shape_inference=True,
            input_size_limit=INPUT_SIZE_LIMIT,
            output_size_limit=OUTPUT_SIZE_LIMIT,
        )
    ]
