"""On a machine with an NVIDIA GPU: an engine built by `modelport build-engine` and a model
verified with `--device tensorrt` (onnxruntime's TensorRT execution provider) give what
onnxruntime on CPU gives.

Marked `gpu`: deselected by default (pyproject's addopts), run with `pytest -m gpu
tests/exporters/test_tensorrt_gpu.py` where the GPU, the `tensorrt` package, onnxruntime-gpu
and a CUDA build of torch (which holds the engine's buffers) are installed. Where one of them
is missing these tests fail: they never skip.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tests.oracles import run_onnx

pytestmark = pytest.mark.gpu

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RANGE = "image:1,3,32,32/2,3,32,32/4,3,32,32"


def cli(*args):
    return subprocess.run([sys.executable, "-m", "modelport", *map(str, args)],
                          capture_output=True, text=True, cwd=ROOT)


def _converted(tmp_path, sample_onnx):
    out = tmp_path / "m.onnx"
    r = cli("convert", sample_onnx, "-o", out, "--target", "tensorrt", "--input-range", RANGE)
    assert r.returncode == 0, r.stderr
    return out


def _run_engine(path, feeds):
    """Run a serialized engine with torch's CUDA tensors as its buffers."""
    import tensorrt as trt
    import torch

    engine = trt.Runtime(trt.Logger(trt.Logger.ERROR)).deserialize_cuda_engine(
        open(path, "rb").read())
    assert engine is not None
    context = engine.create_execution_context()
    names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
    inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
    outputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
    buffers = {}
    for name in inputs:
        buffers[name] = torch.from_numpy(np.ascontiguousarray(feeds[name])).cuda()
        context.set_input_shape(name, tuple(buffers[name].shape))
    for name in outputs:
        dtype = np.dtype(trt.nptype(engine.get_tensor_dtype(name)))
        buffers[name] = torch.from_numpy(
            np.empty(tuple(context.get_tensor_shape(name)), dtype)).cuda()
    for name, tensor in buffers.items():
        context.set_tensor_address(name, tensor.data_ptr())
    stream = torch.cuda.current_stream()
    assert context.execute_async_v3(stream.cuda_stream)
    stream.synchronize()
    return {name: buffers[name].cpu().numpy() for name in outputs}


def test_build_engine_with_the_sidecar_profile_matches_onnxruntime_cpu(tmp_path, sample_onnx):
    onnx_path = _converted(tmp_path, sample_onnx)
    r = cli("build-engine", onnx_path)  # takes m.trt.json beside it
    assert r.returncode == 0, r.stderr
    assert "profile image: min [1, 3, 32, 32] opt [2, 3, 32, 32] max [4, 3, 32, 32]" in r.stdout
    engine = tmp_path / "m.engine"
    assert engine.stat().st_size > 0
    for batch in (1, 3, 4):
        x = np.random.default_rng(batch).standard_normal((batch, 3, 32, 32)).astype(np.float32)
        want = run_onnx(onnx_path, {"image": x})
        got = _run_engine(engine, {"image": x})
        assert got.keys() == want.keys()
        for name in want:
            np.testing.assert_allclose(got[name], want[name], rtol=1e-3, atol=1e-4)


def test_build_engine_fp16_where_the_version_takes_it(tmp_path, sample_onnx):
    import tensorrt as trt

    onnx_path = _converted(tmp_path, sample_onnx)
    r = cli("build-engine", onnx_path, "-o", tmp_path / "h.engine", "--fp16")
    if hasattr(trt.BuilderFlag, "FP16"):
        assert r.returncode == 0, r.stderr
        x = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
        want = run_onnx(onnx_path, {"image": x})
        got = _run_engine(tmp_path / "h.engine", {"image": x})
        for name in want:  # half precision: looser
            np.testing.assert_allclose(got[name], want[name], rtol=2e-2, atol=2e-2)
    else:
        assert r.returncode == 2 and "--fp16" in r.stderr and "Traceback" not in r.stderr


def test_build_engine_refuses_what_the_parser_rejects_in_one_line(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Det", ["x"], ["y"], name="det")], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])])
    path = tmp_path / "det.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    r = cli("build-engine", path)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "det.onnx" in r.stderr and not (tmp_path / "det.engine").exists()


def test_device_tensorrt_verifies_through_the_tensorrt_provider(tmp_path, sample_onnx):
    import onnxruntime as ort

    assert "TensorrtExecutionProvider" in ort.get_available_providers()
    out = tmp_path / "v.onnx"
    r = cli("convert", sample_onnx, "-o", out, "--input", "image:2,3,32,32", "--verify",
            "--device", "tensorrt", "--json")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)["report"]
    assert "TensorrtExecutionProvider" in report["runtime"], report["runtime"]
    assert report["passed"] and report["reference"].startswith("onnxruntime")
