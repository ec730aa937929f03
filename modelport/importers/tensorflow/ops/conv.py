"""Convolutions, matrix products and bias: Conv2D/3D, DepthwiseConv2dNative,
Conv2DBackpropInput, MatMul, BatchMatMul, Einsum, BiasAdd.

Channels-last inputs are transposed to ONNX's channels-first layout and back around each
layout-sensitive op; the optimiser cancels the pairs that meet.
"""

from __future__ import annotations

import numpy as np

from modelport.importers.tensorflow.ops._util import (
    channels_last,
    pad_attrs,
    spatial,
    to_cf,
    to_cl,
    weight,
)
from modelport.importers.tensorflow.table import tf_op


def _conv_weight(ctx, w, rank):
    """TF filter (spatial..., in, out) -> ONNX (out, in, spatial...)."""
    shape = ctx.shape(w)
    perm = [rank - 1, rank - 2, *range(rank - 2)]
    new = [shape[p] for p in perm] if shape and all(d is not None for d in shape) else None
    if new is None:
        return ctx.op("Transpose", w, perm=perm)
    return weight(ctx, w, lambda a: a.transpose(perm), new,
                  lambda v: ctx.op("Transpose", v, perm=perm))


def _conv(ctx, node, x, w, *, depthwise=False):
    wr = ctx.rank(w)
    rank = wr  # input rank = spatial + 2 = filter rank
    cl = channels_last(node)
    xc = to_cf(ctx, x, rank) if cl else x
    wshape = ctx.shape(w)
    kernels = wshape[:-2]
    strides = spatial(node.ints("strides"), rank, cl)
    dilations = spatial(node.ints("dilations"), rank, cl)
    if depthwise:
        kh_kw_in_mult = wshape
        cin, mult = kh_kw_in_mult[-2], kh_kw_in_mult[-1]
        flat = [*kernels, 1, cin * mult]

        def relayout(a, flat=flat, rank=rank):
            return a.reshape(flat).transpose([rank - 1, rank - 2, *range(rank - 2)])

        new_shape = [cin * mult, 1, *kernels]
        wt = weight(ctx, w, relayout, new_shape,
                    lambda v: ctx.op("Transpose", ctx.op("Reshape", v, ctx.ints(flat)),
                                     perm=[rank - 1, rank - 2, *range(rank - 2)]))
        group = cin
    else:
        wt = _conv_weight(ctx, w, rank)
        xshape = ctx.shape(xc)
        cin = xshape[1] if xshape else None
        group = cin // wshape[-2] if cin and wshape[-2] and cin != wshape[-2] else 1
    pads = pad_attrs(ctx, node, xc, kernels, strides, dilations)
    y = ctx.op("Conv", xc, wt, kernel_shape=list(kernels), strides=strides,
               dilations=dilations, group=group, **pads)
    return to_cl(ctx, y, rank) if cl else y


@tf_op("Conv2D", "Conv3D", "Conv1D")
def conv(ctx, node, inputs):
    x, w = inputs
    if ctx.shape(w) is None or any(d is None for d in ctx.shape(w)):
        raise ctx.fail("the filter's shape must be static")
    return _conv(ctx, node, x, w)


@tf_op("DepthwiseConv2dNative")
def depthwise(ctx, node, inputs):
    x, w = inputs
    if ctx.shape(w) is None or any(d is None for d in ctx.shape(w)):
        raise ctx.fail("the filter's shape must be static")
    return _conv(ctx, node, x, w, depthwise=True)


