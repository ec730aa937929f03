"""What a CI job reads from `--json`, and options that could make a wrong model pass."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "modelport", *map(str, args)],
                          capture_output=True, text=True, cwd=ROOT,
                          env=dict(os.environ, **(env or {})))


@pytest.mark.parametrize("opt", [("--atol", "nan"), ("--rtol", "nan"), ("--rtol", "-1e-3"),
                                 ("--atol", "inf")])
def test_bad_tolerances_are_exit_2_and_write_nothing(sample_onnx, tmp_path, opt):
    out = tmp_path / "o.onnx"
    r = cli("convert", sample_onnx, "-o", out, "--verify", *opt)
    assert r.returncode == 2, r.stdout + r.stderr
    assert r.stderr.count("\n") == 1 and "tolerance" in r.stderr
    assert not out.exists()
    r = cli("verify", sample_onnx, sample_onnx, *opt)
    assert r.returncode == 2 and "tolerance" in r.stderr


def test_json_on_an_error_is_still_a_report_object(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07garbage")
    r = cli("convert", bad, "-o", tmp_path / "o.onnx", "--verify", "--json")
    assert r.returncode == 2
    report = json.loads(r.stdout)
    assert report["passed"] is False and report["verified"] is False
    assert report["exit_code"] == 2 and "bad.onnx" in report["error"]
    assert r.stderr.startswith("modelport: error:")


def test_json_says_not_verified_without_verification(sample_onnx, tmp_path):
    r = cli("convert", sample_onnx, "-o", tmp_path / "o.onnx", "--json")
    assert r.returncode == 0
    report = json.loads(r.stdout)
    assert report["verified"] is False and report["report"] is None


def test_json_failure_report_is_strict_json(sample_onnx, tmp_path):
    import onnx

    good = tmp_path / "good.onnx"
    assert cli("convert", sample_onnx, "-o", good, "-O0").returncode == 0
    proto = onnx.load(good)
    for t in proto.graph.initializer:
        if t.name == "conv2.w":
            w = onnx.numpy_helper.to_array(t).copy()
            w[0] = float("inf")
            t.CopyFrom(onnx.numpy_helper.from_array(w, t.name))
    bad = tmp_path / "bad.onnx"
    onnx.save(proto, bad)
    r = cli("verify", sample_onnx, bad, "--json")
    assert r.returncode == 1
    assert "NaN" not in r.stdout and "Infinity" not in r.stdout
    report = json.loads(r.stdout)  # strict: json.loads accepts NaN, so check above too
    assert report["passed"] is False and report["verified"] is True


def test_nothing_printed_by_a_library_lands_in_json_stdout(sample_onnx, tmp_path):
    # A library that prints (at the Python and at the C level) during verification.
    code = (
        "import importlib, os, sys\n"
        "p = importlib.import_module('modelport.convert.pipeline')\n"
        "orig = p.verify_model\n"
        "def noisy(*a, **k):\n"
        "    print('python-level noise')\n"
        "    os.write(1, b'c-level noise\\n')\n"
        "    return orig(*a, **k)\n"
        "p.verify_model = noisy\n"
        "from modelport.cli import main\n"
        "main(sys.argv[1:])\n"
    )
    r = subprocess.run([sys.executable, "-c", code, "verify", str(sample_onnx),
                        str(sample_onnx), "--json"], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["passed"] is True
    assert "python-level noise" in r.stderr and "c-level noise" in r.stderr
