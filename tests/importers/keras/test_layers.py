"""Every layer family: a model built here, saved by Keras 3 (.h5 and .keras) and by Keras 2
(tf_keras .h5), converted, and compared with the Keras model on seeded inputs."""

from __future__ import annotations

import zlib

import pytest

from tests.importers.keras.cases import CASES
from tests.importers.keras.helpers import check, inputs_for, randomize, save

_BUILT: dict = {}


def build(case: str, K):
    """The case's model, built once per Keras module. A builder that raises fails the test:
    every case must build on both Keras versions."""
    key = (case, K.__name__)
    if key not in _BUILT:
        model = CASES[case](K)
        # A stable seed per case (hash() of a str differs between processes).
        randomize(model, seed=zlib.crc32(case.encode()) % 1000)
        _BUILT[key] = model
    return _BUILT[key]


def _feeds(case: str, model):
    return inputs_for(model, int_high=11 if case == "embedding_rnn" else None)


# Whether TensorFlow's CPU kernels run a channels_first convolution depends on the machine
# (oneDNN); this case runs on Keras 3's torch backend instead, which runs it everywhere, in a
# subprocess (see test_channels_first_torch_backend).
TF_CPU_CANNOT_RUN = {"channels_first"}


@pytest.mark.parametrize("case", sorted(set(CASES) - TF_CPU_CANNOT_RUN))
@pytest.mark.parametrize("fmt", ["h5", "keras"])
def test_keras3(case, fmt, k3, model_dir):
    model = build(case, k3)
    path = save(model, str(model_dir / f"{case}_k3.{fmt}"))
    check(model, path, _feeds(case, model))


@pytest.mark.parametrize("case", sorted(set(CASES) - TF_CPU_CANNOT_RUN))
def test_keras2(case, k2, model_dir):
    model = build(case, k2)
    path = save(model, str(model_dir / f"{case}_k2.h5"))
    check(model, path, _feeds(case, model))


_TORCH_SCRIPT = """
import os, sys
os.environ["KERAS_BACKEND"] = "torch"
sys.path.insert(0, {root!r})
import numpy as np, keras
from tests.importers.keras.cases import channels_first
from tests.importers.keras.helpers import randomize, inputs_for, keras_outputs
m = channels_first(keras)
randomize(m, seed=3)
feeds = inputs_for(m)
m.save({path!r})
outs = [np.asarray(o.detach().cpu() if hasattr(o, "detach") else o)
        for o in keras_outputs(m, feeds)]
np.savez({npz!r}, x=feeds[0], *outs)
"""


def test_channels_first_torch_backend(k3, model_dir):
    """A channels_first CNN, saved and run by Keras 3 on its torch backend, then compared."""
    import subprocess
    import sys
    from pathlib import Path

    import numpy as np

    from tests.importers.keras.helpers import convert_file
    from tests.oracles import assert_close, run_onnx

    root = str(Path(__file__).resolve().parents[3])
    path, npz = str(model_dir / "cf_torch.keras"), str(model_dir / "cf_torch.npz")
    code = _TORCH_SCRIPT.format(root=root, path=path, npz=npz)
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, timeout=300)
    data = np.load(npz)
    got = run_onnx(convert_file(path), {"img": data["x"]})
    for i, (name, g) in enumerate(got.items()):
        assert_close(g, data[f"arr_{i}"], name=name)


def test_resizing_down_with_antialias_is_refused(k3, model_dir):
    from modelport.errors import ModelportError
    from tests.importers.keras.helpers import convert_file

    i = k3.Input((8, 10, 3), name="img")
    layer = k3.layers.Resizing(5, 7, antialias=True, name="down")
    path = save(k3.Model(i, layer(i)), str(model_dir / "resize_antialias.h5"))
    with pytest.raises(ModelportError, match="antialias"):
        convert_file(path)
