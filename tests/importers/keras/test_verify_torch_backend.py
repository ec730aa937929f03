"""--verify of a channels_first Keras 3 model: TensorFlow's CPU kernels cannot run it, so the
reference runs on Keras' torch backend in a child process, per layer too."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.importers.keras.helpers import randomize, save

ROOT = __file__.rsplit("/tests/", 1)[0]


def test_channels_first_model_is_verified_on_the_torch_backend(k3, model_dir):
    L = k3.layers
    i = k3.Input((3, 8, 8), name="img")
    x = L.Conv2D(4, 3, data_format="channels_first", name="conv")(i)
    x = L.MaxPooling2D(data_format="channels_first", name="pool")(x)
    x = L.Flatten(name="flat")(x)
    model = k3.Model(i, L.Dense(2, name="head")(x))
    randomize(model, seed=11)
    path = save(model, str(model_dir / "cf_verify.keras"))
    out = model_dir / "cf_verify.onnx"
    r = subprocess.run([sys.executable, "-m", "modelport", "convert", path, "-o", str(out),
                        "--force", "--verify", "--per-layer", "--json"],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-2000:]
    report = json.loads(r.stdout)["report"]
    assert report["passed"]
    assert "torch backend" in report["reference"]
    assert {row["name"] for row in report["layers"]} >= {"conv", "pool", "flat", "head"}
    assert all(row["passed"] for row in report["layers"])
