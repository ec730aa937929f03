import os
import sys

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)


@pytest.fixture
def sample_onnx(tmp_path):
    """The demo CNN (examples/make_sample.py), saved to a temporary file."""
    sys.path.insert(0, os.path.join(ROOT, "examples"))
    try:
        import make_sample
    finally:
        sys.path.pop(0)
    path = tmp_path / "sample.onnx"
    onnx.save(make_sample.build(), path)
    return path


def make_model(nodes, inputs, outputs, inits=(), opset=17):
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(inits))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


def f32(name, shape):
    return helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, shape)


def init(name, array):
    return numpy_helper.from_array(np.asarray(array), name)


# Skips: only the listed, justified ones (tests/allowed_skips.py); see tests/skip_policy.py.
from tests.skip_policy import (  # noqa: E402,F401
    pytest_collectreport,
    pytest_runtest_logreport,
    pytest_sessionfinish,
    pytest_terminal_summary,
)
