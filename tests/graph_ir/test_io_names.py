"""The optimised graph keeps its interface: every input and output keeps its name and position,
whatever the passes merge (two outputs computing the same value, an output that is an Identity
of another or of an input)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from modelport.convert.pipeline import convert
from tests.oracles import assert_close, run_onnx


def vi(name):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, ["batch", 4])


def model(nodes, inputs, outputs):
    graph = helper.make_graph(nodes, "g", [vi(n) for n in inputs], [vi(n) for n in outputs])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


CASES = {
    # Keras's swish and silu layers side by side: CSE finds one value for both outputs
    "same value twice": model(
        [helper.make_node("Sigmoid", ["x"], ["s1"]), helper.make_node("Mul", ["x", "s1"], ["swish"]),
         helper.make_node("Sigmoid", ["x"], ["s2"]), helper.make_node("Mul", ["x", "s2"], ["silu"])],
        ["x"], ["swish", "silu"]),
    # an LSTM's state returned twice, once through an Identity
    "identity of an output": model(
        [helper.make_node("Tanh", ["x"], ["state"]),
         helper.make_node("Identity", ["state"], ["state_1"])],
        ["x"], ["state", "state_1"]),
    # an output that is the input once Identity and Dropout are gone
    "identity of the input": model(
        [helper.make_node("Identity", ["x"], ["t"]), helper.make_node("Dropout", ["t"], ["y"]),
         helper.make_node("Relu", ["x"], ["r"])],
        ["x"], ["r", "y"]),
    # the wanted name held by an intermediate value after the rewrite
    "name held by another value": model(
        [helper.make_node("Relu", ["x"], ["a"]), helper.make_node("Identity", ["a"], ["b"]),
         helper.make_node("Neg", ["b"], ["c"]), helper.make_node("Identity", ["a"], ["d"])],
        ["x"], ["c", "d", "b"]),
}


@pytest.mark.parametrize("level", [1, 2])
@pytest.mark.parametrize("case", sorted(CASES))
def test_inputs_and_outputs_keep_their_names(case, level, tmp_path):
    src, out = tmp_path / "src.onnx", tmp_path / "out.onnx"
    onnx.save(CASES[case], src)
    convert(str(src), str(out), level=level)
    written = onnx.load(out)
    onnx.checker.check_model(written, full_check=True)
    assert [i.name for i in written.graph.input] == [i.name for i in CASES[case].graph.input]
    assert [o.name for o in written.graph.output] == [o.name for o in CASES[case].graph.output]
    feeds = {"x": np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)}
    want, got = run_onnx(src, feeds), run_onnx(out, feeds)
    assert list(got) == list(want)
    for name in want:
        assert_close(got[name], want[name], rtol=1e-6, atol=1e-6, name=name)
