"""Constants, identities, shapes and tensor manipulation: Const, Reshape, Transpose, ConcatV2,
Pack/Unpack, Split(V), (Strided)Slice, Pad, Gather, Tile, Fill, Range, OneHot, TopKV2..."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from modelport.importers.tensorflow import dtypes
from modelport.importers.tensorflow.ops._util import INT64_MAX, axis_of, int64
from modelport.importers.tensorflow.table import tf_op
from modelport.importers.tensorflow.tensors import from_region, lazy_or_array

INT64_MIN = np.iinfo(np.int64).min


@tf_op("Const")
def const(ctx, node, inputs):
    tensor = node.nd.attr["value"].tensor
    source, nd = ctx.source, node.nd
    # A large weight of a memory-mapped GraphDef (a top-level node, not one of the function
    # library's) was parsed without its bytes: they are read from the file.
    region = source.regions.get(nd.name) if source.regions and \
        source.nodes.get(nd.name) is nd else None
    if region is not None:
        try:
            data = from_region(tensor, node.name, source.mapping, region)
        except (ValueError, KeyError) as exc:
            raise ctx.fail(f"cannot read its value: {exc}") from None
        return ctx.b.initializer(node.name, data)
    try:
        data = lazy_or_array(tensor, node.name)
    except (ValueError, KeyError) as exc:
        raise ctx.fail(f"cannot read its value: {exc}") from None
    if isinstance(data, np.ndarray):
        if data.dtype == object:
            raise ctx.fail("string constants are not supported")
        return ctx.b.initializer(node.name, data)
    return ctx.b.initializer(node.name, data)


@tf_op("Placeholder")
def placeholder(ctx, node, inputs):
    raise ctx.fail("is a Placeholder that is not a graph input")


@tf_op("PlaceholderWithDefault")
def placeholder_with_default(ctx, node, inputs):
    return ctx.op("Identity", inputs[0])


@tf_op("Identity", "StopGradient", "Snapshot", "PreventGradient", "CheckNumerics",
       "EnsureShape", "NoOp")
def identity(ctx, node, inputs):
    if not inputs:
        return []
    if not isinstance(inputs[0], ir.Value):
        return inputs[0]  # a TensorList passed along
    return ctx.op("Identity", inputs[0])


@tf_op("IdentityN")
def identity_n(ctx, node, inputs):
    return [ctx.op("Identity", x) if isinstance(x, ir.Value) else x for x in inputs]


@tf_op("Shape", "Size", "Rank", "ShapeN")
def shape(ctx, node, inputs):
    out = dtypes.to_ir(node.type("out_type", dtypes.INT32))
    results = []
    for x in inputs:
        dims = ctx.shape(x)
        if node.op == "Rank":
            if dims is None:
                raise ctx.fail("the rank of its input is unknown")
            results.append(ctx.const(np.asarray(len(dims), dtype=np.int32), "rank"))
            continue
        static = dims is not None and all(isinstance(d, int) for d in dims)
        if node.op == "Size":
            if static:
                results.append(ctx.const(np.asarray(int(np.prod(dims)), dtype=out.numpy())))
            else:
                results.append(ctx.cast(ctx.op("Size", x), out))
            continue
        if static:
            results.append(ctx.const(np.asarray(dims, dtype=out.numpy()), "shape"))
        else:
            results.append(ctx.cast(ctx.op("Shape", x), out))
    return results


@tf_op("Reshape")
def reshape(ctx, node, inputs):
    x, shape = inputs
    arr = ctx.const_array(shape)
    if arr is not None:
        arr = arr.astype(np.int64).reshape(-1)
        zero = bool((arr == 0).any())
        return ctx.op("Reshape", x, ctx.ints(arr), allowzero=1 if zero else None)
    return ctx.op("Reshape", x, int64(ctx, shape))


@tf_op("Transpose")
def transpose(ctx, node, inputs):
    x, perm = inputs
    p = [int(v) for v in np.asarray(ctx.need_const(perm, "perm")).reshape(-1)]
    return ctx.op("Transpose", x, perm=p)


@tf_op("ConcatV2", "Concat")
def concat(ctx, node, inputs):
    if node.op == "Concat":
        axis, values = inputs[0], inputs[1:]
    else:
        values, axis = inputs[:-1], inputs[-1]
    ax = axis_of(ctx, axis)
    if len(values) == 1:
        return ctx.op("Identity", values[0])
    return ctx.op("Concat", *values, axis=ax)


@tf_op("Pack")
def pack(ctx, node, inputs):
    ax = node.i("axis", 0)
    rank = ctx.rank(inputs[0])
    if ax < 0:
        ax += rank + 1
    parts = [ctx.op("Unsqueeze", x, ctx.ints([ax], "axes")) for x in inputs]
    return parts[0] if len(parts) == 1 else ctx.op("Concat", *parts, axis=ax)


@tf_op("Unpack")
def unpack(ctx, node, inputs):
    (x,) = inputs
    num = node.i("num")
    ax = node.i("axis", 0)
    parts = ctx.op("Split", x, axis=ax, outputs=num) if num > 1 else (x,)
    parts = parts if isinstance(parts, tuple) else (parts,)
    return [ctx.op("Squeeze", p, ctx.ints([ax], "axes")) for p in parts]


@tf_op("Split")
def split(ctx, node, inputs):
    axis, x = inputs
    num = node.i("num_split")
    if num == 1:
        return [ctx.op("Identity", x)]
    return list(ctx.op("Split", x, axis=axis_of(ctx, axis), outputs=num))


@tf_op("SplitV")
def split_v(ctx, node, inputs):
    x, sizes, axis = inputs
    ax = axis_of(ctx, axis)
    s = [int(v) for v in ctx.need_const(sizes, "size_splits").reshape(-1)]
    if -1 in s:
        dims = ctx.shape(x)
        total = dims[ax] if dims else None
        if total is None:
            raise ctx.fail("a -1 split size needs the static size of the split axis")
        s[s.index(-1)] = total - (sum(s) + 1)
    if len(s) == 1:
        return [ctx.op("Identity", x)]
    return list(ctx.op("Split", x, ctx.ints(s, "split"), axis=ax, outputs=len(s)))


@tf_op("Squeeze")
def squeeze(ctx, node, inputs):
    (x,) = inputs
    axes = node.ints("squeeze_dims") or node.ints("axis")
    if not axes:
        dims = ctx.shape(x)
        if dims is None or any(d is None for d in dims):
            return ctx.op("Squeeze", x)
        axes = [i for i, d in enumerate(dims) if d == 1]
        if not axes:
            return ctx.op("Identity", x)
    return ctx.op("Squeeze", x, ctx.ints(axes, "axes"))


@tf_op("ExpandDims")
def expand_dims(ctx, node, inputs):
    x, axis = inputs
    return ctx.op("Unsqueeze", x, ctx.ints([axis_of(ctx, axis)], "axes"))


@tf_op("StridedSlice")
def strided_slice(ctx, node, inputs):
    x, begin, end, strides = inputs
    s = [int(v) for v in ctx.need_const(strides, "strides").reshape(-1)]
    b = _entries(ctx, begin, len(s))
    e = _entries(ctx, end, len(s))
    bm, em = node.i("begin_mask", 0), node.i("end_mask", 0)
    ellipsis, new_axis, shrink = (node.i("ellipsis_mask", 0), node.i("new_axis_mask", 0),
                                  node.i("shrink_axis_mask", 0))
    rank = ctx.rank(x)
    n = len(b)
    starts, ends, axes, steps, squeeze, unsqueeze = [], [], [], [], [], []
    d = out = 0
    for i in range(n):
        bit = 1 << i
        if ellipsis & bit:
            after = sum(1 for j in range(i + 1, n) if not new_axis & (1 << j))
            covered = rank - d - after
            d += covered
            out += covered
            continue
        if new_axis & bit:
            unsqueeze.append(out)
            out += 1
            continue
        if d >= rank:
            raise ctx.fail("slices more dimensions than its input has")
        step = s[i]
        if shrink & bit:
            start = b[i]
            starts.append(start)
            if isinstance(start, int):
                ends.append(start + 1 if start != -1 else INT64_MAX)
            else:  # an index computed at run time (x[i] in a loop)
                one = ctx.ints([1], "one")
                ends.append(ctx.op("Where", ctx.op("Equal", start, ctx.ints([-1], "m1")),
                                   ctx.ints([INT64_MAX], "max"), ctx.op("Add", start, one)))
            steps.append(1)
            axes.append(d)
            squeeze.append(d)
        else:
            start = b[i] if not bm & bit else (0 if step > 0 else INT64_MAX)
            stop = e[i] if not em & bit else (INT64_MAX if step > 0 else INT64_MIN)
            if not (isinstance(start, int) and isinstance(stop, int) and start == 0
                    and stop == INT64_MAX and step == 1):
                starts.append(start)
                ends.append(stop)
                steps.append(step)
                axes.append(d)
            out += 1
        d += 1
    y = x
    if axes:
        y = ctx.op("Slice", x, _vector(ctx, starts, "starts"), _vector(ctx, ends, "ends"),
                   ctx.ints(axes, "axes"), ctx.ints(steps, "steps"))
    if squeeze:
        y = ctx.op("Squeeze", y, ctx.ints(squeeze, "squeeze"))
    if unsqueeze:
        y = ctx.op("Unsqueeze", y, ctx.ints(unsqueeze, "unsqueeze"))
    if y is x:
        y = ctx.op("Identity", x)
    return y


def _entries(ctx, value, n: int) -> list:
    """The entries of a begin/end vector: ints where constant, else 1-element int64 values."""
    arr = ctx.const_array(value)
    if arr is not None:
        return [int(v) for v in np.asarray(arr).reshape(-1)]
    v64 = int64(ctx, value)
    return [ctx.op("Slice", v64, ctx.ints([i], "i"), ctx.ints([i + 1], "i1"), ctx.ints([0], "ax"))
            for i in range(n)]


def _vector(ctx, items: list, name: str):
    if all(isinstance(v, int) for v in items):
        return ctx.ints(items, name)
    parts = [ctx.ints([v], name) if isinstance(v, int) else v for v in items]
    return parts[0] if len(parts) == 1 else ctx.op("Concat", *parts, axis=0)


@tf_op("Slice")
def slice_(ctx, node, inputs):
    x, begin, size = inputs
    b = ctx.const_array(begin)
    sz = ctx.const_array(size)
    if b is not None and sz is not None:
        b = [int(v) for v in b.reshape(-1)]
        sz = [int(v) for v in sz.reshape(-1)]
        ends = [INT64_MAX if n == -1 else s + n for s, n in zip(b, sz)]
        return ctx.op("Slice", x, ctx.ints(b, "starts"), ctx.ints(ends, "ends"),
                      ctx.ints(list(range(len(b))), "axes"))
    b64, s64 = int64(ctx, begin), int64(ctx, size)
    big = ctx.const(np.asarray(INT64_MAX, dtype=np.int64), "max")
    ends = ctx.op("Where", ctx.op("Equal", s64, ctx.const(np.asarray(-1, np.int64), "m1")),
                  big, ctx.op("Add", b64, s64))
    return ctx.op("Slice", x, b64, ends)


def _pads(ctx, paddings):
    p = ctx.need_const(paddings, "paddings").astype(np.int64).reshape(-1, 2)
    return ctx.ints(list(p[:, 0]) + list(p[:, 1]), "pads")


@tf_op("Pad", "PadV2")
def pad(ctx, node, inputs):
    x, paddings = inputs[:2]
    value = inputs[2] if len(inputs) > 2 else None
    return ctx.op("Pad", x, _pads(ctx, paddings), value)


@tf_op("MirrorPad")
def mirror_pad(ctx, node, inputs):
    x, paddings = inputs
    mode = node.s("mode", "REFLECT")
    if mode == "REFLECT":
        return ctx.op("Pad", x, _pads(ctx, paddings), mode="reflect")
    # SYMMETRIC (the edge repeated): concatenate reversed slices, one axis at a time.
    p = ctx.need_const(paddings, "paddings").astype(np.int64).reshape(-1, 2)
    y = x
    for axis, (before, after) in enumerate(p):
        parts = []
        if before:  # the first `before` elements, reversed
            parts.append(ctx.op("Slice", y, ctx.ints([int(before) - 1]), ctx.ints([INT64_MIN]),
                                ctx.ints([axis]), ctx.ints([-1])))
        parts.append(y)
        if after:  # the last `after` elements, reversed
            parts.append(ctx.op("Slice", y, ctx.ints([-1]), ctx.ints([-int(after) - 1]),
                                ctx.ints([axis]), ctx.ints([-1])))
        if len(parts) > 1:
            y = ctx.op("Concat", *parts, axis=axis)
    return y


@tf_op("Tile")
def tile(ctx, node, inputs):
    x, multiples = inputs
    return ctx.op("Tile", x, int64(ctx, multiples))


@tf_op("Fill")
def fill(ctx, node, inputs):
    dims, value = inputs
    return ctx.op("Expand", value, int64(ctx, dims))


@tf_op("BroadcastTo")
def broadcast_to(ctx, node, inputs):
    x, shape = inputs
    return ctx.op("Expand", x, int64(ctx, shape))


@tf_op("ZerosLike", "OnesLike")
def zeros_like(ctx, node, inputs):
    (x,) = inputs
    value = ctx.scalar(0 if node.op == "ZerosLike" else 1, x, "value")
    return ctx.op("Expand", value, ctx.op("Shape", x))


@tf_op("GatherV2", "Gather", "ResourceGather")
def gather(ctx, node, inputs):
    params, indices = inputs[:2]
    ax = axis_of(ctx, inputs[2]) if len(inputs) > 2 else 0
    if node.i("batch_dims", 0):
        raise ctx.fail("batch_dims is not supported")
    return ctx.op("Gather", params, indices, axis=ax)


@tf_op("GatherNd")
def gather_nd(ctx, node, inputs):
    params, indices = inputs
    return ctx.op("GatherND", params, int64(ctx, indices))


@tf_op("Range")
def range_(ctx, node, inputs):
    start, limit, delta = inputs
    return ctx.op("Range", start, limit, delta)


@tf_op("OneHot")
def one_hot(ctx, node, inputs):
    indices, depth, on, off = inputs
    values = ctx.op("Concat", ctx.op("Reshape", off, ctx.ints([1])),
                    ctx.op("Reshape", on, ctx.ints([1])), axis=0)
    return ctx.op("OneHot", indices, ctx.op("Reshape", depth, ctx.ints([1], "depth")), values,
                  axis=node.i("axis", -1))


@tf_op("TopKV2")
def top_k(ctx, node, inputs):
    x, k = inputs
    values, indices = ctx.op("TopK", x, ctx.op("Reshape", int64(ctx, k), ctx.ints([1], "k")),
                             axis=-1, largest=1, sorted=1, outputs=2)
    return [values, ctx.cast(indices, dtypes.to_ir(node.type("index_type", dtypes.INT32)))]


@tf_op("Where")
def where(ctx, node, inputs):
    (cond,) = inputs
    if ctx.dtype(cond) != ir.DataType.BOOL:
        cond = ctx.op("Not", ctx.op("Equal", cond, ctx.scalar(0, cond, "zero")))
    return ctx.op("Transpose", ctx.op("NonZero", cond), perm=[1, 0])


@tf_op("ReverseV2")
def reverse_v2(ctx, node, inputs):
    x, axis = inputs
    axes = [int(a) for a in np.asarray(ctx.need_const(axis, "axis")).reshape(-1)]
    if not axes:
        return ctx.op("Identity", x)
    n = len(axes)
    return ctx.op("Slice", x, ctx.ints([-1] * n, "starts"), ctx.ints([INT64_MIN] * n, "ends"),
                  ctx.ints(axes, "axes"), ctx.ints([-1] * n, "steps"))
