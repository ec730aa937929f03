"""Shape and padding modules: View, Reshape (with Torch's batch-size rules), Padding,
SpatialZeroPadding (negative pads crop), SpatialReflectionPadding, SpatialUpSamplingNearest."""

from __future__ import annotations

import numpy as np

from modelport.importers.torch7.modules._util import batched
from modelport.importers.torch7.table import torch7_module


def _resolve(m, total: int, dims: list[int]) -> list[int]:
    known = int(np.prod([d for d in dims if d >= 0], dtype=np.int64))
    if -1 in dims:
        if known == 0 or total % known:
            raise m.fail(f"cannot view {total} elements as {dims}")
        dims = [total // known if d == -1 else d for d in dims]
    if int(np.prod(dims, dtype=np.int64)) != total:
        raise m.fail(f"cannot view {total} elements as {dims}")
    return dims


@torch7_module("nn.View")
def view(ctx, m, x):
    x = ctx.tensor_input(x)
    shape = list(ctx.shape(x))
    size = m.ints("size")
    num_input_dims = m.int("numInputDims", None)
    num_elements = int(np.prod([d for d in size if d >= 0], dtype=np.int64))
    rank = len(shape)
    maxdim = num_input_dims if num_input_dims else rank
    inner = int(np.prod(shape[rank - maxdim:], dtype=np.int64))
    if num_elements == 0 or inner % num_elements:
        raise m.fail(f"cannot view an input of shape {shape} as {size}")
    batch = 1 if -1 in size else inner // num_elements
    for d in shape[:rank - maxdim]:
        batch *= d
    total = int(np.prod(shape, dtype=np.int64))
    if batch == 1 and (not num_input_dims or rank <= num_input_dims):
        dims = _resolve(m, total, list(size))
    else:
        dims = _resolve(m, total, [batch, *size])
    return ctx.reshape(x, dims)


@torch7_module("nn.Reshape")
def reshape(ctx, m, x):
    x = ctx.tensor_input(x)
    shape = list(ctx.shape(x))
    size = m.ints("size")
    nelement = int(np.prod(size, dtype=np.int64))
    total = int(np.prod(shape, dtype=np.int64))
    batch_mode = m.field("batchMode", None)
    if batch_mode is False or (batch_mode is None and total == nelement and shape[0] != 1):
        dims = list(size)
    else:
        dims = [shape[0], *size]
    if int(np.prod(dims, dtype=np.int64)) != total:
        raise m.fail(f"cannot reshape an input of shape {shape} to {dims}")
    return ctx.reshape(x, dims)


def _pad(ctx, x, before, after, mode="constant", value=0.0):
    shape = ctx.shape(x)
    out = [s + b + a for s, b, a in zip(shape, before, after)]
    args = [x, ctx.ints(list(before) + list(after), "pads")]
    if mode == "constant" and value != 0.0:
        args.append(ctx.const(value, "value"))
    return ctx.op("Pad", *args, mode=mode, shape=out)


@torch7_module("nn.Padding")
def padding(ctx, m, x):
    x = ctx.tensor_input(x)
    shape = list(ctx.shape(x))
    rank = len(shape)
    dim = m.int("dim")
    pad = m.int("pad")
    n_input_dim = m.int("nInputDim", None)
    if n_input_dim is not None and rank != n_input_dim:
        dim += 1
    if not 1 <= dim <= rank:
        raise m.fail(f"pads dimension {dim} of a rank-{rank} input")
    axis = dim - 1
    value = m.num("value", 0.0)
    index = m.int("index", 1)
    size = shape[axis]
    amount = abs(pad)
    if pad > 0:
        index = size - index + 2
    if index == 1 or index == size + 1:
        before = [0] * rank
        after = [0] * rank
        (before if index == 1 else after)[axis] = amount
        return _pad(ctx, x, before, after, value=value)
    if not 1 < index <= size:
        raise m.fail(f"index {m.int('index', 1)} is outside dimension {dim} of size {size}")
    # Padding inserted inside the dimension: first part, the pad, the rest.
    cut = index - 1
    first_shape = list(shape)
    first_shape[axis] = cut
    rest_shape = list(shape)
    rest_shape[axis] = size - cut
    first = ctx.op("Slice", x, ctx.ints([0], "start"), ctx.ints([cut], "end"),
                   ctx.ints([axis], "axes"), shape=first_shape)
    rest = ctx.op("Slice", x, ctx.ints([cut], "start2"), ctx.ints([size], "end2"),
                  ctx.ints([axis], "axes2"), shape=rest_shape)
    pad_shape = list(shape)
    pad_shape[axis] = amount
    filler = ctx.const(np.full(pad_shape, value), "fill")
    out = list(shape)
    out[axis] = size + amount
    return ctx.op("Concat", first, filler, rest, axis=axis, shape=out)


def _spatial_pads(m):
    return m.int("pad_l", 0), m.int("pad_r", 0), m.int("pad_t", 0), m.int("pad_b", 0)


@torch7_module("nn.SpatialZeroPadding")
def spatial_zero_padding(ctx, m, x):
    x, undo = batched(ctx, x)
    left, right, top, bottom = _spatial_pads(m)
    n, c, h, w = ctx.shape(x)
    pos = [max(v, 0) for v in (top, left, bottom, right)]
    if any(pos):
        x = _pad(ctx, x, [0, 0, pos[0], pos[1]], [0, 0, pos[2], pos[3]])
    if min(top, left, bottom, right) < 0:  # negative pads crop
        _, _, h2, w2 = ctx.shape(x)
        starts = [-min(top, 0), -min(left, 0)]
        ends = [h2 + min(bottom, 0), w2 + min(right, 0)]
        if ends[0] <= starts[0] or ends[1] <= starts[1]:
            raise m.fail(f"crops a {h}x{w} input to nothing")
        x = ctx.op("Slice", x, ctx.ints(starts, "crop_start"), ctx.ints(ends, "crop_end"),
                   ctx.ints([2, 3], "crop_axes"),
                   shape=[n, c, ends[0] - starts[0], ends[1] - starts[1]])
    return undo(x)


@torch7_module("nn.SpatialReflectionPadding", "nn.SpatialReplicationPadding")
def spatial_reflection_padding(ctx, m, x):
    x, undo = batched(ctx, x)
    left, right, top, bottom = _spatial_pads(m)
    if min(left, right, top, bottom) < 0:
        raise m.fail("negative padding is not supported")
    _, _, h, w = ctx.shape(x)
    mode = "reflect" if m.type == "nn.SpatialReflectionPadding" else "edge"
    if mode == "reflect" and (max(top, bottom) >= h or max(left, right) >= w):
        raise m.fail(f"reflection padding must be smaller than the {h}x{w} input")
    return undo(_pad(ctx, x, [0, 0, top, left], [0, 0, bottom, right], mode=mode))


@torch7_module("nn.SpatialUpSamplingNearest")
def spatial_upsampling_nearest(ctx, m, x):
    x, undo = batched(ctx, x)
    s = m.int("scale_factor")
    n, c, h, w = ctx.shape(x)
    empty = ctx.const(np.zeros(0), "roi")
    y = ctx.op("Resize", x, empty, ctx.const([1.0, 1.0, float(s), float(s)], "scales"),
               mode="nearest", coordinate_transformation_mode="asymmetric",
               nearest_mode="floor", shape=[n, c, h * s, w * s])
    return undo(y)
