"""Keras 3 operations recorded in functional graphs (``x + 1``, ``ops.sqrt(x)``, comparisons,
logic, ``ops.any``/``ops.all``).

Merge layers and these operations share class names (``Add``, ``Multiply``...); both take a
list of tensors, so one translator serves both.
"""

from __future__ import annotations

import numpy as np

from modelport.importers.keras.layers.merge import _broadcast_shape, _chain
from modelport.importers.keras.layers.tf_functions import _operands
from modelport.importers.keras.table import (
    KT,
    Context,
    Layer,
    keras_layer,
    reduce,
)

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


# Comparisons and logic (Keras 3 records the masks it computes with these: NotEqual, Any,
# LogicalOr...). A Python scalar operand takes the other operand's type.
_COMPARE = {"Equal": "Equal", "NotEqual": "Equal", "Greater": "Greater",
            "GreaterEqual": "GreaterOrEqual", "Less": "Less", "LessEqual": "LessOrEqual"}
_LOGIC = {"LogicalAnd": "And", "LogicalOr": "Or", "LogicalXor": "Xor"}


def _compare(name: str):
    def fn(ctx: Context, layer: Layer, inputs: list[KT]) -> KT:
        inputs = _operands(ctx, name, inputs, kind="Keras operation")
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
