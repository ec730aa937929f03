"""-O2 symbolic shapes: ``Max``/``Min`` of shape vectors. tf2onnx lowers an Einsum's batch
broadcast to ``Max(Shape(a)[0:2], Shape(b)[0:2])``; where both operands carry the same dims the
result is those dims and the Reshape target it feeds becomes a constant."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper

from tests.conftest import init, make_model
from tests.graph_ir.test_o2_passes import agree, dyn, ops

i64 = np.int64


def einsum_like(op: str, a_dims: list, b_dims: list):
    """y = Reshape(a * b, Concat(op(Shape(a)[0:2], Shape(b)[0:2]), [3, 2])); y's shape is not
    declared, so only the target's arithmetic can tell it."""
    nodes = [
        helper.make_node("Shape", ["a"], ["sa"]),
        helper.make_node("Shape", ["b"], ["sb"]),
        helper.make_node("Gather", ["sa", "lead"], ["ga"], axis=0),
        helper.make_node("Gather", ["sb", "lead"], ["gb"], axis=0),
        helper.make_node(op, ["ga", "gb"], ["m"]),
        helper.make_node("Concat", ["m", "rest"], ["t"], axis=0),
        helper.make_node("Mul", ["a", "b"], ["p"]),
        helper.make_node("Reshape", ["p", "t"], ["y"]),
    ]
    inits = [init("lead", np.array([0, 1], i64)), init("rest", np.array([3, 2], i64))]
    return make_model(nodes, [dyn("a", [*a_dims, 6]), dyn("b", [*b_dims, 6])],
                      [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits,
                      opset=18)


@pytest.mark.parametrize("op", ["Max", "Min"])
def test_max_of_equal_shape_dims_gives_a_constant_target(tmp_path, op):
    model = agree(tmp_path, einsum_like(op, ["batch", "n"], ["batch", "n"]))
    assert ops(model) == ["Mul", "Reshape"]
    target = next(n for n in model.graph if n.op_type == "Reshape").inputs[1]
    assert target.const_value.numpy().tolist() == [0, 0, 3, 2]


def test_max_of_unrelated_dims_stays(tmp_path):
    """Dims with different names may differ (one may be 1 and broadcast): nothing is
    assumed, and two unknown elements leave the target computed."""
    model = agree(tmp_path, einsum_like("Max", ["batch", "n"], ["other", "m"]))
    assert "Max" in ops(model)
