"""--per-layer maps each Keras layer to the value that layer returns, inside nested models
too, and lists every layer it does not compare with the reason."""

from __future__ import annotations

import numpy as np
import pytest

from modelport.convert.pipeline import verify_model
from tests.importers.keras.helpers import convert_file, randomize, save


def _report(model, path, tmp_path, level=1):
    out = str(tmp_path / "m.onnx")
    from modelport.convert.pipeline import convert

    convert(path, out, level=level, force=True)
    return verify_model(path, out, per_layer=True)


@pytest.mark.parametrize("flavour", ["k2", "k3"])
def test_conv_before_batchnorm_is_not_mapped_to_the_input_transpose(flavour, request, tmp_path):
    keras = request.getfixturevalue(flavour)
    L = keras.layers
    x = keras.Input((8, 8, 3), name="img")
    y = L.Conv2D(4, 3, padding="same", name="conv")(x)
    y = L.BatchNormalization(name="bn")(y)
    y = L.ReLU(name="relu")(y)
    y = L.Conv2D(2, 3, name="conv2")(y)
    model = keras.Model(x, y)
    randomize(model, 3)
    path = save(model, str(tmp_path / f"bn.{'h5' if flavour == 'k2' else 'keras'}"))
    report = _report(model, path, tmp_path)
    assert report.passed
    compared = {c.name: c for c in report.layers}
    assert {"bn", "relu", "conv2"} <= set(compared)
    assert all(c.passed for c in report.layers), report.table()
    assert "conv" not in compared
    reasons = {nc.layer: nc.reason for nc in report.not_compared}
    assert "folded" in reasons["conv"]
    assert "1 not compared" in report.table()


@pytest.mark.parametrize("flavour", ["k2", "k3"])
def test_embedding_with_mask_maps_to_its_vectors_not_its_mask(flavour, request, tmp_path):
    keras = request.getfixturevalue(flavour)
    L = keras.layers
    x = keras.Input((6,), name="ids", dtype="int32")
    e = L.Embedding(10, 4, mask_zero=True, name="emb")(x)
    y = L.LSTM(3, name="lstm")(e)
    model = keras.Model(x, y)
    randomize(model, 4)
    path = save(model, str(tmp_path / f"emb.{'h5' if flavour == 'k2' else 'keras'}"))
    out = convert_file(path, str(tmp_path / "emb.onnx"))
    report = verify_model(path, out, per_layer=True)
    assert report.passed, report.table()
    compared = {c.name: c for c in report.layers}
    assert compared["emb"].passed and compared["emb"].shape == [1, 6, 4]
    assert compared["lstm"].passed


@pytest.mark.parametrize("flavour", ["k2", "k3"])
def test_layers_inside_a_nested_model_are_compared(flavour, request, tmp_path):
    keras = request.getfixturevalue(flavour)
    L = keras.layers
    inner_in = keras.Input((5,), name="inner_in")
    h = L.Dense(7, activation="tanh", name="d1")(inner_in)
    h = L.Dense(3, name="d2")(h)
    inner = keras.Model(inner_in, h, name="inner")
    x = keras.Input((5,), name="x")
    y = L.Dense(5, name="pre")(x)
    y = inner(y)
    y = L.Activation("sigmoid", name="act")(y)
    model = keras.Model(x, y)
    randomize(model, 5)
    path = save(model, str(tmp_path / f"nested.{'h5' if flavour == 'k2' else 'keras'}"))
    report = _report(model, path, tmp_path, level=0)
    assert report.passed, report.table()
    compared = {c.name: c for c in report.layers}
    assert {"pre", "inner/d1", "inner/d2", "act"} <= set(compared), report.table()
    assert all(c.passed for c in report.layers)


def test_a_broken_layer_inside_a_nested_model_is_named(k3, tmp_path):
    import onnx

    L = k3.layers
    inner_in = k3.Input((5,), name="inner_in")
    h = L.Dense(7, activation="tanh", name="d1")(inner_in)
    h = L.Dense(3, name="d2")(h)
    inner = k3.Model(inner_in, h, name="inner")
    x = k3.Input((5,), name="x")
    model = k3.Model(x, L.Activation("sigmoid", name="act")(inner(L.Dense(5, name="pre")(x))))
    randomize(model, 6)
    path = save(model, str(tmp_path / "nested.keras"))
    out = str(tmp_path / "m.onnx")
    from modelport.convert.pipeline import convert

    convert(path, out, level=0, force=True)
    proto = onnx.load(out)
    for t in proto.graph.initializer:
        if t.name.startswith("inner/d1") and len(t.dims) == 2:
            w = onnx.numpy_helper.to_array(t).copy()
            w[0, 0] += 1.0
            t.CopyFrom(onnx.numpy_helper.from_array(w, t.name))
            break
    else:
        raise AssertionError([t.name for t in proto.graph.initializer])
    onnx.save(proto, out)
    report = verify_model(path, out, per_layer=True)
    assert not report.passed
    assert report.first_diverging_layer == "inner/d1", report.table()
    assert np.isfinite(report.outputs[0].max_abs)
