"""Helpers shared by the translators."""

from __future__ import annotations


def batched(ctx, x, rank: int = 4):
    """(x with a batch axis, undo): Torch's spatial modules also take one C x H x W image."""
    x = ctx.tensor_input(x)
    shape = ctx.shape(x)
    if len(shape) == rank:
        return x, lambda y: y
    if len(shape) == rank - 1:
        y = ctx.op("Unsqueeze", x, ctx.ints([0], "axes"), shape=[1, *shape])

        def undo(value):
            s = ctx.shape(value)
            return ctx.op("Squeeze", value, ctx.ints([0], "axes"), shape=list(s[1:]))

        return y, undo
    raise ctx.module.fail(f"needs a {rank - 1}-D or {rank}-D input, got shape {list(shape)}")


def channel_shape(rank: int, c: int) -> list[int]:
    """Broadcast shape of a per-channel vector for an input of ``rank`` (channels on axis 1)."""
    return [c] + [1] * (rank - 2) if rank >= 2 else [c]
