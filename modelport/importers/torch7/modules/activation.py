"""Element-wise modules: ReLU/Threshold, PReLU, Tanh, Sigmoid, ELU, LeakyReLU, SoftMax,
LogSoftMax, Dropout (evaluation mode), MulConstant, Square, Sqrt, Power."""

from __future__ import annotations

import onnx_ir as ir

from modelport.importers.torch7.table import torch7_module


def _unary(ctx, x, op_type: str, **attrs):
    x = ctx.tensor_input(x)
    return ctx.op(op_type, x, shape=ctx.shape(x), **attrs)


@torch7_module("nn.ReLU", "nn.Threshold")
def threshold(ctx, m, x):
    th, val = m.num("threshold", 0.0), m.num("val", 0.0)
    if th == 0.0 and val == 0.0:
        return _unary(ctx, x, "Relu")
    x = ctx.tensor_input(x)
    shape = ctx.shape(x)
    above = ctx.op("Greater", x, ctx.const(th, "threshold"), shape=shape, dtype=ir.DataType.BOOL)
    return ctx.op("Where", above, x, ctx.const(val, "val"), shape=shape)


@torch7_module("nn.ReLU6")
def relu6(ctx, m, x):
    x = ctx.tensor_input(x)
    return ctx.op("Clip", x, ctx.const(0.0, "min"), ctx.const(6.0, "max"), shape=ctx.shape(x))


@torch7_module("nn.PReLU")
def prelu(ctx, m, x):
    x = ctx.tensor_input(x)
    shape = ctx.shape(x)
    n = m.int("nOutputPlane", 0)
    t = m.tensor("weight")
    if n == 0:
        slope = ctx.weight(t, [1], "weight")
    else:
        rank = len(shape)
        # Torch: channels are dim 1 of a batch (rank 2 or 4), dim 0 of a single sample.
        axis = 1 if rank in (2, 4) else 0
        if shape[axis] != n:
            raise m.fail(f"has {n} slopes for {shape[axis]} channels")
        bshape = [n] + [1] * (rank - axis - 1)
        slope = ctx.weight(t, bshape, "weight")
    return ctx.op("PRelu", x, slope, shape=shape)


@torch7_module("nn.Tanh")
def tanh(ctx, m, x):
    return _unary(ctx, x, "Tanh")


@torch7_module("nn.Sigmoid")
def sigmoid(ctx, m, x):
    return _unary(ctx, x, "Sigmoid")


@torch7_module("nn.ELU")
def elu(ctx, m, x):
    return _unary(ctx, x, "Elu", alpha=m.num("alpha", 1.0))


@torch7_module("nn.LeakyReLU")
def leaky_relu(ctx, m, x):
    return _unary(ctx, x, "LeakyRelu", alpha=m.num("negval", 1.0 / 100))


def _softmax_axis(m, rank: int) -> int:
    # Torch's (Log)SoftMax: over the features of a vector or a batch of vectors, over the
    # planes of an image or a batch of images.
    axes = {1: 0, 2: 1, 3: 0, 4: 1}
    if rank not in axes:
        raise m.fail(f"takes 1-D to 4-D inputs, got rank {rank}")
    return axes[rank]


@torch7_module("nn.SoftMax")
def softmax(ctx, m, x):
    x = ctx.tensor_input(x)
    return ctx.op("Softmax", x, axis=_softmax_axis(m, len(ctx.shape(x))), shape=ctx.shape(x))


@torch7_module("nn.LogSoftMax")
def log_softmax(ctx, m, x):
    x = ctx.tensor_input(x)
    return ctx.op("LogSoftmax", x, axis=_softmax_axis(m, len(ctx.shape(x))),
                  shape=ctx.shape(x))


@torch7_module("nn.Dropout", "nn.SpatialDropout")
def dropout(ctx, m, x):
    """Evaluation mode: v2 (nn's default since 2015) passes through; v1 scales by 1 - p."""
    x = ctx.tensor_input(x)
    if m.type == "nn.Dropout" and m.bool("v2", False):
        return x
    p = m.num("p", 0.5)
    return ctx.op("Mul", x, ctx.const(1.0 - p, "keep"), shape=ctx.shape(x))


@torch7_module("nn.MulConstant")
def mul_constant(ctx, m, x):
    x = ctx.tensor_input(x)
    return ctx.op("Mul", x, ctx.const(m.num("constant_scalar"), "constant"), shape=ctx.shape(x))


@torch7_module("nn.AddConstant")
def add_constant(ctx, m, x):
    x = ctx.tensor_input(x)
    return ctx.op("Add", x, ctx.const(m.num("constant_scalar"), "constant"), shape=ctx.shape(x))


@torch7_module("nn.Square")
def square(ctx, m, x):
    x = ctx.tensor_input(x)
    return ctx.op("Mul", x, x, shape=ctx.shape(x))


@torch7_module("nn.Sqrt")
def sqrt(ctx, m, x):
    x = ctx.tensor_input(x)
    eps = m.num("eps", 0.0)
    if eps:
        x = ctx.op("Add", x, ctx.const(eps, "eps"), shape=ctx.shape(x))
    return ctx.op("Sqrt", x, shape=ctx.shape(x))


@torch7_module("nn.Power")
def power(ctx, m, x):
    x = ctx.tensor_input(x)
    return ctx.op("Pow", x, ctx.const(m.num("pow"), "pow"), shape=ctx.shape(x))


