"""Lambda and custom layers are never executed: clear errors, and the translation registry."""

from __future__ import annotations

import numpy as np
import pytest

from modelport.convert.pipeline import import_model
from modelport.errors import UnsafeModelError, UnsupportedOpsError
from modelport.importers.keras import KT, keras_layer
from modelport.importers.registry import LoadOptions
from tests.importers.keras.helpers import check, randomize, save


@pytest.fixture(scope="module")
def custom_classes(k3):
    @k3.saving.register_keras_serializable(package="mp_test")
    class ScaleBy(k3.layers.Layer):
        def __init__(self, factor=2.0, **kw):
            super().__init__(**kw)
            self.factor = factor

        def call(self, x):
            return x * self.factor

        def get_config(self):
            return {**super().get_config(), "factor": self.factor}

    @k3.saving.register_keras_serializable(package="mp_test")
    class Gate(k3.layers.Layer):
        def build(self, shape):
            self.w = self.add_weight(shape=(shape[-1],), initializer="ones", name="w")

        def call(self, x):
            return x * self.w

    return ScaleBy, Gate


def _custom_model(k3, custom_classes):
    ScaleBy, Gate = custom_classes
    i = k3.Input((5,), name="x")
    h = k3.layers.Dense(4, name="d")(i)
    h = ScaleBy(3.0, name="scale")(h)
    h = Gate(name="gate")(h)
    h = k3.layers.Lambda(lambda t: t + 1.0, name="plus_one")(h)
    return k3.Model(i, h)


def test_lambda_is_unsafe_and_named(k3, custom_classes, model_dir):
    model = _custom_model(k3, custom_classes)
    path = save(model, str(model_dir / "custom.h5"))
    with pytest.raises(UnsafeModelError) as err:
        import_model(path)
    text = str(err.value)
    assert "'plus_one'" in text and "never runs" in text
    assert "ScaleBy" in text and "Gate" in text  # the other problems are listed too


def test_every_untranslatable_layer_is_reported_once(k3, custom_classes, model_dir):
    model = _custom_model(k3, custom_classes)
    path = save(model, str(model_dir / "custom.keras"))
    with pytest.raises(UnsupportedOpsError) as err:
        import_model(path, options=LoadOptions(trust_code=True))
    ops = err.value.ops
    assert ops["Lambda"] == ["plus_one"]
    assert any(k.startswith("ScaleBy") and v == ["scale"] for k, v in ops.items())
    assert any(k.startswith("Gate") and v == ["gate"] for k, v in ops.items())


def test_registered_translations_convert_custom_layers(k3, custom_classes, model_dir):
    ScaleBy, Gate = custom_classes
    i = k3.Input((5,), name="x")
    h = Gate(name="gate")(ScaleBy(3.0, name="scale")(k3.layers.Dense(4, name="d")(i)))
    model = k3.Model(i, k3.layers.Dense(2, name="out")(h))
    randomize(model, 2)
    path = save(model, str(model_dir / "custom_ok.keras"))

    @keras_layer("ScaleBy", replace=True)
    def scale_by(ctx, layer, inputs):
        (x,) = inputs
        factor = ctx.const(np.float32(layer.config["factor"]), "factor")
        return x.like(ctx.op("Mul", x.value, factor))

    @keras_layer("mp_test>Gate", replace=True)
    def gate(ctx, layer, inputs):
        (x,) = inputs
        return KT(ctx.op("Mul", ctx.logical(x), ctx.weight(layer, 0, "w")), x.shape, x.dtype)

    try:
        check(model, path)
    finally:
        keras_layer._table.pop("ScaleBy", None)
        keras_layer._table.pop("mp_test>Gate", None)


def test_lambda_translation_by_layer_name(k3, model_dir):
    i = k3.Input((3,), name="x")
    model = k3.Model(i, k3.layers.Lambda(lambda t: t * 2.0, name="double")(
        k3.layers.Dense(3, name="d")(i)))
    randomize(model, 4)
    path = save(model, str(model_dir / "lambda_named.h5"))

    @keras_layer("Lambda:double", replace=True)
    def double(ctx, layer, inputs):
        (x,) = inputs
        return x.like(ctx.op("Mul", x.value, ctx.const(np.float32(2.0), "two")))

    try:
        # A registered translation runs none of the Lambda's code: no --trust-code needed.
        check(model, path)
    finally:
        keras_layer._table.pop("Lambda:double", None)
