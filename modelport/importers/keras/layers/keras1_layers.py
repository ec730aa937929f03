"""Layers only Keras 1 had: MaxoutDense, Highway, BatchNormalization(mode=1).

Their Keras 1 definitions:

* ``MaxoutDense``: ``max_f(x @ W[f] + b[f])`` with ``W (nb_feature, in, out)``, ``b (nb_feature,
  out)``;
* ``Highway``: ``t = sigmoid(x @ W_carry + b_carry)``, ``y = act(x @ W + b) * t + (1 - t) * x``
  (weights in the file: W, W_carry, b, b_carry);
* ``BatchNormalization(mode=1)``: each sample normalised over its last axis by its own
  statistics, ``(x - m) / (sqrt(var + eps) + eps) * gamma + beta``.
"""

from __future__ import annotations

import numpy as np

from modelport.errors import UnsupportedFeatureError
from modelport.importers.keras.layers.activations import activate
from modelport.importers.keras.table import KT, Context, Layer, ints, keras_layer, reduce, scalar


@keras_layer("MaxoutDense")
def maxout_dense(ctx: Context, layer: Layer, inputs: list[KT]) -> KT:
    t = ctx.as_logical(inputs[0])
    if t.rank != 2:
        raise UnsupportedFeatureError("MaxoutDense expects (batch, features) inputs")
    ws = layer.weights()
    nf, din, dout = (int(d) for d in ws[0].shape)
    w = ctx.weight(layer, 0, "W", transform=lambda k: np.transpose(k, (1, 0, 2)).reshape(
        din, nf * dout), shape=(din, nf * dout))
    b = ctx.weight(layer, 1, "b", transform=lambda v: v.reshape(nf * dout), shape=(nf * dout,)) \
        if len(ws) > 1 else None
    y = ctx.op("Gemm", t.value, w, b)
    y = ctx.op("Reshape", y, ints(ctx, [-1, nf, dout], "shape"))
    y = reduce(ctx, "ReduceMax", y, [1], False)
    return KT(y, (t.shape[0], dout), t.dtype)


@keras_layer("Highway")
def highway(ctx: Context, layer: Layer, inputs: list[KT]) -> KT:
    t = ctx.as_logical(inputs[0])
    if t.rank != 2:
        raise UnsupportedFeatureError("Highway expects (batch, features) inputs")
    bias = len(layer.weights()) == 4
    gate = ctx.op("Gemm", t.value, ctx.weight(layer, 1, "W_carry"),
                  ctx.weight(layer, 3, "b_carry") if bias else None)
    gate = ctx.op("Sigmoid", gate)
    h = ctx.op("Gemm", t.value, ctx.weight(layer, 0, "W"),
               ctx.weight(layer, 2, "b") if bias else None)
    h = activate(ctx, layer.config.get("activation"), KT(h, t.shape, t.dtype),
                 keras2=True).value
    carry = ctx.op("Sub", scalar(ctx, 1.0), gate)
    y = ctx.op("Add", ctx.op("Mul", h, gate), ctx.op("Mul", carry, t.value))
    return KT(y, t.shape, t.dtype)


@keras_layer("Keras1SampleNormalization")
def sample_norm(ctx: Context, layer: Layer, inputs: list[KT]) -> KT:
    t = ctx.as_logical(inputs[0])
    eps = float(layer.config.get("epsilon", 1e-3))
    n = int(t.shape[-1])
    axis = t.rank - 1
    mean = reduce(ctx, "ReduceMean", t.value, [axis], True)
    d = ctx.op("Sub", t.value, mean)
    var = reduce(ctx, "ReduceMean", ctx.op("Mul", d, d), [axis], True)
    std = ctx.op("Add", ctx.op("Sqrt", ctx.op("Add", var, scalar(ctx, eps))), scalar(ctx, eps))
    y = ctx.op("Div", d, std)
    y = ctx.op("Mul", y, ctx.weight(layer, 0, "gamma", shape=(n,)))
    y = ctx.op("Add", y, ctx.weight(layer, 1, "beta", shape=(n,)))
    return KT(y, t.shape, t.dtype)
