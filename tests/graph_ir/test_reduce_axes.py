"""GraphBuilder.reduce_axes: the one place that knows where a Reduce* node takes its axes, and
errors.first_line, the one helper for one-line messages."""

import numpy as np
import onnx
import onnxruntime as ort
import pytest

import modelport
from modelport.errors import first_line
from modelport.graph_ir import GraphBuilder


@pytest.mark.parametrize("opset", [13, 17, 18])
@pytest.mark.parametrize("op_type", ["ReduceSum", "ReduceMean", "ReduceMax", "ReduceSumSquare"])
def test_reduce_axes_matches_numpy_at_every_opset(tmp_path, opset, op_type):
    b = GraphBuilder(opset=opset)
    x = b.input("x", np.float32, [2, 3, 4])
    extra, attrs = b.reduce_axes(op_type, [1, -1])
    assert bool(extra) == (opset >= 18 or (op_type == "ReduceSum" and opset >= 13))
    b.output(b.op(op_type, x, *extra, keepdims=1, **attrs), "y")
    path = tmp_path / "r.onnx"
    modelport.save(b.build(), str(path))
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    data = np.random.default_rng(0).standard_normal((2, 3, 4)).astype(np.float32)
    got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(
        None, {"x": data})[0]
    want = {"ReduceSum": np.sum, "ReduceMean": np.mean, "ReduceMax": np.max,
            "ReduceSumSquare": lambda a, **k: np.sum(a * a, **k)}[op_type](
        data, axis=(1, 2), keepdims=True)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_first_line():
    assert first_line(ValueError("bad shape\n  at line 3")) == "bad shape"
    assert first_line(KeyError()) == "KeyError"
    assert first_line(MemoryError(), "out of memory") == "out of memory"
    assert first_line("Traceback (most recent)\n[torch.onnx] x\n  real: msg\n",
                      skip=("Traceback", "[torch.onnx]")) == "real: msg"
    assert first_line("  \n") == ""
