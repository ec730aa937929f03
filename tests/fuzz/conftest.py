"""Session fixtures of the fuzz tests: the seed files (written by a separate process) and the
fork server that runs each case under a deadline and a memory cap."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import pytest

from tests.fuzz.harness import ROOT, FuzzServer

HAS_TORCH = importlib.util.find_spec("torch") is not None


@pytest.fixture(scope="session")
def seeds(tmp_path_factory):
    out = tmp_path_factory.mktemp("fuzz_seeds")
    kinds = ["keras", "caffe", "onnx", "tensorflow", "copied", "torch7"] + (["torch"] if HAS_TORCH else [])
    env = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run([sys.executable, "-m", "tests.fuzz.seeds", str(out), *kinds],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return out


@pytest.fixture(scope="session")
def fuzz_server(tmp_path_factory):
    server = FuzzServer(tmp_path_factory.mktemp("fuzz_server"), ("torch",) if HAS_TORCH else ())
    yield server
    server.close()
    print(f"\nfuzz server: {server.cases} cases, {server.seconds:.1f}s in cases")