@tf_op("Conv2DBackpropInput", "Conv3DBackpropInputV2")
def conv_transpose(ctx, node, inputs):
    sizes, w, dy = inputs
    out_size = ctx.partial_ints(sizes)
    wshape = ctx.shape(w)
    rank = len(wshape)
    cl = channels_last(node)
    dyc = to_cf(ctx, dy, rank) if cl else dy
    kernels = wshape[:-2]
    strides = spatial(node.ints("strides"), rank, cl)
    dilations = spatial(node.ints("dilations"), rank, cl)
    in_sizes = (ctx.shape(dyc) or [None] * rank)[2:]
    targets = (out_size[1:-1] if cl else out_size[2:]) if out_size else [None]
    if any(d is None for d in in_sizes) or any(d is None for d in targets):
        raise ctx.fail("needs static spatial sizes (its input's and input_sizes)")
    padding = node.s("padding", "VALID")
    explicit = node.ints("explicit_paddings")
    begins, ends, extra = [], [], []
    for i, (n, o, k, s, d) in enumerate(zip(in_sizes, targets, kernels, strides, dilations)):
        eff = (k - 1) * d + 1
        if padding == "SAME":
            begin = max((n - 1) * s + eff - o, 0) // 2
        elif padding == "EXPLICIT":
            pairs = [explicit[2 * j: 2 * j + 2] for j in range(len(explicit) // 2)]
            begin = (pairs[1:-1] if cl else pairs[2:])[i][0]
        else:
            begin = 0
        total = s * (n - 1) + eff - o
        end = total - begin
        begins.append(begin)
        ends.append(max(end, 0))
        extra.append(max(-end, 0))
    # ONNX ConvTranspose weight (in = dy channels, out, spatial...): TF (spatial..., out, in).
    perm = [rank - 1, rank - 2, *range(rank - 2)]
    wt = weight(ctx, w, lambda a: a.transpose(perm), [wshape[p] for p in perm],
                lambda v: ctx.op("Transpose", v, perm=perm))
    y = ctx.op("ConvTranspose", dyc, wt, kernel_shape=list(kernels), strides=strides,
               dilations=dilations, pads=begins + ends,
               output_padding=extra if any(extra) else None)
    return to_cl(ctx, y, rank) if cl else y


@tf_op("BiasAdd", "BiasAddV1")
def bias_add(ctx, node, inputs):
    x, b = inputs
    if channels_last(node) or ctx.rank(x) <= 2:
        return ctx.op("Add", x, b)
    rank = ctx.rank(x)
    return ctx.op("Add", x, ctx.op("Reshape", b, ctx.ints([-1] + [1] * (rank - 2))))


def _swap_last(ctx, v):
    rank = ctx.rank(v)
    perm = [*range(rank - 2), rank - 1, rank - 2]
    shape = ctx.shape(v)
    if shape and all(d is not None for d in shape):
        return weight(ctx, v, lambda a: np.swapaxes(a, -1, -2), [shape[p] for p in perm],
                      lambda t: ctx.op("Transpose", t, perm=perm))
    return ctx.op("Transpose", v, perm=perm)


@tf_op("MatMul")
def matmul(ctx, node, inputs):
    a, b = inputs
    if node.b("transpose_a"):
        a = _swap_last(ctx, a)
    if node.b("transpose_b"):
        b = _swap_last(ctx, b)
    return ctx.op("MatMul", a, b)


@tf_op("BatchMatMul", "BatchMatMulV2", "BatchMatMulV3")
def batch_matmul(ctx, node, inputs):
    a, b = inputs
    if node.b("adj_x"):
        a = _swap_last(ctx, a)
    if node.b("adj_y"):
        b = _swap_last(ctx, b)
    if node.op == "BatchMatMulV3":
        out = node.type("Tout", 0)
        if out:
            from modelport.importers.tensorflow import dtypes

            y = ctx.op("MatMul", ctx.cast(a, dtypes.to_ir(out)), ctx.cast(b, dtypes.to_ir(out)))
            return y
    return ctx.op("MatMul", a, b)


@tf_op("Einsum")
def einsum(ctx, node, inputs):
    equation = node.s("equation").replace(" ", "")
    if "..." in equation and "->" not in equation:
        raise ctx.fail(f"equation {equation!r} without an explicit output is not supported")
    return ctx.op("Einsum", *inputs, equation=equation)
