"""Activation functions (the ``activation=`` argument and the Activation layers)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from modelport.errors import UnsupportedFeatureError, UnsupportedOpsError
from modelport.importers.keras.table import KT, Context, Layer, keras_layer, reduce


def activation_name(spec: Any) -> str:
    if spec is None:
        return "linear"
    if isinstance(spec, dict):  # Keras 3 may serialise a function as a dict
        cfg = spec.get("config")
        name = cfg if isinstance(cfg, str) else spec.get("registered_name") or \
            spec.get("class_name")
        return str(name)
    return str(spec)


def _f(ctx: Context, v: float):
    return ctx.const(np.array(v, np.float32), "c")


def activate(ctx: Context, spec: Any, t: KT, *, keras2: bool = False, axis: int = -1) -> KT:
    """Apply the activation named by ``spec`` to ``t``."""
    name = activation_name(spec)
    x = t.value
    op = ctx.op
    if name in ("linear", "None", "identity"):
        return t
    simple = {"relu": "Relu", "sigmoid": "Sigmoid", "tanh": "Tanh", "softplus": "Softplus",
              "softsign": "Softsign", "selu": "Selu", "elu": "Elu", "exponential": "Exp",
              "celu": "Celu"}
    if name in simple:
        return t.like(op(simple[name], x))
    if name == "relu6":
        return t.like(op("Clip", x, _f(ctx, 0.0), _f(ctx, 6.0)))
    if name in ("softmax", "log_softmax"):
        t = ctx.unflatten(t)
        return t.like(op("Softmax" if name == "softmax" else "LogSoftmax", t.value,
                         axis=t.phys_axis(axis)))
    if name == "hard_sigmoid":
        alpha = 0.2 if keras2 else 1.0 / 6.0
        return t.like(op("HardSigmoid", x, alpha=alpha, beta=0.5))
    if name in ("hard_silu", "hard_swish"):
        return t.like(op("HardSwish", x))
    if name in ("swish", "silu"):
        return t.like(op("Mul", x, op("Sigmoid", x)))
    if name == "gelu":
        inner = op("Erf", op("Mul", x, _f(ctx, 1.0 / math.sqrt(2.0))))
        return t.like(op("Mul", op("Mul", x, _f(ctx, 0.5)), op("Add", inner, _f(ctx, 1.0))))
    if name == "leaky_relu":
        return t.like(op("LeakyRelu", x, alpha=0.3 if keras2 else 0.2))
    if name == "mish":
        return t.like(op("Mul", x, op("Tanh", op("Softplus", x))))
    if name == "hard_tanh":
        return t.like(op("Clip", x, _f(ctx, -1.0), _f(ctx, 1.0)))
    if name == "tanh_shrink":
        return t.like(op("Sub", x, op("Tanh", x)))
    if name == "log_sigmoid":
        return t.like(op("Neg", op("Softplus", op("Neg", x))))
    if name == "hard_shrink":
        keep = op("Greater", op("Abs", x), _f(ctx, 0.5))
        return t.like(op("Where", keep, x, _f(ctx, 0.0)))
    if name == "soft_shrink":
        hi = op("Where", op("Greater", x, _f(ctx, 0.5)), op("Sub", x, _f(ctx, 0.5)), _f(ctx, 0.0))
        return t.like(op("Where", op("Less", x, _f(ctx, -0.5)), op("Add", x, _f(ctx, 0.5)), hi))
    if name == "squareplus":
        root = op("Sqrt", op("Add", op("Mul", x, x), _f(ctx, 4.0)))
        return t.like(op("Mul", op("Add", x, root), _f(ctx, 0.5)))
    if name in ("sparse_plus", "sparse_sigmoid"):
        lo, hi = op("LessOrEqual", x, _f(ctx, -1.0)), op("GreaterOrEqual", x, _f(ctx, 1.0))
        if name == "sparse_plus":
            xp1 = op("Add", x, _f(ctx, 1.0))
            mid = op("Mul", op("Mul", xp1, xp1), _f(ctx, 0.25))
            top = x
        else:
            mid = op("Mul", op("Add", x, _f(ctx, 1.0)), _f(ctx, 0.5))
            top = _f(ctx, 1.0)
        return t.like(op("Where", lo, _f(ctx, 0.0), op("Where", hi, top, mid)))
    if name == "glu":
        t = ctx.unflatten(t)
        ax = t.phys_axis(axis)
        shape = list(t.shape)
        half = shape[axis] // 2
        a, g = op("Split", t.value, ctx.const(np.array([half, half], np.int64), "split"),
                  axis=ax, outputs=2)
        shape[axis] = half
        return t.like(op("Mul", a, op("Sigmoid", g)), shape)
    if name == "sparsemax":
        return _sparsemax(ctx, ctx.unflatten(t), axis)
    raise UnsupportedOpsError({f"activation {name}": [ctx.b.current_layer or "?"]},
                              path=ctx.path, kind="Keras activation")


@keras_layer("Activation")
def activation_layer(ctx: Context, layer: Layer, inputs: list[KT]) -> KT:
    return activate(ctx, layer.config.get("activation"), inputs[0], keras2=layer.keras2)


def relu_general(ctx: Context, t: KT, slope: float, max_value: float | None,
                 threshold: float) -> KT:
    x, op = t.value, ctx.op
    if slope and max_value is None and threshold == 0:
        return t.like(op("LeakyRelu", x, alpha=float(slope)))
    if not slope and threshold == 0 and max_value is not None and float(max_value) >= 0:
        return t.like(op("Clip", x, _f(ctx, 0.0), _f(ctx, float(max_value))))
    if threshold != 0:
        mask = op("Cast", op("Greater", x, _f(ctx, threshold)), to=1)
        pos = op("Mul", x, mask)
    else:
        pos = op("Relu", x)
    if max_value is not None:
        pos = op("Clip", pos, _f(ctx, 0.0), _f(ctx, float(max_value)))
    if slope:
        neg = op("Relu", op("Sub", _f(ctx, threshold), x) if threshold else op("Neg", x))
        pos = op("Sub", pos, op("Mul", neg, _f(ctx, float(slope))))
    return t.like(pos)


@keras_layer("ReLU")
def relu_layer(ctx: Context, layer: Layer, inputs: list[KT]) -> KT:
    c = layer.config
    return relu_general(ctx, inputs[0], float(c.get("negative_slope") or 0.0),
                        c.get("max_value"), float(c.get("threshold") or 0.0))


@keras_layer("LeakyReLU")
def leaky_relu_layer(ctx: Context, layer: Layer, inputs: list[KT]) -> KT:
    c = layer.config
    alpha = c.get("negative_slope", c.get("alpha", 0.3))
    return inputs[0].like(ctx.op("LeakyRelu", inputs[0].value, alpha=float(alpha)))


@keras_layer("ThresholdedReLU")
def thresholded_relu(ctx: Context, layer: Layer, inputs: list[KT]) -> KT:
    theta = float(layer.config.get("theta", 1.0))
    return inputs[0].like(ctx.op("ThresholdedRelu", inputs[0].value, alpha=theta))


@keras_layer("ELU")
def elu_layer(ctx: Context, layer: Layer, inputs: list[KT]) -> KT:
    alpha = float(layer.config.get("alpha", 1.0))
    return inputs[0].like(ctx.op("Elu", inputs[0].value, alpha=alpha))


@keras_layer("Softmax")
def softmax_layer(ctx: Context, layer: Layer, inputs: list[KT]) -> KT:
    axis = layer.config.get("axis", -1)
    t = ctx.unflatten(inputs[0])
    if isinstance(axis, list) and len(axis) == 1:
        axis = axis[0]
    if isinstance(axis, list):  # softmax over several axes: exp(x - max) / sum
        axes = [t.phys_axis(a) for a in axis]
        m = reduce(ctx, "ReduceMax", t.value, axes, True)
        e = ctx.op("Exp", ctx.op("Sub", t.value, m))
        s = reduce(ctx, "ReduceSum", e, axes, True)
        return t.like(ctx.op("Div", e, s))
    return t.like(ctx.op("Softmax", t.value, axis=t.phys_axis(axis)))


@keras_layer("PReLU")
def prelu_layer(ctx: Context, layer: Layer, inputs: list[KT]) -> KT:
    t = ctx.unflatten(inputs[0])
    alpha_shape = tuple(layer.weights()[0].shape)  # logical shape[1:], 1 on shared axes
    perm = t.perm
    if perm is None:
        slope = ctx.weight(layer, 0, "alpha")
    else:
        # Physical order of the non-batch axes.
        order = [p - 1 for p in perm[1:]]
        slope = ctx.weight(layer, 0, "alpha", transform=lambda a: np.transpose(a, order),
                           shape=[alpha_shape[o] for o in order])
    return t.like(ctx.op("PRelu", t.value, slope))


def _sparsemax(ctx: Context, t: KT, axis: int) -> KT:
    """Sparsemax as Keras's TensorFlow backend computes it (sorted cumulative sums)."""
    ax = t.phys_axis(axis)
    n = t.shape[axis]
    if not isinstance(n, int):
        raise UnsupportedFeatureError("sparsemax needs a static size on its axis")
    op, x = ctx.op, t.value
    k = ctx.const(np.array([n], np.int64), "k")
    srt, _ = op("TopK", x, k, axis=ax, largest=1, sorted=1, outputs=2)
    csum = op("CumSum", srt, ctx.const(np.array(ax, np.int64), "axis"))
    rshape = [1] * t.rank
    rshape[ax] = n
    r = ctx.const(np.arange(1, n + 1, dtype=np.float32).reshape(rshape), "r")
    support = op("Greater", op("Sub", srt, op("Div", op("Sub", csum, _f(ctx, 1.0)), r)),
                 _f(ctx, 0.0))
    safe = op("Where", support, csum, _f(ctx, 0.0))
    count = reduce(ctx, "ReduceSum", op("Cast", support, to=1), [ax], True)
    tau = op("Div", op("Sub", reduce(ctx, "ReduceSum", safe, [ax], True), _f(ctx, 1.0)), count)
    return t.like(op("Max", op("Sub", x, tau), _f(ctx, 0.0)))
