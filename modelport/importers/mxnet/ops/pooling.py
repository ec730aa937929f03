"""Pooling with MXNet's conventions: ``valid`` (floor), ``full`` (ceil, no window dropped)
and ``same`` (ceil(in / stride)) output sizes; max, avg (``count_include_pad`` true by
default: the divisor counts padding but not the extra ``full`` area), sum and lp pooling,
global pooling; ``_contrib_AdaptiveAvgPooling2D``.

ONNX's AveragePool cannot express a divisor that counts the symmetric padding but not the
extra end area of ceil rounding, so average and sum pooling run AveragePool without counting
padding and multiply by a constant map (MXNet's divisor vs the valid count) where needed.
"""

from __future__ import annotations

import math

import numpy as np

from modelport.importers.mxnet.ops._util import spatial
from modelport.importers.mxnet.table import mxnet_op


def _factor(size, kernel, pad, stride, out, extra, kind, include_pad):
    """Per output position: what to multiply ONNX's AveragePool (padding not counted, the
    input padded by ``extra`` at the end) by to get MXNet's avg or sum pooling."""
    factor = np.empty(out)
    for i in range(out):
        start = i * stride - pad
        end = min(start + kernel, size + pad)
        valid = max(min(end, size) - max(start, 0), 0)
        onnx_count = max(min(start + kernel, size + extra) - max(start, 0), 1)
        if kind == "sum":
            factor[i] = onnx_count
        else:
            divisor = (end - start) if include_pad else valid
            factor[i] = onnx_count / divisor if divisor > 0 else 0.0
    return factor


def _outer(vectors):
    result = np.ones(())
    for v in vectors:
        result = np.multiply.outer(result, v)
    return result


@mxnet_op("Pooling", "Pooling_v1")
def pooling(ctx, node, inputs):
    x = ctx.data(inputs[0])
    a = node.attrs
    shape = ctx.shape(x)
    n = len(shape) - 2
    if n < 1:
        raise ctx.fail(f"pooling needs an input of rank 3 or more, got {list(shape)}")
    layout = a.str("layout")
    if layout and layout not in ("NCW", "NCHW", "NCDHW"):
        raise ctx.fail(f"layout {layout} is not supported (only channels-first)")
    kind = a.str("pool_type", "max")
    if kind not in ("max", "avg", "sum", "lp"):
        raise ctx.fail(f"pool_type {kind!r} is not supported")
    p_value = a.int("p_value", 2)
    if a.bool("global_pool", False):
        if kind == "max":
            return [ctx.op("GlobalMaxPool", x)]
        if kind == "avg":
            return [ctx.op("GlobalAveragePool", x)]
        if kind == "lp":
            return [ctx.op("GlobalLpPool", x, p=p_value)]
        return [ctx.reduce("ReduceSum", x, list(range(2, n + 2)), keepdims=1)]
    kernel = spatial(a.ints("kernel"), n, 0)
    if any(k <= 0 for k in kernel):
        raise ctx.fail("pooling has no kernel (and no global_pool)")
    strides = spatial(a.ints("stride"), n, 1)
    pads = spatial(a.ints("pad"), n, 0)
    convention = a.str("pooling_convention", "valid")
    sizes = shape[2:]
    begin = list(pads)
    if convention == "valid":
        outs = [(s + 2 * p - k) // st + 1 for s, p, k, st in zip(sizes, pads, kernel, strides)]
    elif convention == "full":
        outs = [int(math.ceil((s + 2 * p - k) / st)) + 1
                for s, p, k, st in zip(sizes, pads, kernel, strides)]
    elif convention == "same":
        outs = [(s + st - 1) // st for s, st in zip(sizes, strides)]
        begin = []
        for s, k, st, o in zip(sizes, kernel, strides, outs):
            total = max((o - 1) * st + k - s, 0)
            begin.append(total // 2)
    else:
        raise ctx.fail(f"pooling_convention {convention!r} is not supported")
    end = [max((o - 1) * st + k - s - b, 0)
           for o, st, k, s, b in zip(outs, strides, kernel, sizes, begin)]
    # ONNX wants padding smaller than the kernel; MXNet's ``full`` rounding can put a last
    # window wholly in the padding: pad the input explicitly for the excess.
    extra = [max(e - (k - 1), 0) for e, k in zip(end, kernel)]
    end = [e - x for e, x in zip(end, extra)]
    if any(extra):
        fill = float(np.finfo(np.float32).min) if kind == "max" else 0.0
        widths = [0] * (n + 2) + [0, 0] + extra
        x = ctx.op("Pad", x, ctx.ints(widths, "pads"), ctx.scalar(fill, x, "fill"),
                   mode="constant")
    onnx_pads = begin + end
    if kind == "max":
        return [ctx.op("MaxPool", x, kernel_shape=kernel, strides=strides, pads=onnx_pads)]
    if kind == "lp":
        return [ctx.op("LpPool", x, kernel_shape=kernel, strides=strides, pads=onnx_pads,
                       p=p_value)]
    include_pad = a.bool("count_include_pad", True)
    y = ctx.op("AveragePool", x, kernel_shape=kernel, strides=strides, pads=onnx_pads,
               count_include_pad=0)
    factors = [_factor(s, k, p, st, o, xt, kind, include_pad)
               for s, k, p, st, o, xt in zip(sizes, kernel, begin, strides, outs, extra)]
    factor = _outer(factors).astype(np.float32)
    if not np.all(factor == 1.0):
        y = ctx.op("Mul", y, ctx.const(factor, "divisor"))
    return [y]


@mxnet_op("_contrib_AdaptiveAvgPooling2D")
def adaptive_avg_pool(ctx, node, inputs):
    x = ctx.data(inputs[0])
    shape = ctx.shape(x)
    size = node.attrs.ints("output_size", (1,))
    oh, ow = (size[0], size[0]) if len(size) == 1 else size[:2]
    h, w = shape[2], shape[3]
    if (oh, ow) == (1, 1):
        return [ctx.op("GlobalAveragePool", x)]
    if h % oh == 0 and w % ow == 0:
        k = [h // oh, w // ow]
        return [ctx.op("AveragePool", x, kernel_shape=k, strides=k)]
    rows = []
    for i in range(oh):
        h0, h1 = (i * h) // oh, -(-((i + 1) * h) // oh)
        cells = []
        for j in range(ow):
            w0, w1 = (j * w) // ow, -(-((j + 1) * w) // ow)
            part = ctx.op("Slice", x, ctx.ints([h0, w0], "b"), ctx.ints([h1, w1], "e"),
                          ctx.ints([2, 3], "ax"))
            cells.append(ctx.reduce("ReduceMean", part, [2, 3], keepdims=1))
        rows.append(ctx.op("Concat", *cells, axis=3))
    return [ctx.op("Concat", *rows, axis=2)]
