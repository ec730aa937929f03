"""Keras 1 specifics beyond the Theano comparisons of test_theano.py: the old
BatchNormalization ``running_std`` (a true standard deviation before Keras 1.0.6), the
``--keras-backend`` override, and one-line errors for what Keras 1 models cannot be converted."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import h5py
import numpy as np
import pytest

from modelport.convert.pipeline import convert
from modelport.errors import UnsupportedOpsError
from modelport.importers.registry import LoadOptions
from tests.importers.keras import theano_helpers as th
from tests.oracles import run_onnx

DENSE = th.FIXTURES / "k1_dense_misc.h5"
CNN = th.FIXTURES / "k1_cnn_th.h5"


def _outputs(onnx_path, fixture):
    with np.load(fixture.with_suffix(".npz")) as z:
        feeds = {k: z[k] for k in z.files if not k.startswith("out:")}
        want = z["out:0"]
    feeds = th._by_position(onnx_path, feeds)
    return next(iter(run_onnx(onnx_path, feeds).values())), want


def test_running_std_before_1_0_6(tmp_path):
    """A Keras 1.0.5 file stores BatchNormalization's standard deviation: the same model with
    sqrt(variance) stored under that version computes what Theano computed."""
    src = tmp_path / "old.h5"
    shutil.copy(DENSE, src)
    with h5py.File(src, "r+") as f:
        f.attrs["keras_version"] = np.bytes_(b"1.0.5")
        g = f["model_weights"]
        for name in g:
            if name.startswith("batchnormalization"):
                ds = g[name][f"{name}_running_std"]
                ds[...] = np.sqrt(ds[()])
    convert(src, tmp_path / "old.onnx", options=LoadOptions(extra={"keras_backend": "theano"}))
    got, want = _outputs(tmp_path / "old.onnx", DENSE)
    th.assert_close(got, want, th.RTOL, th.ATOL, "keras 1.0.5 running_std")


def test_keras_backend_override(tmp_path):
    """dim_ordering 'th' is taken as Theano; --keras-backend tensorflow reads the kernels
    unflipped (and computes something else), and the metadata says which was used."""
    import onnx

    convert(CNN, tmp_path / "th.onnx")
    got, want = _outputs(tmp_path / "th.onnx", CNN)
    th.assert_close(got, want, th.RTOL, th.ATOL, "default")
    props = {p.key: p.value for p in onnx.load(str(tmp_path / "th.onnx")).metadata_props}
    assert props["modelport.keras_backend"].startswith("theano (assumed")
    r = subprocess.run([sys.executable, "-m", "modelport", "convert", str(CNN), "-o",
                        str(tmp_path / "tf.onnx"), "--keras-backend", "tensorflow", "-q"],
                       capture_output=True, text=True, cwd=th.ROOT)
    assert r.returncode == 0, r.stderr
    got, _ = _outputs(tmp_path / "tf.onnx", CNN)
    assert np.abs(got - want).max() > 1e-3
    props = {p.key: p.value for p in onnx.load(str(tmp_path / "tf.onnx")).metadata_props}
    assert props["modelport.keras_backend"].startswith("tensorflow (given")


def _with_config(tmp_path, edit):
    src = tmp_path / "edited.h5"
    shutil.copy(DENSE, src)
    with h5py.File(src, "r+") as f:
        config = json.loads(f.attrs["model_config"])
        edit(config)
        f.attrs["model_config"] = json.dumps(config).encode()
    return src


def test_batchnorm_mode_2_refused(tmp_path):
    def edit(config):
        for lc in config["config"]:
            if lc["class_name"] == "BatchNormalization":
                lc["config"]["mode"] = 2

    src = _with_config(tmp_path, edit)
    with pytest.raises(UnsupportedOpsError, match="mode=2"):
        convert(src, tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()


def test_cli_one_line_error(tmp_path):
    def edit(config):
        for lc in config["config"]:
            if lc["class_name"] == "BatchNormalization":
                lc["config"]["mode"] = 2

    src = _with_config(tmp_path, edit)
    r = subprocess.run([sys.executable, "-m", "modelport", "convert", str(src), "-o",
                        str(tmp_path / "m.onnx")], capture_output=True, text=True, cwd=th.ROOT)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and str(src) in lines[0] and "Traceback" not in r.stderr
    assert not (tmp_path / "m.onnx").exists()
