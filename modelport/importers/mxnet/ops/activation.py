"""Activations and softmax: Activation, LeakyReLU (leaky, prelu, elu, selu, gelu, rrelu at
inference), softmax / log_softmax, SoftmaxOutput and SoftmaxActivation (inference softmax)."""

from __future__ import annotations

import math

import numpy as np
import onnx_ir as ir

from modelport.importers.mxnet.table import mxnet_op

_ACT = {"relu": "Relu", "sigmoid": "Sigmoid", "tanh": "Tanh", "softrelu": "Softplus",
        "softsign": "Softsign"}


@mxnet_op("Activation")
def activation(ctx, node, inputs):
    x = ctx.data(inputs[0])
    kind = node.attrs.str("act_type")
    if kind not in _ACT:
        raise ctx.fail(f"act_type {kind!r} is not supported")
    return [ctx.op(_ACT[kind], x)]


@mxnet_op("relu", "sigmoid", "tanh", "softsign")
def unary_activation(ctx, node, inputs):
    return [ctx.op({"relu": "Relu", "sigmoid": "Sigmoid", "tanh": "Tanh",
                    "softsign": "Softsign"}[node.op], ctx.data(inputs[0]))]


@mxnet_op("LeakyReLU")
def leaky_relu(ctx, node, inputs):
    x = ctx.data(inputs[0])
    a = node.attrs
    kind = a.str("act_type", "leaky")
    slope = a.float("slope", 0.25)
    if kind == "leaky":
        return [ctx.op("LeakyRelu", x, alpha=slope)]
    if kind == "rrelu":  # inference: the mean of the random slope's range
        lo, hi = a.float("lower_bound", 0.125), a.float("upper_bound", 0.334)
        return [ctx.op("LeakyRelu", x, alpha=(lo + hi) / 2)]
    if kind == "elu":
        return [ctx.op("Elu", x, alpha=slope)]
    if kind == "selu":
        return [ctx.op("Selu", x, alpha=1.6732632423543772, gamma=1.0507009873554805)]
    if kind == "gelu":
        half = ctx.scalar(0.5, x, "half")
        erf = ctx.op("Erf", ctx.op("Mul", x, ctx.scalar(1 / math.sqrt(2), x, "rsqrt2")))
        return [ctx.op("Mul", ctx.op("Mul", x, half),
                       ctx.op("Add", erf, ctx.scalar(1.0, x, "one")))]
    if kind == "prelu":
        shape = ctx.shape(x)
        gamma_in = inputs[1]
        if isinstance(gamma_in, ir.Value):
            size = int(np.prod(ctx.shape(gamma_in), dtype=np.int64))
        else:  # a random parameter: one slope per channel
            size = shape[1]
        gamma = ctx.weight(gamma_in, [size], "slope", "gamma")
        if size != 1 and len(shape) > 2:
            gamma = ctx.op("Reshape", gamma, ctx.ints([size] + [1] * (len(shape) - 2)))
        return [ctx.op("PRelu", x, gamma)]
    raise ctx.fail(f"act_type {kind!r} is not supported")


def _softmax(ctx, x, axis: int, temperature: float | None, log: bool):
    if temperature is not None and temperature != 1.0:
        x = ctx.op("Div", x, ctx.scalar(temperature, x, "temperature"))
    return ctx.op("LogSoftmax" if log else "Softmax", x, axis=axis)


@mxnet_op("softmax", "log_softmax")
def softmax(ctx, node, inputs):
    x = ctx.data(inputs[0])
    a = node.attrs
    if a.bool("use_length", False):
        raise ctx.fail("softmax with use_length is not supported")
    return [_softmax(ctx, x, a.int("axis", -1), a.float("temperature"),
                     node.op == "log_softmax")]


@mxnet_op("SoftmaxOutput", "Softmax")
def softmax_output(ctx, node, inputs):
    """The training head as inference: a softmax (the label input is ignored)."""
    x = ctx.data(inputs[0])
    a = node.attrs
    shape = ctx.shape(x)
    if a.bool("multi_output", False):
        return [ctx.op("Softmax", x, axis=1)]
    if a.bool("preserve_shape", False) or len(shape) <= 2:
        return [ctx.op("Softmax", x, axis=-1)]
    flat = ctx.op("Reshape", x, ctx.ints([shape[0], int(np.prod(shape[1:]))]))
    y = ctx.op("Softmax", flat, axis=-1)
    return [ctx.op("Reshape", y, ctx.ints(shape, "out_shape"))]


@mxnet_op("SoftmaxActivation")
def softmax_activation(ctx, node, inputs):
    """``instance`` mode: over the last axis (as MXNet 1.x computes it); ``channel``: axis 1."""
    x = ctx.data(inputs[0])
    axis = 1 if node.attrs.str("mode", "instance") == "channel" else -1
    return [ctx.op("Softmax", x, axis=axis)]
