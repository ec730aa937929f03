"""-O2 symbolic shapes: a Concat of a Concat on the same axis takes the inner one's inputs
(onnxslim does the same); the inner Concat goes once nothing else reads it, as in DPN's dense
path, where each block's Concat feeds the next block's two Concats."""

from __future__ import annotations

from onnx import helper

from tests.conftest import make_model
from tests.graph_ir.test_o2_passes import agree, dyn, ops


def test_a_chain_of_concats_read_twice_flattens(tmp_path):
    nodes = [helper.make_node("Relu", ["a"], ["ra"]), helper.make_node("Tanh", ["b"], ["tb"]),
             helper.make_node("Sigmoid", ["c"], ["sc"]),
             helper.make_node("Concat", ["ra", "tb"], ["d1"], axis=1),
             helper.make_node("Concat", ["d1", "sc"], ["d2"], axis=-3),  # same axis
             helper.make_node("Concat", ["ra", "d1"], ["y1"], axis=1),
             helper.make_node("Concat", ["tb", "d2"], ["y2"], axis=1)]
    x = [dyn(n, ["batch", 2, 5, 5]) for n in "abc"]
    proto = make_model(nodes, x, [dyn("y1", ["batch", 6, 5, 5]),
                                  dyn("y2", ["batch", 8, 5, 5])], opset=18)
    model = agree(tmp_path, proto)
    assert ops(model).count("Concat") == 2
    widths = sorted(len(n.inputs) for n in model.graph if n.op_type == "Concat")
    assert widths == [3, 4]


def test_a_concat_on_another_axis_stays(tmp_path):
    nodes = [helper.make_node("Concat", ["a", "b"], ["ab"], axis=2),
             helper.make_node("Concat", ["ab", "c"], ["y"], axis=1)]
    proto = make_model(nodes, [dyn("a", ["batch", 2, 5]), dyn("b", ["batch", 2, 5]),
                               dyn("c", ["batch", 3, 10])], [dyn("y", ["batch", 5, 10])],
                       opset=18)
    assert ops(agree(tmp_path, proto)) == ["Concat", "Concat"]
