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


class _FakeTensorRT:
    """Just enough of the tensorrt package's builder API to record what build-engine asks of
    it: which profile, which flags (the real package is exercised by test_tensorrt_gpu.py)."""

    def __init__(self, version="10.15.1", fp16=True, parses=True, gpu=True):
        import types

        self.__version__ = version
        self.calls = []
        fake = self

        class Severity:
            INTERNAL_ERROR, ERROR, WARNING, INFO, VERBOSE = range(5)

        class ILogger:
            def __init__(self):
                pass

        ILogger.Severity = Severity
        self.ILogger = ILogger
        self.BuilderFlag = types.SimpleNamespace(**({"FP16": "fp16"} if fp16 else {}))
        self.NetworkDefinitionCreationFlag = types.SimpleNamespace(EXPLICIT_BATCH=0)

        class Tensor:
            def __init__(self, name, shape):
                self.name, self.shape = name, shape

        class Network:
            num_inputs = 1

            def get_input(self, i):
                return Tensor("image", (-1, 3, 32, 32))

        class Error:
            def desc(self):
                return "No importer registered for op: Det"

            def node_name(self):
                return "det"

            def node_operator(self):
                return "Det"

        class Parser:
            num_errors = 0 if parses else 1

            def __init__(self, network, logger):
                self.logger = logger

            def parse_from_file(self, path):
                fake.calls.append(("parse", path))
                return parses

            def get_error(self, i):
                return Error()

        class Profile:
            def set_shape(self, name, lo, opt, hi):
                fake.calls.append(("profile", name, list(lo), list(opt), list(hi)))

        class Config:
            def add_optimization_profile(self, p):
                pass

            def set_flag(self, flag):
                fake.calls.append(("flag", flag))

        class Builder:
            def __init__(self, logger):
                if not gpu:
                    logger.log(Severity.ERROR, "CUDA initialization failure with error: 35")
                    raise TypeError("pybind11::init(): factory function returned nullptr")

            def create_network(self, flags):
                fake.calls.append(("flags", flags))
                return Network()

            def create_builder_config(self):
                return Config()

            def create_optimization_profile(self):
                return Profile()

            def build_serialized_network(self, network, config):
                return b"engine-bytes"

        self.Builder, self.OnnxParser = Builder, Parser


def _build(monkeypatch, fake, *args, **kwargs):
    from modelport.exporters.tensorrt_engine import build_engine

    monkeypatch.setitem(sys.modules, "tensorrt", fake)
    return build_engine(*args, **kwargs)


def test_build_engine_takes_the_profile_from_the_sidecar_then_the_ranges(tmp_path, sample_onnx,
                                                                         monkeypatch):
    from modelport.exporters.tensorrt import parse_ranges

    model = tmp_path / "m.onnx"
    model.write_bytes(sample_onnx.read_bytes())
    (tmp_path / "m.trt.json").write_text(json.dumps({"profile": {"image": {
        "min": [1, 3, 32, 32], "opt": [2, 3, 32, 32], "max": [4, 3, 32, 32]}}}))
    fake = _FakeTensorRT()
    result = _build(monkeypatch, fake, str(model))
    assert ("profile", "image", [1, 3, 32, 32], [2, 3, 32, 32], [4, 3, 32, 32]) in fake.calls
    assert (tmp_path / "m.engine").read_bytes() == b"engine-bytes"
    assert result.profile_source.endswith("m.trt.json") and not result.notes
    assert ("flags", 0) in fake.calls and not any(c[0] == "flag" for c in fake.calls)

    fake = _FakeTensorRT(version="8.6.1")  # explicit batch is a flag before 10
    ranges = parse_ranges(("image:2,3,32,32/8,3,32,32/16,3,32,32",))
    result = _build(monkeypatch, fake, str(model), str(tmp_path / "r.engine"), ranges=ranges,
                    fp16=True)
    assert ("profile", "image", [2, 3, 32, 32], [8, 3, 32, 32], [16, 3, 32, 32]) in fake.calls
    assert ("flags", 1) in fake.calls and ("flag", "fp16") in fake.calls

    (tmp_path / "m.trt.json").unlink()
    fake = _FakeTensorRT()
    result = _build(monkeypatch, fake, str(model), str(tmp_path / "d.engine"))
    assert ("profile", "image", [1, 3, 32, 32], [1, 3, 32, 32], [32, 3, 32, 32]) in fake.calls
    assert result.profile_source == "defaults" and result.notes


@pytest.mark.parametrize("fake,args,words", [
    (dict(version="11.2.1", fp16=False), {"fp16": True}, ["--fp16", "11.2.1"]),
    (dict(parses=False), {}, ["node 'det' (Det)", "No importer registered"]),
    (dict(gpu=False), {}, ["no usable NVIDIA GPU", "CUDA initialization failure"]),
    (dict(), {"ranges": {"other": ([1], [1], [1])}}, ["other", "image"]),
])
def test_build_engine_refusals_are_one_line(tmp_path, sample_onnx, monkeypatch, fake, args,
                                            words):
    from modelport.errors import ModelportError

    with pytest.raises(ModelportError) as err:
        _build(monkeypatch, _FakeTensorRT(**fake), str(sample_onnx), str(tmp_path / "x.engine"),
               **args)
    message = str(err.value)
    assert "\n" not in message and all(w in message for w in words), message
    assert not (tmp_path / "x.engine").exists()


# onnxruntime lists the provider (as onnxruntime-gpu does) but cannot start it (as when
# TensorRT's libraries are missing): the session comes up on the next provider
LISTED_BUT_BROKEN = (
    "import onnxruntime\n"
    "onnxruntime.get_available_providers = lambda: ['TensorrtExecutionProvider', "
    "'CUDAExecutionProvider', 'CPUExecutionProvider']\n")


@pytest.mark.parametrize("device", ["tensorrt", "cuda"])
def test_device_whose_provider_does_not_start_is_refused_not_replaced(tmp_path, sample_onnx,
                                                                      device):
    """Verifying on another provider than the one asked for would be a PASS for the wrong
    device: one line, exit 2, nothing on stdout (no onnxruntime fallback banner)."""
    out = tmp_path / "out.onnx"
    r = run(LISTED_BUT_BROKEN, "convert", sample_onnx, "-o", out, "--verify", "--device",
            device, "--json")
    line = one_line_error(r)
    assert f"--device {device}" in line and "did not start" in line
    assert "CPUExecutionProvider" in line
    assert "EP Error" not in r.stdout
    assert not out.exists()
