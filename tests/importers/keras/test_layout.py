"""Layout: a channels-last CNN comes out with one Transpose (at the input), none with
--nchw-inputs; per-layer verification lines values up with Keras layers."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from modelport.convert.pipeline import verify_model
from modelport.importers.keras import keras_layer
from modelport.importers.registry import LoadOptions
from tests.importers.keras.cases import small_cnn
from tests.importers.keras.helpers import check, convert_file, inputs_for, keras_outputs, save
from tests.importers.keras.helpers import randomize as randomize_weights
from tests.oracles import assert_close, run_onnx


@pytest.fixture(scope="module")
def cnn(k3, model_dir):
    model = small_cnn(k3)
    randomize_weights(model, 9)
    return model, save(model, str(model_dir / "layout_cnn.h5"))


def _ops(path):
    return [n.op_type for n in onnx.load(path).graph.node]


def test_one_transpose_at_the_input(cnn):
    model, path = cnn
    out = check(model, path)
    graph = onnx.load(out).graph
    transposes = [n for n in graph.node if n.op_type == "Transpose"]
    assert len(transposes) == 1
    assert transposes[0].input[0] == graph.input[0].name


def test_nchw_inputs_have_no_transpose(cnn, tmp_path):
    model, path = cnn
    out = convert_file(path, str(tmp_path / "nchw.onnx"), nchw_inputs=True)
    assert "Transpose" not in _ops(out)
    (x,) = inputs_for(model)
    got = run_onnx(out, {"img": np.ascontiguousarray(x.transpose(0, 3, 1, 2))})
    assert_close(next(iter(got.values())), keras_outputs(model, [x])[0])
    graph = onnx.load(out).graph
    perm = {p.key: p.value for p in graph.input[0].metadata_props}
    assert perm["modelport.source_perm"] == "0,2,3,1"


def test_per_layer_verification_agrees(cnn, tmp_path):
    _, path = cnn
    out = convert_file(path, str(tmp_path / "layers.onnx"))
    report = verify_model(path, out, per_layer=True)
    assert report.passed
    names = [c.name for c in report.layers]
    # Some layers' values disappear in fusions (BatchNormalization into Conv); most remain.
    assert {"relu1", "dw", "res", "cat", "pool", "flat", "probs"} <= set(names)
    assert all(c.passed for c in report.layers) and report.first_diverging_layer is None


def test_per_layer_verification_names_the_first_wrong_layer(cnn, tmp_path):
    _, path = cnn
    original = keras_layer.get("ReLU")

    def wrong_relu(ctx, layer, inputs):  # forgets max_value: relu instead of relu6
        (x,) = inputs
        return x.like(ctx.op("Relu", x.value))

    keras_layer.register("ReLU", wrong_relu)
    try:
        out = convert_file(path, str(tmp_path / "wrong.onnx"))
    finally:
        keras_layer.register("ReLU", original)
    report = verify_model(path, out, per_layer=True, inputs={
        "img": np.full((1, 16, 16, 3), 30.0, np.float32)})
    assert report.first_diverging_layer == "relu1"
    assert not report.passed


def test_nchw_inputs_verify_through_source_perm(cnn, tmp_path):
    _, path = cnn
    options = LoadOptions(nchw_inputs=True)
    out = convert_file(path, str(tmp_path / "nchw_v.onnx"), nchw_inputs=True)
    assert verify_model(path, out, options=options, per_layer=True).passed


def test_outputs_keep_their_layout_through_optimisation(k2, model_dir):
    # Two identical Tanh layers on one input: -O1 merges them and drops the Dense's zero
    # bias, replacing output values; with --nchw-inputs the outputs are channels-first and
    # must still say so, or verification compares them in the wrong axis order.
    x = k2.Input((5, 4), name="x")
    a = k2.layers.Activation("tanh", name="t1")(x)
    b = k2.layers.Activation("tanh", name="t2")(x)
    model = k2.Model(x, [a, k2.layers.Dense(3, name="d")(b)])
    path = save(model, str(model_dir / "twin_tanh_k2.h5"))
    out = convert_file(path, nchw_inputs=True)
    assert verify_model(path, out, options=LoadOptions(nchw_inputs=True)).passed
