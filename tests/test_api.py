"""The public Python API: load, save, convert, verify."""

import numpy as np
import onnx_ir as ir

import modelport
from tests.oracles import assert_close, run_onnx


def test_load_returns_onnx_ir_model_and_save_writes_onnx(sample_onnx, tmp_path):
    model = modelport.load(sample_onnx)
    assert isinstance(model, ir.Model)
    assert model.graph.inputs[0].name == "image"
    result = modelport.save(model, tmp_path / "m.onnx", level=1)
    assert result.opset == 17
    x = np.random.default_rng(0).standard_normal((1, 3, 32, 32)).astype(np.float32)
    assert_close(run_onnx(tmp_path / "m.onnx", {"image": x})["probs"],
                 run_onnx(sample_onnx, {"image": x})["probs"])


def test_convert_and_verify_reports(sample_onnx, tmp_path):
    out = tmp_path / "m.onnx"
    result = modelport.convert(sample_onnx, out, verify=True, seed=5)
    assert result.passed and result.report.seed == 5
    report = modelport.verify(sample_onnx, out, per_layer=True)
    assert report.passed and report.first_diverging_layer is None
    assert len(report.layers) >= 5 and "PASS" in report.table()
    inputs = {"image": np.zeros((2, 3, 32, 32), np.float32)}
    report = modelport.verify(sample_onnx, out, inputs=inputs, rtol=0, atol=1e-6)
    assert report.passed and report.inputs == {"image": [2, 3, 32, 32]}
