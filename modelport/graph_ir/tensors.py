"""Lazy weights.

Importers never copy weights into the IR. They hand onnx_ir a :class:`ir.LazyTensor` whose
function reads the bytes from the source file (an HDF5 dataset, a memory-mapped region, a
protobuf field) when the exporter asks for them, and does not keep them afterwards.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import onnx_ir as ir

from modelport.graph_ir.metadata import OPEN_FILES_META

SMALL_TENSOR_ELEMENTS = 1024


def lazy_tensor(
    read: Callable[[], np.ndarray],
    dtype: np.dtype | ir.DataType,
    shape: Sequence[int],
    *,
    name: str | None = None,
) -> ir.LazyTensor:
    """A tensor whose data comes from ``read()`` on demand (not cached).

    ``read`` must return an array of exactly ``shape``; its dtype is converted if needed.
    """
    ir_dtype = dtype if isinstance(dtype, ir.DataType) else ir.DataType.from_numpy(np.dtype(dtype))
    np_dtype = ir_dtype.numpy()
    shape = tuple(int(d) for d in shape)

    def materialize() -> ir.Tensor:
        array = np.asarray(read())
        if array.dtype != np_dtype:
            array = array.astype(np_dtype)
        if array.shape != shape:
            array = array.reshape(shape)
        return ir.Tensor(contiguous(array), name=name)

    # Small tensors (biases, scales, shape vectors) are looked at by folding and
    # de-duplication as well as the exporter: keep them once read. Large ones never stay.
    small = int(np.prod(shape, dtype=np.int64)) <= SMALL_TENSOR_ELEMENTS
    return ir.LazyTensor(materialize, dtype=ir_dtype, shape=ir.Shape(shape), name=name,
                         cache=small)


_BLOCK = 64
_BLOCKED_MIN_ELEMENTS = 1 << 16


def contiguous(array: np.ndarray, scale: np.ndarray | None = None) -> np.ndarray:
    """``np.ascontiguousarray(array)`` (times ``scale``, if given), faster for large
    transposed views.

    A re-laid-out kernel (Keras ``(kh, kw, in, out)`` read as ONNX ``(out, in, kh, kw)``) is a
    view whose elements are far apart in memory; NumPy copies it element by element in output
    order and misses the cache on nearly every read. Copying 64 x 64 tiles of the first two
    axes keeps both sides of each tile in cache: about twice as fast on ResNet-50's kernels.

    ``scale`` (one factor per index of the first axis: a BatchNormalization folded into a
    kernel) is applied while copying, so that the kernel is written once, not copied and then
    scaled. The result is a new array whenever ``scale`` is given.
    """
    if scale is not None:
        scale = np.asarray(scale, dtype=array.dtype).reshape((-1,) + (1,) * (array.ndim - 1))
    if array.flags.c_contiguous or array.ndim < 2 or array.size < _BLOCKED_MIN_ELEMENTS:
        if scale is not None:
            return np.multiply(array, scale, order="C")
        return np.asarray(array, order="C")  # (ascontiguousarray makes 0-d arrays 1-d)
    out = np.empty(array.shape, array.dtype)
    rows, cols = array.shape[0], array.shape[1]
    for i in range(0, rows, _BLOCK):
        for j in range(0, cols, _BLOCK):
            if scale is None:
                out[i:i + _BLOCK, j:j + _BLOCK] = array[i:i + _BLOCK, j:j + _BLOCK]
            else:
                np.multiply(array[i:i + _BLOCK, j:j + _BLOCK], scale[i:i + _BLOCK],
                            out=out[i:i + _BLOCK, j:j + _BLOCK])
    return out


def tensor(array: np.ndarray, name: str | None = None) -> ir.Tensor:
    return ir.Tensor(np.asarray(array, order="C"), name=name)


def keep_open(model: ir.Model, files: Sequence) -> None:
    """Tie ``files`` (objects with ``close()``) to ``model``: its lazy tensors read them."""
    model.meta[OPEN_FILES_META] = [*model.meta.get(OPEN_FILES_META, []), *files]


def close_sources(model: ir.Model) -> None:
    """Close the source files the model's lazy tensors read (see :func:`keep_open`); the
    model's weights cannot be read afterwards. Safe to call twice."""
    for f in model.meta.get(OPEN_FILES_META, []):
        f.close()
    model.meta[OPEN_FILES_META] = []
