"""Layout helpers: permutations between channels-last (NHWC) and channels-first (NCHW)."""

from __future__ import annotations


def to_channels_first(rank: int) -> list[int]:
    """Permutation that turns N,spatial...,C into N,C,spatial..."""
    return [0, rank - 1, *range(1, rank - 1)]


def to_channels_last(rank: int) -> list[int]:
    """Permutation that turns N,C,spatial... into N,spatial...,C"""
    return [0, *range(2, rank), 1]


def invert(perm: list[int]) -> list[int]:
    inv = [0] * len(perm)
    for i, p in enumerate(perm):
        inv[p] = i
    return inv


def compose(first: list[int], second: list[int]) -> list[int]:
    """The permutation equal to applying ``first`` then ``second`` (ONNX Transpose semantics)."""
    return [first[p] for p in second]
