"""Pooling, with Caffe's output-size rule: ceil rounding (unless the fork field
``ceil_mode: false`` or ``round_mode: FLOOR`` asks for floor), then dropping a last window
that would start in the padding. Average pooling divides by the window clipped to the padded
input (not to the extra ceil area), which ONNX has no attribute for: the translator uses
AveragePool without padding counted and multiplies by a constant correction map when needed.
"""

from __future__ import annotations

import math

import numpy as np

from modelport.importers.caffe.layers._util import spatial
from modelport.importers.caffe.table import caffe_layer

MAX, AVE, STOCHASTIC = 0, 1, 2


def output_size(size: int, kernel: int, pad: int, stride: int, ceil: bool) -> int:
    span = size + 2 * pad - kernel
    out = (math.ceil(span / stride) if ceil else span // stride) + 1
    if pad > 0 and (out - 1) * stride >= size + pad:
        out -= 1  # the last window must start inside the image or its leading padding
    return out


def _ave_correction(size: int, kernel: int, pad: int, stride: int, out: int) -> np.ndarray:
    """Per output position: (window inside the image) / (Caffe's divisor)."""
    factors = np.empty(out, dtype=np.float64)
    for i in range(out):
        start = i * stride - pad
        end = min(start + kernel, size + pad)
        caffe_divisor = end - start
        valid = min(end, size) - max(start, 0)
        factors[i] = valid / caffe_divisor
    return factors


@caffe_layer("Pooling")
def pooling(ctx, layer, inputs):
    (x,) = inputs
    p = layer.pooling_param
    shape = ctx.shape(x)
    if len(shape) != 4:
        raise ctx.fail(f"pooling needs a 4-D input, got shape {list(shape)}")
    if len(layer.top) > 1:
        raise ctx.fail("pooling with a mask top (max-unpooling nets) is not supported")
    if p.pool == STOCHASTIC:
        raise ctx.fail("STOCHASTIC pooling is not supported")
    h, w = shape[2], shape[3]
    if p.global_pooling:
        op = "GlobalMaxPool" if p.pool == MAX else "GlobalAveragePool"
        return [ctx.op(op, x, shape=[shape[0], shape[1], 1, 1])]
    kernel = spatial(p, "kernel", 0)
    if any(k <= 0 for k in kernel):
        raise ctx.fail("pooling_param has no kernel size (and no global_pooling)")
    pads = spatial(p, "pad", 0)
    strides = spatial(p, "stride", 1)
    ceil = p.ceil_mode and p.round_mode == 0
    outs = [output_size(s, k, pd, st, ceil)
            for s, k, pd, st in zip((h, w), kernel, pads, strides)]
    # Explicit end padding that makes floor rounding give Caffe's output size.
    ends = [(o - 1) * st + k - s - pd for o, st, k, s, pd in zip(outs, strides, kernel, (h, w), pads)]
    onnx_pads = [pads[0], pads[1], max(ends[0], 0), max(ends[1], 0)]
    out_shape = [shape[0], shape[1], *outs]
    if any(e < 0 for e in ends):
        # Windows stop before the end (floor rounding): trailing rows are never read.
        pass
    if p.pool == MAX:
        return [ctx.op("MaxPool", x, kernel_shape=kernel, pads=onnx_pads, strides=strides,
                       shape=out_shape)]
    y = ctx.op("AveragePool", x, kernel_shape=kernel, pads=onnx_pads, strides=strides,
               count_include_pad=0, shape=out_shape)
    fh = _ave_correction(h, kernel[0], pads[0], strides[0], outs[0])
    fw = _ave_correction(w, kernel[1], pads[1], strides[1], outs[1])
    factor = np.outer(fh, fw).astype(np.float32)
    if not np.all(factor == 1.0):
        y = ctx.op("Mul", y, ctx.const(factor, "ave_divisor"), shape=out_shape)
    return [y]
