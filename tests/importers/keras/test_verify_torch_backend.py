"""--verify of a channels_first Keras 3 model. Whether TensorFlow's CPU kernels can run a
channels_first convolution depends on the machine (oneDNN); where they cannot, the reference
runs on Keras' torch backend in a child process, per layer too. Both branches are forced here
instead of depending on the machine: the first with the runner's documented testing hook
(MODELPORT_KERAS_TF_NO_CHANNELS_FIRST=1, which reaches the `modelport` child process through
its environment), the second with a channels_first model that TensorFlow runs on any CPU."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from modelport.convert.runners.keras import SIMULATE_NO_NCHW_ENV
from tests.importers.keras.helpers import randomize, save

ROOT = __file__.rsplit("/tests/", 1)[0]


def _verify(path: str, out, **env: str) -> dict:
    r = subprocess.run([sys.executable, "-m", "modelport", "convert", path, "-o", str(out),
                        "--force", "--verify", "--per-layer", "--json"],
                       capture_output=True, text=True, cwd=ROOT,
                       env={**os.environ, **env}, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    report = json.loads(r.stdout)["report"]
    assert report["passed"]
    assert all(row["passed"] for row in report["layers"])
    return report


def test_channels_first_model_is_verified_on_the_torch_backend(k3, model_dir):
    L = k3.layers
    i = k3.Input((3, 8, 8), name="img")
    x = L.Conv2D(4, 3, data_format="channels_first", name="conv")(i)
    x = L.MaxPooling2D(data_format="channels_first", name="pool")(x)
    x = L.Flatten(name="flat")(x)
    model = k3.Model(i, L.Dense(2, name="head")(x))
    randomize(model, seed=11)
    path = save(model, str(model_dir / "cf_verify.keras"))
    # TensorFlow made to fail on channels_first, whatever this machine's kernels can do.
    report = _verify(path, model_dir / "cf_verify.onnx", **{SIMULATE_NO_NCHW_ENV: "1"})
    assert "torch backend" in report["reference"]
    assert {row["name"] for row in report["layers"]} >= {"conv", "pool", "flat", "head"}


def test_channels_first_model_that_tensorflow_runs_has_tensorflow_as_reference(k3, model_dir):
    # Keras transposes channels_first pooling, padding and upsampling to channels_last itself,
    # so TensorFlow runs this model on any CPU, with or without oneDNN (turned off here).
    L = k3.layers
    i = k3.Input((3, 8, 8), name="img")
    x = L.ZeroPadding2D(1, data_format="channels_first", name="pad")(i)
    x = L.MaxPooling2D(data_format="channels_first", name="pool")(x)
    x = L.UpSampling2D(data_format="channels_first", name="up")(x)
    x = L.AveragePooling2D(2, data_format="channels_first", name="avg")(x)
    x = L.Flatten(data_format="channels_first", name="flat")(x)
    model = k3.Model(i, L.Dense(2, name="head")(x))
    randomize(model, seed=12)
    path = save(model, str(model_dir / "cf_tf.keras"))
    report = _verify(path, model_dir / "cf_tf.onnx", TF_ENABLE_ONEDNN_OPTS="0")
    assert report["reference"] == f"Keras {k3.__version__}"
    assert {row["name"] for row in report["layers"]} >= {"pad", "pool", "up", "avg", "flat",
                                                         "head"}
