"""Layers with learned matrices: Convolution (and the ConvolutionDepthwise fork type),
Deconvolution, InnerProduct, Embed."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from modelport.importers.caffe.layers._util import axis as norm_axis
from modelport.importers.caffe.layers._util import spatial
from modelport.importers.caffe.table import caffe_layer


def _conv_geometry(ctx, p, rank: int):
    n = rank - 2
    if n < 1:
        raise ctx.fail(f"convolution needs an input of rank 3 or more, got rank {rank}")
    if p.axis != 1:
        raise ctx.fail(f"convolution_param.axis {p.axis} is not supported (only 1)")
    kernel = spatial(p, "kernel", 0, n)
    if any(k <= 0 for k in kernel):
        raise ctx.fail("convolution_param has no kernel size")
    pads = spatial(p, "pad", 0, n)
    strides = spatial(p, "stride", 1, n)
    dilations = spatial(p, "dilation", 1, n)
    return kernel, pads, strides, dilations


@caffe_layer("Convolution", "ConvolutionDepthwise", "DepthwiseConvolution")
def convolution(ctx, layer, inputs):
    (x,) = inputs
    p = layer.convolution_param
    shape = ctx.shape(x)
    kernel, pads, strides, dilations = _conv_geometry(ctx, p, len(shape))
    cin, cout = shape[1], int(p.num_output)
    group = int(p.group)
    if layer.type != "Convolution":
        group = cin  # the depthwise fork layers always group by input channel
    if cin % group or cout % group:
        raise ctx.fail(f"group {group} does not divide {cin} input / {cout} output channels")
    w = ctx.blob(0, [cout, cin // group, *kernel], "weight")
    args = [x, w]
    if p.bias_term:
        args.append(ctx.blob(1, [cout], "bias"))
    out = [shape[0], cout] + [
        (shape[2 + i] + 2 * pads[i] - (dilations[i] * (kernel[i] - 1) + 1)) // strides[i] + 1
        for i in range(len(kernel))
    ]
    return [ctx.op("Conv", *args, kernel_shape=kernel, pads=pads + pads, strides=strides,
                   dilations=dilations, group=group, shape=out)]


@caffe_layer("Deconvolution")
def deconvolution(ctx, layer, inputs):
    (x,) = inputs
    p = layer.convolution_param
    shape = ctx.shape(x)
    kernel, pads, strides, dilations = _conv_geometry(ctx, p, len(shape))
    cin, cout, group = shape[1], int(p.num_output), int(p.group)
    if cin % group or cout % group:
        raise ctx.fail(f"group {group} does not divide {cin} input / {cout} output channels")
    w = ctx.blob(0, [cin, cout // group, *kernel], "weight")
    args = [x, w]
    if p.bias_term:
        args.append(ctx.blob(1, [cout], "bias"))
    out = [shape[0], cout] + [
        strides[i] * (shape[2 + i] - 1) + dilations[i] * (kernel[i] - 1) + 1 - 2 * pads[i]
        for i in range(len(kernel))
    ]
    return [ctx.op("ConvTranspose", *args, kernel_shape=kernel, pads=pads + pads,
                   strides=strides, dilations=dilations, group=group, shape=out)]


@caffe_layer("InnerProduct")
def inner_product(ctx, layer, inputs):
    (x,) = inputs
    p = layer.inner_product_param
    shape = ctx.shape(x)
    ax = norm_axis(p.axis, len(shape))
    outer = int(np.prod(shape[:ax], dtype=np.int64))
    k = int(np.prod(shape[ax:], dtype=np.int64))
    n = int(p.num_output)
    if p.transpose:
        w = ctx.blob(0, [k, n], "weight")
    else:
        w = ctx.blob(0, [n, k], "weight")
    flat = x
    if len(shape) != 2 or ax != 1:
        flat = ctx.op("Reshape", x, ctx.ints([outer, k]), shape=[outer, k])
    args = [flat, w]
    if p.bias_term:
        args.append(ctx.blob(1, [n], "bias"))
    y = ctx.op("Gemm", *args, transB=0 if p.transpose else 1, shape=[outer, n])
    final = [*shape[:ax], n]
    if list(final) != [outer, n]:
        y = ctx.op("Reshape", y, ctx.ints(final), shape=final)
    return [y]


@caffe_layer("Embed")
def embed(ctx, layer, inputs):
    (x,) = inputs
    p = layer.embed_param
    shape = ctx.shape(x)
    vocab, n = int(p.input_dim), int(p.num_output)
    w = ctx.blob(0, [vocab, n], "weight")
    idx = ctx.op("Cast", x, to=ir.DataType.INT64, shape=shape, dtype=ir.DataType.INT64)
    y = ctx.op("Gather", w, idx, axis=0, shape=[*shape, n])
    if p.bias_term:
        y = ctx.op("Add", y, ctx.blob(1, [n], "bias"), shape=[*shape, n])
    return [y]
