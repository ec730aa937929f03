"""-O2 symbolic shapes: a chain of reshape-like nodes that comes back to the shape of a tensor
up the chain is that tensor, even when the results in between have other uses (Keras's
``initial_state=[h]`` exports as ``Unsqueeze(Squeeze(Y_h, [0]), [0])`` where the squeezed
state is also a model output)."""

from __future__ import annotations

import numpy as np
from onnx import helper

from tests.conftest import init, make_model
from tests.graph_ir.test_o2_passes import agree, dyn, ops

i64 = np.int64


def test_unsqueeze_of_squeeze_is_bypassed_and_the_shared_squeeze_stays(tmp_path):
    nodes = [helper.make_node("Tanh", ["x"], ["h"]),  # [1, batch, 3], like an RNN's Y_h
             helper.make_node("Squeeze", ["h", "ax0"], ["state"]),  # also a model output
             helper.make_node("Unsqueeze", ["state", "ax0"], ["again"]),
             helper.make_node("Relu", ["again"], ["y"])]
    proto = make_model(nodes, [dyn("x", [1, "batch", 3])],
                       [dyn("state", ["batch", 3]), dyn("y", [1, "batch", 3])],
                       [init("ax0", np.array([0], i64))], opset=18)
    model = agree(tmp_path, proto)
    assert ops(model) == ["Tanh", "Squeeze", "Relu"]
    relu = [n for n in model.graph if n.op_type == "Relu"][0]
    assert relu.inputs[0].producer().op_type == "Tanh"


def test_a_longer_chain_back_to_the_same_shape_is_bypassed(tmp_path):
    nodes = [helper.make_node("Tanh", ["x"], ["h"]),  # [batch, 4, 6]
             helper.make_node("Reshape", ["h", "flat"], ["f"]),  # [batch, 24], also output
             helper.make_node("Unsqueeze", ["f", "ax1"], ["u"]),  # [batch, 1, 24]
             helper.make_node("Reshape", ["u", "back"], ["b"]),  # [batch, 4, 6]
             helper.make_node("Relu", ["b"], ["y"])]
    inits = [init("flat", np.array([0, 24], i64)), init("ax1", np.array([1], i64)),
             init("back", np.array([0, 4, 6], i64))]
    proto = make_model(nodes, [dyn("x", ["batch", 4, 6])],
                       [dyn("f", ["batch", 24]), dyn("y", ["batch", 4, 6])], inits, opset=18)
    assert ops(agree(tmp_path, proto)) == ["Tanh", "Reshape", "Relu"]


def test_a_chain_to_another_shape_or_an_unknown_dim_stays(tmp_path):
    # [batch, 4, 6] -> [batch, 24] -> [batch, 6, 4]: same element count, another shape
    nodes = [helper.make_node("Tanh", ["x"], ["h"]),
             helper.make_node("Reshape", ["h", "flat"], ["f"]),
             helper.make_node("Reshape", ["f", "other"], ["b"]),
             helper.make_node("Relu", ["b"], ["y"])]
    inits = [init("flat", np.array([0, 24], i64)), init("other", np.array([0, 6, 4], i64))]
    proto = make_model(nodes, [dyn("x", ["batch", 4, 6])],
                       [dyn("f", ["batch", 24]), dyn("y", ["batch", 6, 4])], inits, opset=18)
    assert ops(agree(tmp_path, proto)) == ["Tanh", "Reshape", "Reshape", "Relu"]
    # two unnamed dims cannot be told equal: the chain stays
    unnamed = make_model(
        [helper.make_node("Tanh", ["x"], ["h"]),
         helper.make_node("Squeeze", ["h", "ax0"], ["s"]),
         helper.make_node("Unsqueeze", ["s", "ax0"], ["u"]),
         helper.make_node("Relu", ["u"], ["y"])],
        [dyn("x", [1, None, 3])], [dyn("s", [None, 3]), dyn("y", [1, None, 3])],
        [init("ax0", np.array([0], i64))], opset=18)
    assert "Unsqueeze" in ops(agree(tmp_path, unnamed, batches=()))
