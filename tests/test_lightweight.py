"""Converting never imports a framework it does not need, and `formats` says what is missing."""

import json
import os
import subprocess
import sys

from click.testing import CliRunner

from modelport.cli import cli
from modelport.importers import registry

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HEAVY = ("torch", "tensorflow", "keras", "tf_keras", "cv2", "mxnet", "onnxruntime")


def test_converting_onnx_imports_no_framework_and_not_even_onnxruntime(sample_onnx, tmp_path):
    code = (
        "import sys, modelport\n"
        "from modelport.importers.registry import detect_format, formats\n"
        f"formats(); modelport.convert({str(sample_onnx)!r}, {str(tmp_path / 'o.onnx')!r})\n"
        f"print([m for m in {HEAVY!r} if m in sys.modules])\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"


def test_formats_says_which_extra_verification_needs(monkeypatch):
    monkeypatch.setattr(registry, "_installed", lambda module: module != "onnxruntime")
    result = CliRunner().invoke(cli, ["formats", "--json"])
    rows = {r["name"]: r for r in json.loads(result.output)}
    assert rows["onnx"]["verify"] == "needs onnxruntime"
    assert rows["onnx"]["convert"] == "ready"
