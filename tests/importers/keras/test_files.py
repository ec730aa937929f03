"""File kinds: weights-only HDF5 + JSON architecture (Keras 2 and 3), corrupt files, detection,
and conversion in a process where TensorFlow and Keras cannot be imported."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from modelport.errors import InvalidModelError
from modelport.importers.registry import detect_format
from tests.importers.keras.cases import embedding_rnn, small_cnn, wrappers
from tests.importers.keras.helpers import (
    check,
    input_names,
    inputs_for,
    keras_outputs,
    randomize,
    save,
)
from tests.oracles import assert_close, run_onnx

ROOT = Path(__file__).resolve().parents[3]


def _json_pair(model, directory, stem: str, weights_name: str) -> tuple[str, str]:
    arch = os.path.join(directory, f"{stem}.json")
    with open(arch, "w") as f:
        f.write(model.to_json())
    weights = os.path.join(directory, weights_name)
    if os.path.exists(weights):
        os.remove(weights)
    model.save_weights(weights)
    return arch, weights


def test_json_and_weights_keras3(k3, model_dir):
    model = small_cnn(k3)
    randomize(model, 5)
    arch, weights = _json_pair(model, model_dir, "cnn_k3", "cnn_k3.weights.h5")
    assert detect_format(arch).name == "keras"
    check(model, arch, weights=weights)


def test_json_and_weights_keras2(k2, model_dir):
    model = embedding_rnn(k2)
    randomize(model, 6)
    arch, weights = _json_pair(model, model_dir, "rnn_k2", "rnn_k2_weights.h5")
    check(model, arch, inputs_for(model, int_high=11), weights=weights)


def test_weights_only_file_says_what_to_do(k2, model_dir):
    model = small_cnn(k2)
    weights = os.path.join(model_dir, "only_weights.h5")
    model.save_weights(weights)
    from modelport.convert.pipeline import import_model

    with pytest.raises(InvalidModelError, match="weights only"):
        import_model(weights, format="keras")


@pytest.mark.parametrize("suffix", ["h5", "keras"])
def test_truncated_file_is_invalid_model(k3, model_dir, suffix):
    model = small_cnn(k3)
    path = save(model, str(model_dir / f"whole.{suffix}"))
    data = Path(path).read_bytes()
    bad = model_dir / f"truncated.{suffix}"
    bad.write_bytes(data[: len(data) // 3])
    from modelport.convert.pipeline import import_model

    with pytest.raises(InvalidModelError):
        import_model(str(bad))


_BLOCKED = textwrap.dedent("""
    import sys
    for name in ("tensorflow", "keras", "tf_keras"):
        sys.modules[name] = None  # any import of them raises ImportError
    from modelport.convert.pipeline import convert
    from modelport.importers.registry import LoadOptions
    for src in sys.argv[1:]:
        convert(src, src + ".onnx", force=True)
    for name in ("tensorflow", "keras", "tf_keras"):
        assert sys.modules.get(name) is None, name
    try:
        import tensorflow  # noqa: F401
    except ImportError:
        print("tensorflow blocked")
""")


def test_converts_without_tensorflow_or_keras(k3, k2, model_dir):
    """The conversion runs in a process where importing TensorFlow/Keras fails; the results
    are compared with Keras here."""
    jobs = []
    for K, tag, fmt in [(k3, "k3", "h5"), (k3, "k3", "keras"), (k2, "k2", "h5")]:
        model = wrappers(K)
        randomize(model, 11)
        jobs.append((model, save(model, str(model_dir / f"noframework_{tag}.{fmt}"))))
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-c", _BLOCKED, *[p for _, p in jobs]],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "tensorflow blocked" in proc.stdout
    for model, path in jobs:
        feeds = inputs_for(model, seed=4)
        got = run_onnx(path + ".onnx", dict(zip(input_names(model), feeds)))
        for (name, g), w in zip(got.items(), keras_outputs(model, feeds)):
            assert_close(g, w, name=name)


def test_metadata_records_keras_version(k3, model_dir):
    import onnx

    model = small_cnn(k3)
    path = save(model, str(model_dir / "meta.keras"))
    out = check(model, path)
    meta = {p.key: p.value for p in onnx.load(out).metadata_props}
    assert meta["modelport.keras_version"].startswith("3.")
    layers = json.loads(meta["modelport.layer_outputs"])
    assert {"bn1", "relu1", "probs"} <= set(layers)
    assert "conv1" not in layers  # its BatchNormalization was folded into it
