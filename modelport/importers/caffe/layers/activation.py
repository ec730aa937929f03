"""Element-wise layers: ReLU, PReLU, ELU, Sigmoid, TanH, AbsVal, BNLL, Power, Exp, Log,
Threshold, Clip, Swish, Dropout."""

from __future__ import annotations

import math

import onnx_ir as ir

from modelport.importers.caffe.layers._util import broadcast_shape
from modelport.importers.caffe.table import caffe_layer


@caffe_layer("ReLU")
def relu(ctx, layer, inputs):
    (x,) = inputs
    slope = layer.relu_param.negative_slope
    if slope:
        return [ctx.op("LeakyRelu", x, alpha=float(slope), shape=ctx.shape(x))]
    return [ctx.op("Relu", x, shape=ctx.shape(x))]


@caffe_layer("PReLU")
def prelu(ctx, layer, inputs):
    (x,) = inputs
    shape = ctx.shape(x)
    channels = 1 if layer.prelu_param.channel_shared else shape[1]
    slope_shape = broadcast_shape([channels], len(shape), 1) if len(shape) > 1 else [1]
    slope = ctx.blob(0, [channels], "slope", out_shape=slope_shape,
                     transform=lambda a, s=slope_shape: a.reshape(s))
    return [ctx.op("PRelu", x, slope, shape=shape)]


@caffe_layer("ELU")
def elu(ctx, layer, inputs):
    (x,) = inputs
    return [ctx.op("Elu", x, alpha=float(layer.elu_param.alpha), shape=ctx.shape(x))]


@caffe_layer("Sigmoid")
def sigmoid(ctx, layer, inputs):
    return [ctx.op("Sigmoid", inputs[0], shape=ctx.shape(inputs[0]))]


@caffe_layer("TanH")
def tanh(ctx, layer, inputs):
    return [ctx.op("Tanh", inputs[0], shape=ctx.shape(inputs[0]))]


@caffe_layer("AbsVal")
def absval(ctx, layer, inputs):
    return [ctx.op("Abs", inputs[0], shape=ctx.shape(inputs[0]))]


@caffe_layer("BNLL")
def bnll(ctx, layer, inputs):
    return [ctx.op("Softplus", inputs[0], shape=ctx.shape(inputs[0]))]


@caffe_layer("Dropout")
def dropout(ctx, layer, inputs):
    # Caffe scales at training time ("inverted dropout"): inference is the identity.
    return [ctx.op("Identity", inputs[0], shape=ctx.shape(inputs[0]))]


def _affine(ctx, x, scale: float, shift: float):
    shape = ctx.shape(x)
    if scale != 1.0:
        x = ctx.op("Mul", x, ctx.const(float(scale), "scale"), shape=shape)
    if shift != 0.0:
        x = ctx.op("Add", x, ctx.const(float(shift), "shift"), shape=shape)
    return x


@caffe_layer("Power")
def power(ctx, layer, inputs):
    (x,) = inputs
    p = layer.power_param
    y = _affine(ctx, x, p.scale, p.shift)
    if p.power != 1.0:
        y = ctx.op("Pow", y, ctx.const(float(p.power), "power"), shape=ctx.shape(x))
    if y is x:
        y = ctx.op("Identity", x, shape=ctx.shape(x))
    return [y]


@caffe_layer("Exp")
def exp(ctx, layer, inputs):
    (x,) = inputs
    p = layer.exp_param
    log_base = 1.0 if p.base == -1 else math.log(p.base)
    y = _affine(ctx, x, p.scale * log_base, p.shift * log_base)
    return [ctx.op("Exp", y, shape=ctx.shape(x))]


@caffe_layer("Log")
def log(ctx, layer, inputs):
    (x,) = inputs
    p = layer.log_param
    y = ctx.op("Log", _affine(ctx, x, p.scale, p.shift), shape=ctx.shape(x))
    if p.base != -1:
        y = ctx.op("Mul", y, ctx.const(1.0 / math.log(p.base), "inv_log_base"),
                   shape=ctx.shape(x))
    return [y]


@caffe_layer("Threshold")
def threshold(ctx, layer, inputs):
    (x,) = inputs
    shape = ctx.shape(x)
    above = ctx.op("Greater", x, ctx.const(float(layer.threshold_param.threshold), "threshold"),
                   shape=shape, dtype=ir.DataType.BOOL)
    return [ctx.op("Cast", above, to=ir.DataType.FLOAT, shape=shape)]


@caffe_layer("Clip")
def clip(ctx, layer, inputs):
    (x,) = inputs
    p = layer.clip_param
    return [ctx.op("Clip", x, ctx.const(float(p.min), "min"), ctx.const(float(p.max), "max"),
                   shape=ctx.shape(x))]


@caffe_layer("Swish")
def swish(ctx, layer, inputs):
    (x,) = inputs
    shape = ctx.shape(x)
    beta = layer.swish_param.beta
    z = x if beta == 1.0 else ctx.op("Mul", x, ctx.const(float(beta), "beta"), shape=shape)
    return [ctx.op("Mul", x, ctx.op("Sigmoid", z, shape=shape), shape=shape)]
