"""The layout pass on real channels-last CNNs: the Keras importer with its own layout solving
off (``extra={"keras_layout": "per_layer"}``: a Transpose pair around every layout-sensitive
layer, as TensorFlow-style importers emit) converts at -O0 with dozens of Transposes; at -O1 the
layout pass leaves the one at the input, and the outputs still match Keras."""

from __future__ import annotations

import onnx
import pytest

from modelport.convert.pipeline import convert
from modelport.importers.registry import LoadOptions
from tests.importers.keras.cases import small_cnn
from tests.importers.keras.helpers import input_names, inputs_for, keras_outputs, save
from tests.importers.keras.helpers import randomize as randomize_weights
from tests.oracles import assert_close, run_onnx

PER_LAYER = {"keras_layout": "per_layer", "keras_fold_batchnorm": False}


def plain_cnn(K):
    """Conv/BN/ReLU/pooling stack with a residual Add, a Concatenate, padding and a global
    pooling head: every layer the layout pass has to carry a Transpose through."""
    L = K.layers
    i = K.Input((20, 20, 3), name="img")
    h = L.ZeroPadding2D(((1, 2), (0, 1)), name="pad")(i)
    h = L.Conv2D(8, 3, strides=2, name="conv1")(h)
    h = L.BatchNormalization(name="bn1")(h)
    h = L.ReLU(6.0, name="relu1")(h)
    r = L.Conv2D(8, 3, padding="same", name="conv2")(h)
    r = L.BatchNormalization(name="bn2")(r)
    r = L.Activation("sigmoid", name="sig")(r)
    h = L.Add(name="res")([h, r])
    h = L.MaxPooling2D(2, name="pool")(h)
    c = L.Concatenate(name="cat")([h, L.Conv2D(4, 1, activation="tanh", name="branch")(h)])
    h = L.AveragePooling2D(2, name="avg")(c)
    h = L.LeakyReLU(name="leaky")(h)
    h = L.GlobalAveragePooling2D(name="gap")(h)
    return K.Model(i, L.Dense(5, name="logits")(h))


def _transposes(path) -> int:
    return sum(n.op_type == "Transpose" for n in onnx.load(path).graph.node)


@pytest.mark.parametrize("build, most", [(plain_cnn, 1), (small_cnn, 2)])
def test_layout_pass_removes_the_per_layer_transposes(k3, model_dir, tmp_path, build, most):
    model = build(k3)
    randomize_weights(model, 5)
    path = save(model, str(model_dir / f"layout_pass_{build.__name__}.keras"))
    options = LoadOptions(extra=dict(PER_LAYER))
    o0, o1 = str(tmp_path / "o0.onnx"), str(tmp_path / "o1.onnx")
    convert(path, o0, options=options, level=0, force=True)
    convert(path, o1, options=options, level=1, force=True)
    before, after = _transposes(o0), _transposes(o1)
    assert before >= 8, before  # the importer did emit the pairs
    # small_cnn keeps the input Transpose and one before Flatten (a layout-sensitive Reshape).
    assert after <= most, (before, after)
    feeds = inputs_for(model)
    want = keras_outputs(model, feeds)
    for onnx_path in (o0, o1):
        got = run_onnx(onnx_path, dict(zip(input_names(model), feeds)))
        for g, w in zip(got.values(), want):
            assert_close(g, w, rtol=1e-3, atol=1e-4, name=onnx_path)
    graph = onnx.load(o1).graph
    assert [i.name for i in graph.input] == input_names(model)
    assert [o.name for o in graph.output] == [o.name for o in onnx.load(o0).graph.output]


@pytest.mark.parametrize("name,kwargs", [
    ("MobileNetV3Small", {"input_shape": (32, 32, 3), "classes": 7}),
    ("EfficientNetB0", {"input_shape": (32, 32, 3), "classes": 5}),
])
def test_applications_per_layer_come_out_with_one_transpose(name, kwargs, k3, model_dir):
    """Hard-swish, swish and squeeze-excite blocks: the layout pass alone gets to the one
    Transpose the importer's own layout tracking reaches, and Keras still agrees."""
    from tests.importers.keras.helpers import check
    from tests.importers.keras.test_applications import _feeds
    from tests.importers.keras.test_applications import build as build_application

    model = build_application(k3, name, **kwargs)
    path = save(model, str(model_dir / f"{name}_per_layer.keras"))
    out = check(model, path, _feeds(model), extra={"keras_layout": "per_layer"})
    ops = [n.op_type for n in onnx.load(out).graph.node]
    assert ops.count("Transpose") == 1
