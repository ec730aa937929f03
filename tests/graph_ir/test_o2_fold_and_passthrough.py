"""Two -O2 results on tiny graphs, each checked in onnxruntime against the original:
- a small ConstantOfShape of a constant shape folds, and the causal-mask chain after it with it
  (Keras's ``use_causal_mask``); a large one stays a node;
- a Loop body that hands a carried value straight back out keeps it that way (no Identity),
  while the main graph still gets its Identity for an input used as an output."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper

from tests.conftest import init, make_model
from tests.graph_ir.test_o2_passes import agree, dyn, ops

i64 = np.int64


def causal_mask_model(rows: int, cols: int):
    """y = x + (1 - Trilu(ConstantOfShape([rows, cols], 1))) * -1e9"""
    inits = [init("shape", np.array([rows, cols], i64)), init("one", np.array(1.0, np.float32)),
             init("big", np.array(-1e9, np.float32))]
    nodes = [
        helper.make_node("ConstantOfShape", ["shape"], ["ones"],
                         value=helper.make_tensor("v", TensorProto.FLOAT, [1], [1.0])),
        helper.make_node("Trilu", ["ones"], ["lower"], upper=0),
        helper.make_node("Sub", ["one", "lower"], ["upper"]),
        helper.make_node("Mul", ["upper", "big"], ["mask"]),
        helper.make_node("Add", ["x", "mask"], ["y"]),
    ]
    return make_model(nodes, [dyn("x", ["batch", rows, cols])], [dyn("y", ["batch", rows, cols])],
                      inits, opset=17)


def test_a_small_constant_of_shape_folds_with_the_mask_after_it(tmp_path):
    proto = causal_mask_model(5, 5)
    assert len(proto.graph.node) == 5
    model = agree(tmp_path, proto)
    assert ops(model) == ["Add"]


def test_a_large_constant_of_shape_stays(tmp_path):
    model = agree(tmp_path, causal_mask_model(100, 200), batches=(1,))
    assert "ConstantOfShape" in ops(model)


def loop_model():
    """Three iterations of acc = acc * 0.5 + w; the body hands cond and w straight back out,
    as tf2onnx's recurrent loops do with their weights."""
    body = helper.make_graph(
        [helper.make_node("Mul", ["acc_in", "half"], ["scaled"]),
         helper.make_node("Identity", ["scaled"], ["kept"]),
         helper.make_node("Add", ["kept", "w_in"], ["acc_out"])],
        "body",
        [helper.make_tensor_value_info("i", TensorProto.INT64, []),
         helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
         dyn("acc_in", [2, 3]), dyn("w_in", [3])],
        [helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
         dyn("acc_out", [2, 3]), dyn("w_in", [3])],
        [init("half", np.array(0.5, np.float32))],
    )
    nodes = [
        helper.make_node("Loop", ["trips", "", "x", "w"], ["y", "w_last"], body=body),
        helper.make_node("Identity", ["w"], ["w_copy"]),
    ]
    return make_model(nodes, [dyn("x", [2, 3]), dyn("w", [3])],
                      [dyn("y", [2, 3]), dyn("w_last", [3]), dyn("w_copy", [3])],
                      [init("trips", np.array(3, i64))], opset=17)


def test_a_loop_body_passes_carried_values_through_without_identity(tmp_path):
    proto = loop_model()
    onnx.checker.check_model(proto, full_check=True)  # the pass-throughs are valid ONNX
    model = agree(tmp_path, proto, batches=(1,))
    onnx.checker.check_model(onnx.load(tmp_path / "o2.onnx"), full_check=True)
    loop = next(n for n in model.graph if n.op_type == "Loop")
    body = loop.attributes["body"].as_graph()
    assert [n.op_type for n in body] == ["Mul", "Add"]
    assert body.outputs[0] is body.inputs[1]
    assert body.outputs[2] is body.inputs[3]
    # The main graph keeps its Identity: its output w_copy would otherwise be its input w.
    assert sorted(ops(model)) == ["Identity", "Loop"]
    copy = model.graph.outputs[2]
    assert copy.producer() is not None and copy.producer().op_type == "Identity"

