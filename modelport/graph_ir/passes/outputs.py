"""Graph outputs made valid after the rewrites: onnx_ir's ``OutputFixPass``, except inside the
bodies of ``Loop`` and ``Scan``.

Identity elimination can leave a graph output that is a graph input, or one value listed as two
outputs. In the main graph (and in model functions) ``OutputFixPass`` puts an Identity on each,
as before: onnxruntime mis-executes some of those graphs. A Loop or Scan body that hands one of
its own inputs (a loop-carried value, typically a weight) straight back out is ordinary ONNX:
the checker accepts it and onnxruntime runs it, and tf2onnx writes its recurrent loops that
way. There the Identity would only add a node per pass-through, so this pass leaves such
outputs alone. Everything else is still onnx_ir's: a value listed twice as a body output, and
a body output that is an input of an enclosing graph (the checker rejects that: a subgraph
output must be produced inside the subgraph or be one of its own inputs).
"""

from __future__ import annotations

import onnx_ir as ir
import onnx_ir.passes.common as common

_PASS_THROUGH_BODIES = {("", "Loop", "body"), ("", "Scan", "body"),
                        ("ai.onnx", "Loop", "body"), ("ai.onnx", "Scan", "body")}


def _loop_bodies(graph: ir.Graph) -> list[ir.Graph]:
    """Every Loop/Scan body in ``graph`` and, recursively, in its subgraphs."""
    bodies: list[ir.Graph] = []
    for node in ir.traversal.RecursiveGraphIterator(graph):
        for name, attr in node.attributes.items():
            if attr.type == ir.AttributeType.GRAPH and \
                    (node.domain, node.op_type, name) in _PASS_THROUGH_BODIES:
                bodies.append(attr.as_graph())
    return bodies


class SubgraphAwareOutputFixPass(ir.passes.InPlacePass):
    """``OutputFixPass`` that keeps pass-through outputs of Loop/Scan bodies as they are."""

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        # Detach each body's pass-through outputs while OutputFixPass runs, then put them back:
        # the pass itself (and its naming of what it adds) stays onnx_ir's.
        held: list[tuple[ir.Graph, int, ir.Value]] = []
        placeholders: list[ir.Node] = []
        for body in _loop_bodies(model.graph):
            seen: set[ir.Value] = set()
            for i, out in enumerate(body.outputs):
                first = out not in seen
                seen.add(out)
                if first and out.is_graph_input() and out.graph is body:
                    # A stand-in output that OutputFixPass has no reason to touch.
                    stand_in = ir.node("Identity", inputs=[out])
                    placeholders.append(stand_in)
                    body.append(stand_in)
                    held.append((body, i, out))
                    body.outputs[i] = stand_in.outputs[0]
        result = common.OutputFixPass()(model)
        for body, i, out in held:
            body.outputs[i] = out
        for stand_in in placeholders:
            stand_in.graph.remove(stand_in, safe=True)
        return ir.passes.PassResult(model, result.modified)
