"""MXNet ``.params`` files (the NDArray-list format of ``mx.nd.save``), read lazily.

Layout, all little-endian: ``uint64 0x112`` (the list magic), ``uint64 0``, ``uint64 count``,
then ``count`` arrays, then ``uint64 count`` names, each ``uint64 length`` + UTF-8 bytes.
Each array starts with a ``uint32``: the V2 (``0xF993FAC9``, storage type follows) or V3
(``0xF993FACA``, NumPy shape semantics) magic, the V1 magic (``0xF993FAC8``, int64 shape) or,
in files from before the magics (MXNet < 0.9), the number of dimensions itself, followed by
``uint32`` dims. V1-V3 shapes are ``int32 ndim`` + ``int64`` dims. Then the context
(``int32 dev_type, int32 dev_id``), ``int32 dtype`` (mshadow's type flag) and the raw data.

The file is walked once to record where each array's data lies (skipping the data); a weight
is read from its own mapping of that region when the exporter asks for it.
"""

from __future__ import annotations

import dataclasses
import mmap
import os
import struct
from collections.abc import Callable

import numpy as np

from modelport.errors import InvalidModelError

LIST_MAGIC = 0x112
V1_MAGIC = 0xF993FAC8
V2_MAGIC = 0xF993FAC9
V3_MAGIC = 0xF993FACA

# mshadow TypeFlag -> NumPy dtype (12 is bfloat16, read as its uint16 bit pattern).
DTYPES: dict[int, np.dtype] = {
    0: np.dtype("<f4"), 1: np.dtype("<f8"), 2: np.dtype("<f2"), 3: np.dtype("u1"),
    4: np.dtype("<i4"), 5: np.dtype("i1"), 6: np.dtype("<i8"), 7: np.dtype("?"),
    8: np.dtype("<i2"), 9: np.dtype("<u2"), 10: np.dtype("<u4"), 11: np.dtype("<u8"),
    12: np.dtype("<u2"),
}
BFLOAT16 = 12
_STORAGE = {0: "dense", 1: "row_sparse", 2: "csr"}


