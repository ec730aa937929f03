"""Keras 3 operations recorded in functional graphs (``x + 1``, ``ops.sqrt(x)``...), the
ConvNeXt/Inception-ResNet helper layers of keras.applications, and a few Keras 2 TFOpLambda
functions.

Merge layers and these operations share class names (``Add``, ``Multiply``...); both take a
list of tensors, so one translator serves both.
"""

from __future__ import annotations

import numpy as np

from modelport.importers.keras.layers.merge import _chain
from modelport.importers.keras.table import KT, Context, Layer, keras_layer, scalar

_UNARY = {"Negative": "Neg", "Sqrt": "Sqrt", "Abs": "Abs", "Exp": "Exp", "Log": "Log",
          "Tanh": "Tanh", "Sigmoid": "Sigmoid", "Relu": "Relu", "Floor": "Floor",
          "Ceil": "Ceil", "Sin": "Sin", "Cos": "Cos", "Erf": "Erf", "Reciprocal": "Reciprocal",
          "Softplus": "Softplus", "Softsign": "Softsign"}


def _unary(op_type: str):
    def fn(ctx: Context, layer: Layer, inputs: list[KT]) -> KT:
        t = inputs[0]
        return t.like(ctx.op(op_type, t.value))

    return fn


for _name, _op in _UNARY.items():
    keras_layer(_name)(_unary(_op))


@keras_layer("Divide", "TrueDivide")
def divide(ctx: Context, layer: Layer, inputs: list[KT]) -> KT:
    return _chain(ctx, "Div", inputs)


@keras_layer("Power")
def power(ctx: Context, layer: Layer, inputs: list[KT]) -> KT:
    return _chain(ctx, "Pow", inputs)


@keras_layer("Square")
def square(ctx: Context, layer: Layer, inputs: list[KT]) -> KT:
    t = inputs[0]
    return t.like(ctx.op("Mul", t.value, t.value))


@keras_layer("LayerScale")
def layer_scale(ctx: Context, layer: Layer, inputs: list[KT]) -> KT:
    """keras.applications.convnext.LayerScale: x * gamma over the channel axis."""
    t = ctx.unflatten(inputs[0])
    n = int(layer.weights()[0].shape[0])
    shape = [1] * t.rank
    shape[t.phys_axis(-1)] = n
    g = ctx.weight(layer, 0, "gamma", transform=lambda w: w.reshape(shape), shape=shape)
    return t.like(ctx.op("Mul", t.value, g))


@keras_layer("CustomScaleLayer", "Custom>CustomScaleLayer")
def custom_scale(ctx: Context, layer: Layer, inputs: list[KT]) -> KT:
    """keras.applications.inception_resnet_v2.CustomScaleLayer: x[0] + x[1] * scale."""
    scale = float(layer.config["scale"])
    perm, (a, b) = ctx.common_layout(inputs[:2])
    y = ctx.op("Add", a, ctx.op("Mul", b, scalar(ctx, scale)))
    return KT(y, inputs[0].shape, inputs[0].dtype, perm)


_TF_BINARY = {"__operators__.add": "Add", "math.add": "Add", "math.multiply": "Mul",
              "__operators__.mul": "Mul", "math.subtract": "Sub", "__operators__.sub": "Sub",
              "math.truediv": "Div", "__operators__.truediv": "Div", "math.divide": "Div",
              "math.maximum": "Max", "math.minimum": "Min", "math.pow": "Pow"}
_TF_UNARY = {"nn.relu": "Relu", "math.sigmoid": "Sigmoid", "math.tanh": "Tanh",
             "math.exp": "Exp", "math.sqrt": "Sqrt", "math.negative": "Neg", "math.abs": "Abs"}


@keras_layer("TFOpLambda")
def tf_op_lambda(ctx: Context, layer: Layer, inputs: list[KT]) -> KT:
    """Keras 2 functional graphs record TensorFlow calls (``x + 3``) as TFOpLambda layers;
    the element-wise ones are translated (nothing is executed)."""
    from modelport.importers.keras.load import const_kt

    fn = layer.config.get("function")
    kw = getattr(ctx, "kwargs", {}) or {}
    if fn in _TF_BINARY:
        other = kw.get("y", inputs[1] if len(inputs) > 1 else None)
        if other is None:
            raise ValueError(f"TFOpLambda {fn} without a second operand")
        if not isinstance(other, KT):
            other = const_kt(ctx, other)
        return _chain(ctx, _TF_BINARY[fn], [inputs[0], other])
    if fn in _TF_UNARY:
        return inputs[0].like(ctx.op(_TF_UNARY[fn], inputs[0].value))
    if fn == "nn.relu6":
        t = inputs[0]
        return t.like(ctx.op("Clip", t.value, scalar(ctx, 0.0), scalar(ctx, 6.0)))
    raise ValueError(f"TFOpLambda {fn!r} is not supported")


_ = np
