"""keras.applications architectures (weights=None, seeded), converted and compared with Keras.

All of them are in the list; the full-size ones are slow (run with ``-m slow``). Two reduced
variants (small input, few classes) run in the default suite.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.importers.keras.helpers import check, save

APPLICATIONS = [
    "ConvNeXtBase", "ConvNeXtLarge", "ConvNeXtSmall", "ConvNeXtTiny", "ConvNeXtXLarge",
    "DenseNet121", "DenseNet169", "DenseNet201",
    "EfficientNetB0", "EfficientNetB1", "EfficientNetB2", "EfficientNetB3", "EfficientNetB4",
    "EfficientNetB5", "EfficientNetB6", "EfficientNetB7",
    "EfficientNetV2B0", "EfficientNetV2B1", "EfficientNetV2B2", "EfficientNetV2B3",
    "EfficientNetV2L", "EfficientNetV2M", "EfficientNetV2S",
    "InceptionResNetV2", "InceptionV3",
    "MobileNet", "MobileNetV2", "MobileNetV3Large", "MobileNetV3Small",
    "NASNetLarge", "NASNetMobile",
    "ResNet101", "ResNet101V2", "ResNet152", "ResNet152V2", "ResNet50", "ResNet50V2",
    "VGG16", "VGG19", "Xception",
]


def randomize_norms(model, seed: int = 0) -> None:
    """Non-trivial BatchNormalization statistics and affine terms (the rest keeps Keras's
    seeded initialisation, which keeps deep networks numerically tame)."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if type(layer).__name__ != "BatchNormalization":
            continue
        for w in layer.weights:
            n = tuple(w.shape)
            # Mild: deep networks amplify any systematic gain layer after layer.
            if "variance" in w.path or "gamma" in w.path:
                w.assign(rng.uniform(0.9, 1.1, n).astype("float32"))
            else:
                w.assign(rng.normal(0, 0.05, n).astype("float32"))


def calibrate(model) -> None:
    """Set BatchNormalization statistics to those of one seeded batch (momentum 0, one
    training-mode pass), as training would: an untrained deep network with arbitrary
    statistics amplifies float rounding layer after layer until outputs are chaotic."""
    bns = [layer for layer in model.layers if type(layer).__name__ == "BatchNormalization"]
    saved = [layer.momentum for layer in bns]
    for layer in bns:
        layer.momentum = 0.0
    model(_feeds(model, seed=2, batch=4)[0], training=True)
    for layer, m in zip(bns, saved):
        layer.momentum = m


def build(keras, name: str, **kwargs):
    keras.utils.set_random_seed(0)
    model = getattr(keras.applications, name)(weights=None, **kwargs)
    randomize_norms(model)
    calibrate(model)
    return model


def _feeds(model, seed: int = 1, batch: int = 1):
    # Dynamic image sizes (MobileNetV3 builds with (None, None, 3)): use 224x224.
    shape = [batch if i == 0 else 224 if d is None else int(d)
             for i, d in enumerate(model.inputs[0].shape)]
    return [np.random.default_rng(seed).standard_normal(shape).astype("float32")]


# The deepest residual networks are compared with a float64 evaluation instead of Keras's own
# float32 run: over 100+ layers float32 rounding drifts past rtol=1e-3/atol=1e-4 in *both*
# float32 implementations (Keras and the converted model), each in its own direction.
# Measured with the models, weights and input of this test (Keras 3.15 on TensorFlow 2.21 CPU,
# onnxruntime 1.32, 2 Dec 2026), max abs difference of the logits (magnitude up to ~4.5):
#                Keras float32 vs float64   converted vs float64   converted vs Keras float32
#   ResNet101    4.0e-4                     3.0e-4                 5.0e-4
#   ResNet152    1.6e-3                     1.1e-3                 1.7e-3
# Same top class in all three. The converted model is as close to float64 as Keras is.
# The converted model's logits must be within 5x the measured Keras float32 drift of the float64
# logits (rtol 0: every logit, whatever its size).
FLOAT32_DRIFT = {"ResNet101", "ResNet152"}
FLOAT64_ATOL = {"ResNet101": 2e-3, "ResNet152": 8e-3}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(set(APPLICATIONS) - FLOAT32_DRIFT))
def test_application(name, k3, tmp_path):
    # Logits, not probabilities: a softmax over 1000 near-equal logits hides differences.
    model = build(k3, name, classifier_activation=None)
    path = save(model, str(tmp_path / f"{name}.h5"))
    check(model, path, _feeds(model))


def float64_twin(keras, name: str, model):
    """The same architecture built in float64 with the float32 model's weights (BN statistics
    included): the reference float32 rounding is measured against."""
    policy = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float64")
    try:
        twin = getattr(keras.applications, name)(weights=None, classifier_activation=None)
    finally:
        keras.config.set_dtype_policy(policy)
    twin.set_weights([w.astype(np.float64) for w in model.get_weights()])
    return twin


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(FLOAT32_DRIFT))
def test_deep_resnet_logits_against_float64(name, k3, tmp_path):
    from tests.importers.keras.helpers import convert_file, input_names, keras_outputs
    from tests.oracles import assert_close, run_onnx

    model = build(k3, name, classifier_activation=None)
    feeds = _feeds(model)
    want = np.asarray(float64_twin(k3, name, model)(feeds[0].astype(np.float64),
                                                      training=False))
    assert want.dtype == np.float64
    keras32 = keras_outputs(model, feeds)[0].astype(np.float64)
    path = save(model, str(tmp_path / f"{name}.h5"))
    got = next(iter(run_onnx(convert_file(path),
                             dict(zip(input_names(model), feeds))).values()))
    keras_drift = float(np.max(np.abs(keras32 - want)))
    assert_close(got, want, rtol=0, atol=FLOAT64_ATOL[name],
                 name=f"{name} vs float64 (Keras float32 is off by {keras_drift:.3g} here)")


@pytest.mark.parametrize("name,kwargs", [
    ("MobileNetV3Small", {"input_shape": (32, 32, 3), "classes": 7}),
    ("EfficientNetB0", {"input_shape": (32, 32, 3), "classes": 5}),
])
def test_application_reduced(name, kwargs, k3, model_dir):
    import onnx

    model = build(k3, name, **kwargs)
    path = save(model, str(model_dir / f"{name}_small.keras"))
    out = check(model, path, _feeds(model))
    ops = [n.op_type for n in onnx.load(out).graph.node]
    assert ops.count("Transpose") == 1  # at the input only: the layout is solved
