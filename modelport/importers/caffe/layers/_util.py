"""Helpers shared by the translators: Caffe's kernel/pad/stride conventions and axes."""

from __future__ import annotations


def axis(a: int, rank: int) -> int:
    return a + rank if a < 0 else a


def spatial(param, name: str, default: int, count: int = 2) -> list[int]:
    """``kernel_size``/``pad``/``stride``/``dilation`` (repeated) or their ``_h``/``_w`` forms."""
    h, w = f"{name}_h", f"{name}_w"
    if name == "kernel":
        h, w, name = "kernel_h", "kernel_w", "kernel_size"
    if h in param.DESCRIPTOR.fields_by_name and (param.HasField(h) or param.HasField(w)):
        return [int(getattr(param, h)), int(getattr(param, w))]
    field = param.DESCRIPTOR.fields_by_name.get(name)
    if field is None:
        return [default] * count
    values = list(getattr(param, name)) if field.is_repeated else (
        [getattr(param, name)] if param.HasField(name) else [])
    if not values:
        return [default] * count
    if len(values) == 1:
        return [int(values[0])] * count
    return [int(v) for v in values]


def broadcast_shape(shape, rank: int, at: int) -> list[int]:
    """``shape`` placed at axis ``at`` of a rank-``rank`` tensor, padded with trailing 1s."""
    return list(shape) + [1] * (rank - at - len(shape))
