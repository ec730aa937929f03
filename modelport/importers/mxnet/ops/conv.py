"""Operators with learned matrices: Convolution (1-D/2-D/3-D, groups, dilation),
Deconvolution (adj, target_shape), FullyConnected (flatten true/false), Embedding."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from modelport.importers.mxnet.ops._util import spatial
from modelport.importers.mxnet.table import mxnet_op


def _geometry(ctx, node, x):
    a = node.attrs
    shape = ctx.shape(x)
    kernel = list(a.ints("kernel"))
    n = len(kernel)
    if n == 0 or len(shape) != n + 2:
        raise ctx.fail(f"kernel {kernel} does not fit an input of shape {list(shape)}")
    layout = a.str("layout")
    if layout and layout not in ("NCW", "NCHW", "NCDHW"):
        raise ctx.fail(f"layout {layout} is not supported (only channels-first)")
    return (shape, kernel, spatial(a.ints("stride"), n, 1), spatial(a.ints("dilate"), n, 1),
            spatial(a.ints("pad"), n, 0))


@mxnet_op("Convolution", "Convolution_v1")
def convolution(ctx, node, inputs):
    x = ctx.data(inputs[0])
    shape, kernel, strides, dilations, pads = _geometry(ctx, node, x)
    a = node.attrs
    cout, group = a.required_int("num_filter"), a.int("num_group", 1)
    cin = shape[1]
    if cin % group or cout % group:
        raise ctx.fail(f"num_group {group} does not divide {cin} input / {cout} output channels")
    w = ctx.weight(inputs[1], [cout, cin // group, *kernel], "weight")
    args = [x, w]
    if not a.bool("no_bias", False):
        args.append(ctx.weight(inputs[2] if len(inputs) > 2 else None, [cout], "bias", "bias"))
    return [ctx.op("Conv", *args, kernel_shape=kernel, strides=strides, dilations=dilations,
                   pads=pads + pads, group=group)]


@mxnet_op("Deconvolution")
def deconvolution(ctx, node, inputs):
    x = ctx.data(inputs[0])
    shape, kernel, strides, dilations, pads = _geometry(ctx, node, x)
    a = node.attrs
    n = len(kernel)
    cout, group = a.required_int("num_filter"), a.int("num_group", 1)
    cin = shape[1]
    if cin % group or cout % group:
        raise ctx.fail(f"num_group {group} does not divide {cin} input / {cout} output channels")
    adj = spatial(a.ints("adj"), n, 0)
    target = [t for t in a.ints("target_shape")]
    if target and any(t > 0 for t in target):
        # MXNet derives pad and adj from the target size.
        pads, adj = [], []
        for i in range(n):
            full = strides[i] * (shape[2 + i] - 1) + dilations[i] * (kernel[i] - 1) + 1
            total = full - target[i]
            pads.append((total + 1) // 2)
            adj.append(total % 2)
    w = ctx.weight(inputs[1], [cin, cout // group, *kernel], "weight")
    args = [x, w]
    if not a.bool("no_bias", True):  # Deconvolution has no bias unless no_bias=False
        args.append(ctx.weight(inputs[2] if len(inputs) > 2 else None, [cout], "bias", "bias"))
    begin = list(pads)
    end = [max(p - j, 0) for p, j in zip(pads, adj)]
    extra = [max(j - p, 0) for p, j in zip(pads, adj)]
    return [ctx.op("ConvTranspose", *args, kernel_shape=kernel, strides=strides,
                   dilations=dilations, pads=begin + end,
                   output_padding=extra if any(extra) else None, group=group)]


@mxnet_op("FullyConnected")
def fully_connected(ctx, node, inputs):
    x = ctx.data(inputs[0])
    a = node.attrs
    shape = ctx.shape(x)
    n = a.required_int("num_hidden")
    flatten = a.bool("flatten", True)
    k = int(np.prod(shape[1:], dtype=np.int64)) if flatten else shape[-1]
    w = ctx.weight(inputs[1], [n, k], "weight")
    bias = None
    if not a.bool("no_bias", False):
        bias = ctx.weight(inputs[2] if len(inputs) > 2 else None, [n], "bias", "bias")
    if flatten or len(shape) == 2:
        if len(shape) != 2:
            x = ctx.op("Reshape", x, ctx.ints([shape[0], k]))
        args = [x, w] + ([bias] if bias is not None else [])
        return [ctx.op("Gemm", *args, transB=1)]
    wt = ctx.op("Transpose", w, perm=[1, 0])
    y = ctx.op("MatMul", x, wt)
    if bias is not None:
        y = ctx.op("Add", y, bias)
    return [y]


@mxnet_op("Embedding")
def embedding(ctx, node, inputs):
    x = ctx.data(inputs[0])
    a = node.attrs
    w = ctx.weight(inputs[1], [a.required_int("input_dim"), a.required_int("output_dim")], "weight")
    idx = x if ctx.dtype(x) == ir.DataType.INT64 else ctx.op("Cast", x, to=ir.DataType.INT64)
    # MXNet clips out-of-range indices.
    idx = ctx.op("Clip", idx, ctx.const(np.asarray(0, np.int64), "lo"),
                 ctx.const(np.asarray(a.required_int("input_dim") - 1, np.int64), "hi"))
    return [ctx.op("Gather", w, idx, axis=0)]
