"""The wheel installs in a clean virtual environment and its command line runs.

Slow (a wheel build and a venv): run by `make bench-tests`. Nothing is downloaded: the wheel is
built without build isolation (setuptools and `build` come from the dev extra) and installed
with --no-deps; the new environment finds the dependencies in this environment's
site-packages through a .pth file.
"""

import json
import os
import subprocess
import sys
import zipfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
H5 = os.path.join(ROOT, "tests", "fixtures", "theano", "k2_cnn_last.h5")
DEPENDENCIES = ("onnx", "onnx_ir", "onnxscript", "numpy", "google.protobuf", "click", "h5py",
                "ml_dtypes", "sympy", "packaging", "typing_extensions")


def _dependency_dirs() -> list[str]:
    import importlib

    dirs = []
    for name in DEPENDENCIES:
        module = importlib.import_module(name)
        top = os.path.dirname(os.path.dirname(os.path.abspath(module.__file__)))
        if name.count("."):
            top = os.path.dirname(top)
        if top not in dirs:
            dirs.append(top)
    return dirs


@pytest.mark.slow
def test_wheel_installs_in_a_clean_venv_and_runs(tmp_path):
    dist = tmp_path / "dist"
    r = subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation",
                        "--outdir", str(dist), ROOT], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    (wheel,) = dist.glob("modelport-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "modelport/py.typed" in names and "modelport/importers/caffe/caffe.proto" in names
    assert not [n for n in names if n.startswith(("tests/", "benchmarks/", "examples/"))]

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    py = venv / "bin" / "python"
    r = subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "-q",
                        "--no-deps", "--no-index", str(wheel)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    site = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                          capture_output=True, text=True, check=True).stdout.strip()
    with open(os.path.join(site, "_deps.pth"), "w") as f:
        f.write("\n".join(_dependency_dirs()) + "\n")

    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    outside = str(tmp_path)  # not the checkout, whose modelport/ would shadow the wheel's
    r = subprocess.run([str(py), "-c", "import modelport; print(modelport.__file__)"],
                       capture_output=True, text=True, cwd=outside, env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().startswith(site), r.stdout
    r = subprocess.run([str(venv / "bin" / "modelport"), "formats", "--json"],
                       capture_output=True, text=True, cwd=outside, env=env)
    assert r.returncode == 0, r.stderr
    rows = {row["name"]: row for row in json.loads(r.stdout)}
    assert {"keras", "caffe", "onnx", "tensorflow"} <= set(rows)
    assert rows["keras"]["convert"] == "ready"
    # The installed copy converts too (its package data and schemas came with it).
    out = tmp_path / "o.onnx"
    r = subprocess.run([str(venv / "bin" / "modelport"), "convert", H5, "-o", str(out)],
                       capture_output=True, text=True, cwd=outside, env=env)
    assert r.returncode == 0, r.stderr
    assert out.stat().st_size > 0
