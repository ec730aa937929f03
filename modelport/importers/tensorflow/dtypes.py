"""TensorFlow DataType numbers (a fact of the format) and their NumPy / ONNX equivalents."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import onnx_ir as ir

from modelport.errors import InvalidModelError

FLOAT, DOUBLE, INT32, UINT8, INT16, INT8, STRING = 1, 2, 3, 4, 5, 6, 7
INT64, BOOL, QINT8, QUINT8, QINT32, BFLOAT16, QINT16, QUINT16, UINT16 = range(9, 18)
HALF, RESOURCE, VARIANT, UINT32, UINT64 = 19, 20, 21, 22, 23

NUMPY = {
    FLOAT: np.dtype(np.float32), DOUBLE: np.dtype(np.float64), INT32: np.dtype(np.int32),
    UINT8: np.dtype(np.uint8), INT16: np.dtype(np.int16), INT8: np.dtype(np.int8),
    STRING: np.dtype(object), INT64: np.dtype(np.int64), BOOL: np.dtype(np.bool_),
    QINT8: np.dtype(np.int8), QUINT8: np.dtype(np.uint8), QINT32: np.dtype(np.int32),
    BFLOAT16: np.dtype(ml_dtypes.bfloat16), QINT16: np.dtype(np.int16),
    QUINT16: np.dtype(np.uint16), UINT16: np.dtype(np.uint16), HALF: np.dtype(np.float16),
    UINT32: np.dtype(np.uint32), UINT64: np.dtype(np.uint64),
}

NAMES = {
    FLOAT: "float32", DOUBLE: "float64", INT32: "int32", UINT8: "uint8", INT16: "int16",
    INT8: "int8", STRING: "string", INT64: "int64", BOOL: "bool", QINT8: "qint8",
    QUINT8: "quint8", QINT32: "qint32", BFLOAT16: "bfloat16", QINT16: "qint16",
    QUINT16: "quint16", UINT16: "uint16", HALF: "float16", RESOURCE: "resource",
    VARIANT: "variant", UINT32: "uint32", UINT64: "uint64", DOUBLE + 6: "complex64",
}


def base(dtype: int) -> int:
    """The dtype without its ``_REF`` flag (TF 1 variables' reference types are +100)."""
    return dtype - 100 if dtype > 100 else dtype


def to_numpy(dtype: int) -> np.dtype:
    try:
        return NUMPY[base(dtype)]
    except KeyError:
        # The dtype comes from the file: one this importer cannot hold is the input's problem
        # (load() adds the file's path).
        raise InvalidModelError(f"TensorFlow dtype {NAMES.get(base(dtype), base(dtype))} is "
                                "not supported") from None


def to_ir(dtype: int) -> ir.DataType:
    np_dtype = to_numpy(dtype)
    if np_dtype == np.dtype(object):
        return ir.DataType.STRING
    return ir.DataType.from_numpy(np_dtype)


def name(dtype: int) -> str:
    return NAMES.get(base(dtype), f"dtype {dtype}")