@dataclasses.dataclass
class ArrayRef:
    name: str
    shape: tuple[int, ...]
    dtype: np.dtype
    type_flag: int
    offset: int

    @property
    def size(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n

    @property
    def nbytes(self) -> int:
        return self.size * self.dtype.itemsize


def is_params_file(head: bytes) -> bool:
    """The NDArray-list header: magic 0x112, a zero reserved word, then an array magic."""
    if len(head) < 28:
        return False
    magic, reserved, count = struct.unpack_from("<QQQ", head, 0)
    if magic != LIST_MAGIC or reserved != 0 or count > 1 << 32:
        return False
    if count == 0:
        return True
    first = struct.unpack_from("<I", head, 24)[0]
    return first in (V1_MAGIC, V2_MAGIC, V3_MAGIC) or first <= 32


class ParamsFile:
    """An index of a ``.params`` file: name -> where its array's bytes lie."""

    def __init__(self, path: str) -> None:
        self.path = path
        try:
            self._file = open(path, "rb")  # noqa: SIM115 - kept open while weights are read
        except OSError as exc:
            raise InvalidModelError(f"cannot read: {exc.strerror or exc}", path=path) from None
        self.size = os.fstat(self._file.fileno()).st_size
        if self.size == 0:
            raise InvalidModelError("params file is empty", path=path)
        buf = mmap.mmap(self._file.fileno(), 0, access=mmap.ACCESS_READ)
        try:
            self.arrays = self._index(buf)
        except (struct.error, ValueError) as exc:
            raise InvalidModelError(
                f"is not a valid MXNet .params file (truncated or corrupt?): {exc}", path=path
            ) from None
        finally:
            buf.close()
        self.by_name: dict[str, ArrayRef] = {}
        for ref in self.arrays:
            self.by_name[ref.name] = ref

    def close(self) -> None:
        self._file.close()

    def lookup(self, name: str, kind: str | None = None) -> ArrayRef | None:
        """The array saved for symbol argument ``name`` (``arg:``/``aux:`` prefixed or bare)."""
        prefixes = ("arg:", "aux:", "") if kind is None else (f"{kind}:", "")
        for prefix in prefixes:
            ref = self.by_name.get(prefix + name)
            if ref is not None:
                return ref
        return None

    def reader(self, ref: ArrayRef) -> Callable[[], np.ndarray]:
        offset, count, dtype, shape = ref.offset, ref.size, ref.dtype, ref.shape
        bf16 = ref.type_flag == BFLOAT16
        start = offset - offset % mmap.ALLOCATIONGRANULARITY
        length = offset - start + count * dtype.itemsize
        file = self._file

        def read() -> np.ndarray:
            if count == 0:
                arr = np.zeros(shape, dtype=dtype)
            else:
                region = mmap.mmap(file.fileno(), length, access=mmap.ACCESS_READ, offset=start)
                arr = np.frombuffer(region, dtype=dtype, count=count,
                                    offset=offset - start).reshape(shape)
            if bf16:  # widen the bit pattern to float32
                arr = (arr.astype(np.uint32) << 16).view(np.float32)
            return arr

        return read

    # -- the walk --------------------------------------------------------------------------
    def _index(self, buf) -> list[ArrayRef]:
        end = len(buf)
        pos = 0

        def take(fmt: str):
            nonlocal pos
            size = struct.calcsize(fmt)
            if pos + size > end:
                raise ValueError(f"the file ends at byte {end} inside a header")
            values = struct.unpack_from(fmt, buf, pos)
            pos += size
            return values if len(values) > 1 else values[0]

        magic, _reserved = take("<QQ")
        if magic != LIST_MAGIC:
            raise ValueError(f"list magic is {magic:#x}, expected {LIST_MAGIC:#x}")
        count = take("<Q")
        if count > end:
            raise ValueError(f"declares {count} arrays")
        arrays: list[tuple[tuple[int, ...], np.dtype, int, int]] = []
        for i in range(count):
            first = take("<I")
            if first in (V2_MAGIC, V3_MAGIC):
                stype = take("<i")
                if stype != 0:
                    raise ValueError(f"array {i} has {_STORAGE.get(stype, stype)} storage; "
                                     "only dense arrays are supported")
                shape = self._shape64(take)
            elif first == V1_MAGIC:
                shape = self._shape64(take)
            else:  # pre-0.9 file: the first word is ndim, then uint32 dims
                if first > 32:
                    raise ValueError(f"array {i} starts with {first:#x}, not an NDArray magic")
                shape = tuple(take("<" + "I" * first)) if first > 1 else (
                    (take("<I"),) if first == 1 else ())
            if first == V3_MAGIC and shape is None or first != V3_MAGIC and not shape:
                arrays.append(((), np.dtype("<f4"), -1, -1))  # a "none" array: no data follows
                continue
            _dev_type, _dev_id, flag = take("<iii")
            if flag not in DTYPES:
                raise ValueError(f"array {i} has unknown dtype flag {flag}")
            dtype = DTYPES[flag]
            n = 1
            for d in shape:
                n *= d
            nbytes = n * dtype.itemsize
            if pos + nbytes > end:
                raise ValueError(f"array {i} of shape {list(shape)} ({nbytes} bytes) runs past "
                                 f"the end of the file")
            arrays.append((shape, dtype, flag, pos))
            pos += nbytes
        name_count = take("<Q")
        if name_count not in (0, count):
            raise ValueError(f"{count} arrays but {name_count} names")
        names = []
        for _ in range(name_count):
            length = take("<Q")
            if pos + length > end:
                raise ValueError("a name runs past the end of the file")
            names.append(bytes(buf[pos:pos + length]).decode("utf-8", "replace"))
            pos += length
        if not names:
            names = [str(i) for i in range(count)]
        return [ArrayRef(name, shape, dtype, flag, off)
                for name, (shape, dtype, flag, off) in zip(names, arrays) if off >= 0]

    @staticmethod
    def _shape64(take) -> tuple[int, ...] | None:
        ndim = take("<i")
        if ndim < 0:
            return None  # unknown shape (V3 "none")
        if ndim > 32:
            raise ValueError(f"an array has {ndim} dimensions")
        if ndim == 0:
            return ()
        dims = take("<" + "q" * ndim)
        dims = (dims,) if ndim == 1 else tuple(dims)
        if any(d < 0 for d in dims):
            raise ValueError(f"an array has negative dims {list(dims)}")
        return tuple(int(d) for d in dims)
