"""Modules with learned matrices: SpatialConvolution(MM) (and cudnn's grouped form),
SpatialDilatedConvolution, SpatialFullConvolution, Linear."""

from __future__ import annotations

from modelport.importers.torch7.modules._util import batched
from modelport.importers.torch7.table import torch7_module


def _geometry(m):
    kw, kh = m.int("kW"), m.int("kH")
    dw, dh = m.int("dW", 1), m.int("dH", 1)
    if m.has("padding") and not m.has("padW"):  # nn before padW/padH had one `padding`
        pw = ph = m.int("padding")
    else:
        pw, ph = m.int("padW", 0), m.int("padH", 0)
    return kh, kw, dh, dw, ph, pw


@torch7_module("nn.SpatialConvolution", "nn.SpatialConvolutionMM",
               "nn.SpatialDilatedConvolution")
def spatial_convolution(ctx, m, x):
    x, undo = batched(ctx, x)
    n, cin, h, w = ctx.shape(x)
    kh, kw, dh, dw, ph, pw = _geometry(m)
    nin, nout = m.int("nInputPlane", cin), m.int("nOutputPlane")
    groups = m.int("groups", 1)
    if nin != cin:
        raise m.fail(f"expects {nin} input planes, got {cin}")
    if cin % groups or nout % groups:
        raise m.fail(f"groups {groups} does not divide {cin} input / {nout} output planes")
    dil_h, dil_w = m.int("dilationH", 1), m.int("dilationW", 1)
    weight = ctx.weight(m.tensor("weight"), [nout, cin // groups, kh, kw], "weight")
    args = [x, weight]
    bias = m.tensor("bias", required=False)
    if bias is not None:
        args.append(ctx.weight(bias, [nout], "bias"))
    oh = (h + 2 * ph - (dil_h * (kh - 1) + 1)) // dh + 1
    ow = (w + 2 * pw - (dil_w * (kw - 1) + 1)) // dw + 1
    if oh <= 0 or ow <= 0:
        raise m.fail(f"input {h}x{w} is smaller than the kernel")
    y = ctx.op("Conv", *args, kernel_shape=[kh, kw], strides=[dh, dw], pads=[ph, pw, ph, pw],
               dilations=[dil_h, dil_w], group=groups, shape=[n, nout, oh, ow])
    return undo(y)


@torch7_module("nn.SpatialFullConvolution")
def spatial_full_convolution(ctx, m, x):
    x, undo = batched(ctx, x)
    n, cin, h, w = ctx.shape(x)
    kh, kw, dh, dw, ph, pw = _geometry(m)
    nout = m.int("nOutputPlane")
    adj_h, adj_w = m.int("adjH", 0), m.int("adjW", 0)
    if m.int("nInputPlane", cin) != cin:
        raise m.fail(f"expects {m.int('nInputPlane')} input planes, got {cin}")
    weight = ctx.weight(m.tensor("weight"), [cin, nout, kh, kw], "weight")
    args = [x, weight]
    bias = m.tensor("bias", required=False)
    if bias is not None:
        args.append(ctx.weight(bias, [nout], "bias"))
    oh = (h - 1) * dh - 2 * ph + kh + adj_h
    ow = (w - 1) * dw - 2 * pw + kw + adj_w
    y = ctx.op("ConvTranspose", *args, kernel_shape=[kh, kw], strides=[dh, dw],
               pads=[ph, pw, ph, pw], output_padding=[adj_h, adj_w], shape=[n, nout, oh, ow])
    return undo(y)


@torch7_module("nn.Linear")
def linear(ctx, m, x):
    x = ctx.tensor_input(x)
    shape = ctx.shape(x)
    weight_t = m.tensor("weight")
    if len(weight_t.size) != 2:
        raise m.fail(f"weight has shape {list(weight_t.size)}, expected 2-D")
    nout, nin = weight_t.size
    if len(shape) not in (1, 2) or shape[-1] != nin:
        raise m.fail(f"expects a 1-D or 2-D input of {nin} features, got {list(shape)}")
    flat = x if len(shape) == 2 else ctx.op("Unsqueeze", x, ctx.ints([0], "axes"),
                                            shape=[1, nin])
    args = [flat, ctx.weight(weight_t, [nout, nin], "weight")]
    bias = m.tensor("bias", required=False)
    if bias is not None:
        args.append(ctx.weight(bias, [nout], "bias"))
    rows = ctx.shape(flat)[0]
    y = ctx.op("Gemm", *args, transB=1, shape=[rows, nout])
    if len(shape) == 1:
        y = ctx.op("Squeeze", y, ctx.ints([0], "axes"), shape=[nout])
    return y
