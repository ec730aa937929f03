"""`build-engine` and `--device tensorrt` where TensorRT is missing: one line naming what is
missing, exit 2, no traceback, nothing written. The missing pieces are hidden from the child
process, so these tests say the same on a machine that has them (tests/exporters/
test_tensorrt_gpu.py, marked `gpu`, checks what they do there)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# `import tensorrt` fails in the child, as where the package is not installed
NO_TENSORRT = "import sys; sys.modules['tensorrt'] = None\n"
# onnxruntime without its GPU providers, as with the CPU package
NO_TRT_PROVIDER = ("import onnxruntime\n"
                   "onnxruntime.get_available_providers = lambda: ['CPUExecutionProvider']\n")


def run(prelude, *args):
    code = prelude + "import sys\nfrom modelport.cli import main\nsys.argv[1:] = " + \
        repr([str(a) for a in args]) + "\nmain()\n"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT)


def one_line_error(r):
    assert r.returncode == 2, (r.returncode, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    return lines[0]


def test_build_engine_without_tensorrt_says_so_in_one_line(tmp_path, sample_onnx):
    r = run(NO_TENSORRT, "build-engine", sample_onnx, "-o", tmp_path / "m.engine")
    line = one_line_error(r)
    assert "build-engine needs tensorrt" in line and "pip install tensorrt" in line
    assert not (tmp_path / "m.engine").exists()


def test_build_engine_reports_bad_input_before_looking_for_tensorrt(tmp_path, sample_onnx):
    line = one_line_error(run(NO_TENSORRT, "build-engine", tmp_path / "missing.onnx"))
    assert "missing.onnx" in line and "no such file" in line
    bad = tmp_path / "bad.trt.json"
    bad.write_text(json.dumps({"version": "10.15"}))
    line = one_line_error(run(NO_TENSORRT, "build-engine", sample_onnx, "--profile", bad))
    assert "bad.trt.json" in line and "profile" in line
    line = one_line_error(run(NO_TENSORRT, "build-engine", sample_onnx, "--input-range",
                              "image:1,3/2,3"))
    assert "--input-range" in line


@pytest.mark.parametrize("command", ["verify", "convert"])
def test_device_tensorrt_without_the_provider_says_so_in_one_line(tmp_path, sample_onnx,
                                                                  command):
    out = tmp_path / "out.onnx"
    if command == "verify":
        args = ["verify", sample_onnx, sample_onnx, "--device", "tensorrt"]
    else:
        args = ["convert", sample_onnx, "-o", out, "--verify", "--device", "tensorrt"]
    line = one_line_error(run(NO_TRT_PROVIDER, *args))
    assert "--device tensorrt" in line and "onnxruntime-gpu" in line
    assert not out.exists()


def test_importing_the_cli_does_not_import_tensorrt():
    code = ("import sys, modelport.cli, modelport.exporters.tensorrt_engine\n"
            "assert 'tensorrt' not in sys.modules, 'tensorrt imported'\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr


def test_sidecar_profile_is_read_back(tmp_path):
    from modelport.exporters.tensorrt_engine import default_output, default_sidecar, read_profile

    side = tmp_path / "m.trt.json"
    side.write_text(json.dumps({"profile": {"x": {"min": [1, 3], "opt": [4, 3],
                                                  "max": [8, 3]}}}))
    assert read_profile(str(side)) == {"x": ([1, 3], [4, 3], [8, 3])}
    assert default_sidecar("a/m.onnx") == "a/m.trt.json"
    assert default_output("a/m.onnx") == "a/m.engine"
