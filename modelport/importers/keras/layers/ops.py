"""Keras 3 operations recorded in functional graphs (``x + 1``, ``ops.sqrt(x)``...), the
ConvNeXt/Inception-ResNet helper layers of keras.applications, and a few Keras 2 TFOpLambda
functions.

Merge layers and these operations share class names (``Add``, ``Multiply``...); both take a
list of tensors, so one translator serves both.
"""

from __future__ import annotations

import numpy as np

from modelport.importers.keras.layers.merge import _broadcast_shape, _chain
from modelport.importers.keras.table import KT, Context, Layer, keras_layer, reduce, scalar

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


# Comparisons and logic (Keras 3 records the masks it computes with these: NotEqual, Any,
# LogicalOr...). A Python scalar operand takes the other operand's type.
_COMPARE = {"Equal": "Equal", "NotEqual": "Equal", "Greater": "Greater",
            "GreaterEqual": "GreaterOrEqual", "Less": "Less", "LessEqual": "LessOrEqual"}
_LOGIC = {"LogicalAnd": "And", "LogicalOr": "Or", "LogicalXor": "Xor"}


def _same_type(ctx: Context, inputs: list[KT]) -> list[KT]:
    typed = [t for t in inputs if t.const is None]
    if not typed:
        return inputs
    dtype = typed[0].dtype
    return [t if t.const is None or t.dtype == dtype else
            KT(ctx.const(t.const.astype(dtype), "scalar"), t.shape, dtype, const=t.const.astype(dtype))
            for t in inputs]


def _compare(name: str):
    def fn(ctx: Context, layer: Layer, inputs: list[KT]) -> KT:
        inputs = _same_type(ctx, inputs)
        perm, (a, b) = ctx.common_layout(inputs)
        y = ctx.op(_COMPARE[name], a, b)
        if name == "NotEqual":
            y = ctx.op("Not", y)
        return KT(y, _broadcast_shape([t.shape for t in inputs]), np.dtype(bool), perm)

    return fn


def _logic(name: str):
    def fn(ctx: Context, layer: Layer, inputs: list[KT]) -> KT:
        cast = [t if t.dtype == bool else t.like(ctx.op("Cast", t.value, to=9), dtype=bool)
                for t in inputs]
        out = _chain(ctx, _LOGIC[name], cast)
        out.dtype = np.dtype(bool)
        return out

    return fn


for _name in _COMPARE:
    keras_layer(_name)(_compare(_name))
for _name in _LOGIC:
    keras_layer(_name)(_logic(_name))


@keras_layer("LogicalNot")
def logical_not(ctx: Context, layer: Layer, inputs: list[KT]) -> KT:
    t = inputs[0]
    v = t.value if t.dtype == bool else ctx.op("Cast", t.value, to=9)
    return t.like(ctx.op("Not", v), dtype=bool)


@keras_layer("Any", "All")
def any_all(ctx: Context, layer: Layer, inputs: list[KT]) -> KT:
    """ops.any / ops.all over ``axis`` (all axes when None), as a max / min of 0/1 values."""
    t = inputs[0]
    c = layer.config
    axis = c.get("axis")
    axes = list(range(t.rank)) if axis is None else \
        [a % t.rank for a in (axis if isinstance(axis, list) else [axis])]
    keep = bool(c.get("keepdims", False))
    x = ctx.op("Cast", ctx.logical(t), to=6)  # int32: ReduceMax/Min take no bool
    y = reduce(ctx, "ReduceMax" if layer.class_name == "Any" else "ReduceMin", x, axes, keep)
    shape = tuple(1 if i in axes else d for i, d in enumerate(t.shape) if keep or i not in axes)
    return KT(ctx.op("Cast", y, to=9), shape, np.dtype(bool))
