"""Small helpers shared by the MXNet translators."""

from __future__ import annotations

from collections.abc import Sequence

from modelport.importers.mxnet.symbol import BadNodeError


def spatial(values: Sequence[int], n: int, default: int) -> list[int]:
    """An MXNet spatial tuple (``kernel``, ``stride``...) for ``n`` dims; empty means default."""
    values = list(values)
    if not values:
        return [default] * n
    if len(values) == 1 and n > 1:
        return values * n
    if len(values) != n:
        raise BadNodeError(f"expected {n} values, got {values}")
    return values


def norm_axis(axis: int, rank: int) -> int:
    a = axis + rank if axis < 0 else axis
    if not 0 <= a < rank:
        raise BadNodeError(f"axis {axis} is out of range for rank {rank}")
    return a


def axes_param(node, rank: int, key: str = "axis") -> list[int] | None:
    """A reduction's ``axis`` (None: all), honouring ``exclude``."""
    if key not in node.attrs or node.attrs.ints(key) == ():
        axes = None
    else:
        axes = sorted({norm_axis(a, rank) for a in node.attrs.ints(key)})
    if node.attrs.bool("exclude", False):
        chosen = set(axes or [])
        axes = [a for a in range(rank) if a not in chosen]
    return axes
