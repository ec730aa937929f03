"""Constant folding: onnxscript's constant folder (evaluates nodes whose inputs are all constant,
with node-level shape inference), bounded so that folding never materialises large tensors.

``ConstantOfShape`` with a constant shape is folded too when its result has at most
:data:`CONSTANT_OF_SHAPE_LIMIT` elements (the folder keeps every ConstantOfShape, so that a
large zeros tensor is not written into the file; a small one, such as a causal mask's
``ConstantOfShape -> Trilu -> Sub -> Mul``, is better folded with what follows it).

At -O2, :class:`FoldConstantSplitPass` also folds ``Split`` of a constant, which the folder
leaves alone because it has several outputs (exporters split fused QKV weights that way).

Shape inference is skipped for nodes whose inputs and outputs are already fully typed (it
could only find the same again). Two guards on top of the folder, both found by running the
ONNX backend test suite:
- its partial evaluators of sequence ops emit opset-13 forms (Unsqueeze/Split with an axes
  input), so they are skipped on graphs older than opset 13;
- an evaluator that raises on an unusual node leaves that node unfolded instead of aborting
  the whole conversion.
"""

from __future__ import annotations

import logging

import numpy as np
import onnx_ir as ir

from modelport._deferred import defer_reference_evaluator

defer_reference_evaluator()

from onnxscript.optimizer._constant_folding import FoldConstantsPass  # noqa: E402

from modelport.graph_ir.passes.counting import CountingPass  # noqa: E402

logger = logging.getLogger(__name__)

# Inputs up to 1 Mi elements may be folded (Transpose/Reshape of a weight, shape arithmetic);
# outputs larger than that stay as computed nodes rather than growing the file.
INPUT_SIZE_LIMIT = 1 << 20
OUTPUT_SIZE_LIMIT = 1 << 20
# A ConstantOfShape costs a few bytes however large its result; folding it writes the result
# into the file, so only small ones are (the folder's own default input size limit).
CONSTANT_OF_SHAPE_LIMIT = 8192
_OPSET13_EVALUATORS = {"SequenceConstruct", "ConcatFromSequence", "SplitToSequence", "SequenceAt"}


def _typed(value: ir.Value | None) -> bool:
    """Type and every dimension known (an int or a named symbol)."""
    if value is None or value.type is None or value.shape is None:
        return False
    return all(isinstance(d, int) or getattr(d, "value", None) is not None
               for d in value.shape.dims)


class GuardedFoldConstantsPass(FoldConstantsPass):
    def _do_inference(self, node: ir.Node) -> None:
        # The folder infers each node's output types again on every run (the manager runs it
        # each round); a node whose outputs are all fully typed already has nothing to gain,
        # and on a CNN that is nearly every node after the first round.
        if node.outputs and all(_typed(o) for o in node.outputs) and \
                all(_typed(i) for i in node.inputs if i is not None):
            return
        super()._do_inference(node)

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


def _split_sizes(node: ir.Node, dim: int) -> list[int] | None:
    if len(node.inputs) > 1 and node.inputs[1] is not None:
        t = node.inputs[1].const_value
        return None if t is None else [int(v) for v in t.numpy().reshape(-1)]
    if "split" in node.attributes:
        return list(node.attributes["split"].as_ints())
    n = node.attributes.get_int("num_outputs", len(node.outputs))
    if n <= 0:
        return None
    chunk = -(-dim // n)  # the last part takes what is left (opset 18)
    return [min(chunk, max(0, dim - i * chunk)) for i in range(n)]


class FoldConstantSplitPass(CountingPass):
    """``Split(constant)`` -> one initializer per output."""

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        self.rewrites = 0
        graph = model.graph
        for node in list(graph):
            if node.op_type != "Split" or node.domain not in ("", "ai.onnx"):
                continue
            data = node.inputs[0].const_value if node.inputs[0] is not None else None
            if data is None or data.size > INPUT_SIZE_LIMIT:
                continue
            if any(o.is_graph_output() for o in node.outputs):
                continue
            array = data.numpy()
            axis = node.attributes.get_int("axis", 0)
            if not -array.ndim <= axis < array.ndim:
                continue
            sizes = _split_sizes(node, array.shape[axis])
            if sizes is None or len(sizes) != len(node.outputs) or sum(sizes) != array.shape[
                    axis] or min(sizes) < 0:
                continue
            parts = np.split(array, np.cumsum(sizes)[:-1], axis=axis)
            for out, part in zip(node.outputs, parts):
                name = f"{out.name or 'split'}_folded"
                k = 1
                while name in graph.initializers:
                    name, k = f"{out.name or 'split'}_folded_{k}", k + 1
                value = ir.Value(name=name, shape=ir.Shape(part.shape), type=out.type,
                                 const_value=ir.tensor(np.ascontiguousarray(part), name=name))
                graph.register_initializer(value)
                out.replace_all_uses_with(value)
            self.rewrites += 1
        return ir.passes.PassResult(model, self.rewrites > 0)


def _fold_small_constant_of_shape(node: ir.Node) -> bool | None:
    """The folder's ``should_fold``: True for a ConstantOfShape of a small constant shape,
    None (the folder's own rules) for every other node."""
    if node.op_type != "ConstantOfShape" or node.domain not in ("", "ai.onnx"):
        return None
    shape = node.inputs[0].const_value if node.inputs and node.inputs[0] is not None else None
    if shape is None:
        return None
    dims = shape.numpy().reshape(-1)
    if (dims < 0).any() or int(np.prod(dims, dtype=np.int64)) > CONSTANT_OF_SHAPE_LIMIT:
        return None
    return True


def folding_passes(level: int = 1) -> list[ir.passes.PassBase]:
    passes: list[ir.passes.PassBase] = [
        GuardedFoldConstantsPass(
            shape_inference=True,
            input_size_limit=INPUT_SIZE_LIMIT,
            output_size_limit=OUTPUT_SIZE_LIMIT,
            should_fold=_fold_small_constant_of_shape,
        )
    ]
    if level >= 2:
        passes.append(FoldConstantSplitPass())
    return passes
