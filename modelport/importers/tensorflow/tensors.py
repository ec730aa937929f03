"""TensorProto values: the packed ``tensor_content`` encoding and the repeated-value fields.

A TensorProto holds its values either packed (``tensor_content``: the raw little-endian
bytes) or in the typed repeated field of its dtype (``float_val``, ``int_val``, ``half_val``
...), where fewer values than elements means "repeat the last one" (a splat). Large weights are
wrapped in lazy tensors that decode the message's bytes when the exporter asks for them.
"""

from __future__ import annotations

import math

import numpy as np

from modelport.graph_ir import lazy_tensor
from modelport.importers.tensorflow import dtypes

_SMALL = 1024


def shape_of(shape_proto) -> list[int] | None:
    """A TensorShapeProto as a list (-1 for unknown dims), or None for an unknown rank."""
    if shape_proto.unknown_rank:
        return None
    return [int(d.size) for d in shape_proto.dim]


def _repeated(t, np_dtype: np.dtype):
    dt = dtypes.base(t.dtype)
    if dt in (dtypes.HALF, dtypes.BFLOAT16):
        # 16-bit floats are stored as their bit patterns in the int32 half_val field.
        return np.asarray(t.half_val, dtype=np.uint16).view(np_dtype)
    if dt == dtypes.FLOAT:
        return np.asarray(t.float_val, dtype=np_dtype)
    if dt == dtypes.DOUBLE:
        return np.asarray(t.double_val, dtype=np_dtype)
    if dt in (dtypes.INT64,):
        return np.asarray(t.int64_val, dtype=np_dtype)
    if dt == dtypes.BOOL:
        return np.asarray(t.bool_val, dtype=np_dtype)
    if dt == dtypes.STRING:
        return np.asarray(list(t.string_val), dtype=object)
    if dt == dtypes.UINT32:
        return np.asarray(t.uint32_val, dtype=np_dtype)
    if dt == dtypes.UINT64:
        return np.asarray(t.uint64_val, dtype=np_dtype)
    # int32, int16, int8, uint8, uint16, the quantized types: int_val
    return np.asarray(t.int_val, dtype=np.int64).astype(np_dtype)


# A constant that stores fewer values than its shape holds is filled with its last value (or
# zeros); expanding past this many bytes is refused rather than allocated.
MAX_FILL_BYTES = 1 << 30


def checked_shape(t) -> tuple[np.dtype, list[int], int]:
    """(dtype, shape, element count) of a TensorProto, after checking what it declares against
    what it stores, before anything is allocated (ValueError if they disagree)."""
    np_dtype = dtypes.to_numpy(t.dtype)
    shape = shape_of(t.tensor_shape) or []
    if any(d < 0 for d in shape):
        raise ValueError(f"a constant has an unknown dimension in its shape {shape}")
    count = math.prod(shape)  # Python ints: no overflow
    if t.tensor_content:
        if np_dtype == np.dtype(object):
            raise ValueError("packed string tensors are not supported")
        if len(t.tensor_content) != count * np_dtype.itemsize:
            raise ValueError(f"tensor_content holds {len(t.tensor_content)} bytes for shape "
                             f"{shape} of {np_dtype} ({count * np_dtype.itemsize} bytes)")
    elif count * max(np_dtype.itemsize, 8) > MAX_FILL_BYTES:
        stored = len(_repeated(t, np_dtype))
        if stored != count:
            raise ValueError(f"declares shape {shape} ({count} elements) but stores {stored} "
                             "values; filling the rest would take more than 1 GiB")
    return np_dtype, shape, count


def to_array(t) -> np.ndarray:
    """Decode a TensorProto into a NumPy array (ValueError if malformed)."""
    np_dtype, shape, count = checked_shape(t)
    if t.tensor_content:
        data = np.frombuffer(t.tensor_content, dtype=np_dtype.newbyteorder("<"))
        return data.astype(np_dtype, copy=False).reshape(shape)
    values = _repeated(t, np_dtype)
    if values.size == count:
        return values.reshape(shape)
    if values.size == 0:
        return np.zeros(shape, dtype=np_dtype) if np_dtype != np.dtype(object) else \
            np.full(shape, b"", dtype=object)
    if values.size > count:
        raise ValueError(f"holds {values.size} values for shape {shape}")
    # Fewer values than elements: the last one is repeated.
    out = np.empty(count, dtype=np_dtype)
    out[: values.size] = values
    out[values.size:] = values[-1]
    return out.reshape(shape)


def element_count(t) -> int:
    shape = shape_of(t.tensor_shape) or []
    return math.prod(shape)


def from_region(t, name: str, mapping, region: tuple[int, int]):
    """The value of a Const whose ``tensor_content`` was left out of the parsed message and
    lies at ``region`` of the memory-mapped file (see :mod:`.regions`): decoded now if small,
    else a lazy tensor viewing those bytes when read (no copy until it is re-laid-out or
    written). The same checks as for a parsed constant (ValueError)."""
    np_dtype = dtypes.to_numpy(t.dtype)
    if np_dtype == np.dtype(object):
        raise ValueError("packed string tensors are not supported")
    shape = shape_of(t.tensor_shape) or []
    if any(d < 0 for d in shape):
        raise ValueError(f"a constant has an unknown dimension in its shape {shape}")
    count = math.prod(shape)
    start, end = region
    if end - start != count * np_dtype.itemsize:
        raise ValueError(f"tensor_content holds {end - start} bytes for shape "
                         f"{shape} of {np_dtype} ({count * np_dtype.itemsize} bytes)")
    mm = mapping.mm

    def read(mm=mm, dtype=np_dtype, count=count, start=start, shape=shape):
        data = np.frombuffer(mm, dtype=dtype.newbyteorder("<"), count=count, offset=start)
        return data.astype(dtype, copy=False).reshape(shape)

    if count <= _SMALL:
        return np.array(read())  # a copy: the mapping is closed after the conversion
    return lazy_tensor(read, dtypes.to_ir(t.dtype), shape, name=name)


def lazy_or_array(t, name: str):
    """A small TensorProto decoded now, a large one as a lazy tensor reading it on demand
    (its declared size checked now, so that reading it later cannot fail)."""
    _, shape, count = checked_shape(t)
    if count <= _SMALL or dtypes.base(t.dtype) == dtypes.STRING:
        return to_array(t)
    return lazy_tensor(lambda: to_array(t), dtypes.to_ir(t.dtype), shape, name=name)
