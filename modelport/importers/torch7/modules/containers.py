"""Containers: Sequential, Concat, DepthConcat, ConcatTable, ParallelTable, and the table
modules JoinTable, CAddTable (and Identity, which passes tensors and tables through)."""

from __future__ import annotations

from modelport.importers.torch7.table import torch7_module


@torch7_module("nn.Sequential", "nn.Inception")
def sequential(ctx, m, x):
    for child in m.children():
        x = ctx.run(child, x)
    return x


def _axis(ctx, m, rank: int, key: str = "dimension") -> int:
    dim = m.int(key)
    n_input_dims = m.int("nInputDims", None)
    if dim < 0:
        dim = rank + dim + 1
    elif n_input_dims is not None and rank == n_input_dims + 1:
        dim += 1  # a batch dimension in front
    if not 1 <= dim <= rank:
        raise m.fail(f"dimension {m.int(key)} does not exist in a rank-{rank} input")
    return dim - 1


def concat(ctx, values, axis: int):
    shapes = [ctx.shape(v) for v in values]
    out = list(shapes[0])
    for s in shapes[1:]:
        if len(s) != len(out) or any(a != b for i, (a, b) in enumerate(zip(s, out)) if i != axis):
            raise ctx.module.fail(f"cannot join shapes {[list(t) for t in shapes]} on axis "
                                  f"{axis + 1}")
    out[axis] = sum(s[axis] for s in shapes)
    if len(values) == 1:
        return values[0]
    return ctx.op("Concat", *values, axis=axis, shape=out)


@torch7_module("nn.Concat")
def concat_container(ctx, m, x):
    outs = [ctx.tensor_input(ctx.run(child, x)) for child in m.children()]
    if not outs:
        raise m.fail("has no modules")
    return concat(ctx, outs, m.int("dimension") - 1)


@torch7_module("nn.DepthConcat")
def depth_concat(ctx, m, x):
    """Concat that centres smaller outputs in zeros: offset floor((max - size) / 2)."""
    outs = [ctx.tensor_input(ctx.run(child, x)) for child in m.children()]
    if not outs:
        raise m.fail("has no modules")
    axis = m.int("dimension") - 1
    shapes = [ctx.shape(v) for v in outs]
    rank = len(shapes[0])
    target = [max(s[i] for s in shapes) for i in range(rank)]
    padded = []
    for v, s in zip(outs, shapes):
        before = [0 if i == axis else (target[i] - s[i]) // 2 for i in range(rank)]
        after = [0 if i == axis else target[i] - s[i] - before[i] for i in range(rank)]
        if any(before) or any(after):
            shape = [s[i] if i == axis else target[i] for i in range(rank)]
            v = ctx.op("Pad", v, ctx.ints(before + after, "pads"), mode="constant", shape=shape)
        padded.append(v)
    return concat(ctx, padded, axis)


@torch7_module("nn.ConcatTable")
def concat_table(ctx, m, x):
    return [ctx.run(child, x) for child in m.children()]


@torch7_module("nn.ParallelTable")
def parallel_table(ctx, m, x):
    xs = ctx.values(x)
    children = m.children()
    if len(xs) < len(children):
        raise m.fail(f"has {len(children)} modules for a table of {len(xs)} inputs")
    return [ctx.run(child, xi) for child, xi in zip(children, xs)]


@torch7_module("nn.JoinTable")
def join_table(ctx, m, x):
    xs = ctx.values(x)
    if not xs:
        raise m.fail("joins an empty table")
    axis = _axis(ctx, m, len(ctx.shape(xs[0])))
    return concat(ctx, xs, axis)


@torch7_module("nn.CAddTable")
def cadd_table(ctx, m, x):
    xs = ctx.values(x)
    shape = ctx.shape(xs[0])
    if any(ctx.shape(v) != shape for v in xs[1:]):
        raise m.fail(f"adds tensors of different shapes {[list(ctx.shape(v)) for v in xs]}")
    if len(xs) == 1:
        return xs[0]
    if len(xs) == 2:
        return ctx.op("Add", xs[0], xs[1], shape=shape)
    return ctx.op("Sum", *xs, shape=shape)


@torch7_module("nn.Identity", "nn.TotalVariation")
def identity(ctx, m, x):
    return x
