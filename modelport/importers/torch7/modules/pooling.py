"""SpatialMaxPooling and SpatialAveragePooling with Torch's output-size rule: floor, or ceil in
``ceil_mode``, then dropping a last window that would start in the end padding. Average
pooling divides by the window clipped to the padded input (``count_include_pad``, the
default) or to the image; ONNX's AveragePool divides by the part inside the image, so a
constant map corrects the windows where the two differ. The old ``divide = false`` form sums.
"""

from __future__ import annotations

import math

import numpy as np

from modelport.importers.torch7.modules._util import batched
from modelport.importers.torch7.modules.conv import _geometry
from modelport.importers.torch7.table import torch7_module


def output_size(size: int, kernel: int, pad: int, stride: int, ceil: bool) -> int:
    span = size + 2 * pad - kernel
    out = (math.ceil(span / stride) if ceil else span // stride) + 1
    if pad > 0 and (out - 1) * stride >= size + pad:
        out -= 1
    return out


def _factors(size, kernel, pad, stride, out, include_pad: bool, divide: bool) -> np.ndarray:
    """Per output position: (window inside the image) / (Torch's divisor)."""
    f = np.empty(out, dtype=np.float64)
    for i in range(out):
        start = i * stride - pad
        end = min(start + kernel, size + pad)
        valid = min(end, size) - max(start, 0)
        if not divide:
            f[i] = valid
        else:
            f[i] = valid / ((end - start) if include_pad else valid)
    return f


def _pool(ctx, m, x, kind: str):
    x, undo = batched(ctx, x)
    n, c, h, w = ctx.shape(x)
    kh, kw, dh, dw, ph, pw = _geometry(m)
    ceil = m.bool("ceil_mode", False)
    oh, ow = output_size(h, kh, ph, dh, ceil), output_size(w, kw, pw, dw, ceil)
    if oh <= 0 or ow <= 0:
        raise m.fail(f"input {h}x{w} is smaller than the {kh}x{kw} window")
    end_h = max((oh - 1) * dh + kh - h - ph, 0)
    end_w = max((ow - 1) * dw + kw - w - pw, 0)
    pads = [ph, pw, end_h, end_w]
    shape = [n, c, oh, ow]
    if kind == "max":
        return undo(ctx.op("MaxPool", x, kernel_shape=[kh, kw], strides=[dh, dw], pads=pads,
                           shape=shape))
    y = ctx.op("AveragePool", x, kernel_shape=[kh, kw], strides=[dh, dw], pads=pads,
               count_include_pad=0, shape=shape)
    include = m.bool("count_include_pad", True)
    divide = m.bool("divide", True)
    factor = np.outer(_factors(h, kh, ph, dh, oh, include, divide),
                      _factors(w, kw, pw, dw, ow, include, divide)).astype(np.float32)
    if not np.all(factor == 1.0):
        y = ctx.op("Mul", y, ctx.const(factor, "divisor"), shape=shape)
    return undo(y)


@torch7_module("nn.SpatialMaxPooling")
def spatial_max_pooling(ctx, m, x):
    return _pool(ctx, m, x, "max")


@torch7_module("nn.SpatialAveragePooling")
def spatial_average_pooling(ctx, m, x):
    return _pool(ctx, m, x, "average")
