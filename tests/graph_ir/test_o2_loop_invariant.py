"""-O2: a Loop's carried value that the body passes through unchanged (tf2onnx carries an
RNN's weights through its loop so) is read from the enclosing graph instead, and the carried
slot goes; outputs agree with the original in onnxruntime."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper

from tests.conftest import init, make_model
from tests.graph_ir.test_o2_passes import agree, dyn

rng = np.random.default_rng(5)


def vi(name, shape, dtype=TensorProto.FLOAT):
    return helper.make_tensor_value_info(name, dtype, shape)


def accumulate_loop(final_weight_is_output: bool = False):
    """h = tanh(h @ w) four times; w is carried through the loop unchanged, h's steps are
    also a scan output."""
    body = helper.make_graph(
        [helper.make_node("Identity", ["c_in"], ["c_out"]),
         helper.make_node("MatMul", ["h_in", "w_in"], ["hw"]),
         helper.make_node("Tanh", ["hw"], ["h_out"]),
         helper.make_node("Identity", ["h_out"], ["scan"])],
        "body",
        [vi("i", [], TensorProto.INT64), vi("c_in", [], TensorProto.BOOL),
         vi("w_in", [6, 6]), vi("h_in", ["batch", 6])],
        [vi("c_out", [], TensorProto.BOOL), vi("w_in", [6, 6]), vi("h_out", ["batch", 6]),
         vi("scan", ["batch", 6])])
    nodes = [helper.make_node("Relu", ["w0"], ["w"]),
             helper.make_node("Loop", ["trip", "cond", "w", "x"], ["w_final", "h", "steps"],
                              body=body)]
    outputs = [dyn("h", ["batch", 6]), dyn("steps", [4, "batch", 6])]
    if final_weight_is_output:
        outputs.append(dyn("w_final", [6, 6]))
    inits = [init("trip", np.array(4, np.int64)), init("cond", np.array(True)),
             init("w0", (rng.standard_normal((6, 6)) * 0.5).astype(np.float32))]
    return make_model(nodes, [dyn("x", ["batch", 6])], outputs, inits, opset=18)


def loop_of(model):
    return next(n for n in model.graph if n.op_type == "Loop")


def test_a_passed_through_loop_state_is_read_from_outside(tmp_path):
    model = agree(tmp_path, accumulate_loop())
    loop = loop_of(model)
    body = loop.attributes["body"].as_graph()
    assert len(loop.inputs) == 3 and len(loop.outputs) == 2  # trip, cond, x; h, steps
    assert len(body.inputs) == 3 and len(body.outputs) == 3
    assert not [n for n in body if n.op_type == "Identity" and n.inputs[0].name == "w_in"]
    matmul = next(n for n in body if n.op_type == "MatMul")
    w = matmul.inputs[1]  # the outer value (Relu(w0), folded into an initializer)
    assert w not in list(body.inputs) and w.const_value is not None


def test_a_final_value_that_is_a_model_output_keeps_its_slot(tmp_path):
    model = agree(tmp_path, accumulate_loop(final_weight_is_output=True))
    assert len(loop_of(model).inputs) == 4
    assert [o.name for o in model.graph.outputs] == ["h", "steps", "w_final"]
    onnx.checker.check_model(onnx.load(tmp_path / "o2.onnx"))
