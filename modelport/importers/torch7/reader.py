"""A native, safe reader of Torch7's serialization (``torch.save`` / ``File.lua``).

The format is a tree of typed objects. Each object starts with a type tag (an ``int``):

====  ==========================================================================================
0     nil
1     number (a ``double``)
2     string (``int`` length, then the bytes)
3     table (``int`` object index, then ``int`` pair count and that many key/value objects)
4     Torch object (``int`` index, a version string ``"V <n>"`` (absent in files older than
      the versioning), the class name, then the class's own payload: tensors and storages
      have a binary layout, everything else (``nn`` modules) writes its fields as a table)
5     boolean (an ``int``, 1 = true)
6     function (``int`` length, Lua bytecode, then its upvalues as an object), no index
7, 8  function with an index (legacy and current "recursive" forms)
====  ==========================================================================================

Tables, Torch objects and indexed functions carry an object index: the first occurrence holds
the object, later ones only the index (a back-reference). A tensor is ``int`` nDimension,
``long`` sizes, ``long`` strides, ``long`` 1-based storage offset and its storage (an object,
usually shared); a storage is a ``long`` element count and the raw elements. ``long`` is 8 bytes
in files written on 64-bit Linux/macOS and 4 bytes on Windows (or with ``file:longSize(4)``):
both are read, the size found by trying 8 first and 4 when 8 does not read the whole file.
The ASCII variant (``torch.save(f, obj, 'ascii')``) writes numbers as text, each group of
values followed by a newline, and strings and byte storages raw.

Nothing here runs Lua: a function is kept as a :class:`LuaFunction` placeholder (its bytecode
skipped), and the importer refuses a model that needs one. Every declared size is checked
against what is left of the file before anything is allocated, and storages are not read:
a :class:`Storage` records where its elements lie and reads them when asked.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import re
import struct
import sys
from collections.abc import Iterator
from typing import Any

import numpy as np

from modelport.errors import InvalidModelError

TYPE_NIL, TYPE_NUMBER, TYPE_STRING, TYPE_TABLE, TYPE_TORCH, TYPE_BOOLEAN = range(6)
TYPE_FUNCTION, TYPE_LEGACY_RECUR_FUNCTION, TYPE_RECUR_FUNCTION = 6, 7, 8

# Element types of torch.<X>Storage / torch.<X>Tensor (CUDA types are stored as their CPU
# counterparts: torch.CudaTensor is float32).
_ELEMENT = {
    "Float": np.float32, "Double": np.float64, "Half": np.float16, "Byte": np.uint8,
    "Char": np.int8, "Short": np.int16, "Int": np.int32, "Long": np.int64,
    "Cuda": np.float32, "CudaDouble": np.float64, "CudaHalf": np.float16,
    "CudaByte": np.uint8, "CudaChar": np.int8, "CudaShort": np.int16, "CudaInt": np.int32,
    "CudaLong": np.int64,
}
_CLASS = re.compile(r"^torch\.(\w+?)(Storage|Tensor)$")
MAX_DIMS = 64


class FormatError(ValueError):
    """The bytes do not follow the format (reported with the file name by :func:`load`)."""


class LuaTable:
    """A Lua table: ``items`` maps keys (str, int, float, bool or another object) to values."""

    __slots__ = ("items",)

    def __init__(self) -> None:
        self.items: dict[Any, Any] = {}

    def get(self, key: Any, default: Any = None) -> Any:
        return self.items.get(key, default)

    def array(self) -> list[Any]:
        """The values at keys 1, 2, ... up to the first missing one (Lua's ``ipairs``)."""
        out = []
        i = 1
        while i in self.items:
            out.append(self.items[i])
            i += 1
        return out

    def __repr__(self) -> str:
        return f"LuaTable({len(self.items)} items)"


class LuaFunction:
    """A Lua function stored in the file: its bytecode is skipped and never run."""

    __slots__ = ("nbytes", "upvalues")

    def __init__(self, nbytes: int) -> None:
        self.nbytes = nbytes
        self.upvalues: Any = None

    def __repr__(self) -> str:
        return f"LuaFunction({self.nbytes} bytes of bytecode)"


class TorchObject:
    """A Torch class instance other than a tensor or storage (an ``nn`` module, a graph node)."""

    __slots__ = ("class_name", "version", "fields")

    def __init__(self, class_name: str, version: int) -> None:
        self.class_name = class_name
        self.version = version
        self.fields: Any = None

    def get(self, key: str, default: Any = None) -> Any:
        if isinstance(self.fields, LuaTable):
            return self.fields.get(key, default)
        return default

    def __repr__(self) -> str:
        return f"TorchObject({self.class_name})"


class Storage:
    """A torch.<X>Storage: ``count`` elements of ``dtype``, read from the file when asked."""

    __slots__ = ("class_name", "dtype", "count", "path", "offset", "end", "ascii", "long_size")

    def __init__(self, class_name: str, dtype: np.dtype, count: int, path: str, offset: int,
                 end: int, ascii: bool, long_size: int) -> None:
        self.class_name = class_name
        self.dtype = np.dtype(dtype)
        self.count = count
        self.path = path
        self.offset = offset
        self.end = end
        self.ascii = ascii
        self.long_size = long_size

    def read(self) -> np.ndarray:
        """All elements, as a 1-D array of ``dtype``."""
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            raw = f.read(self.end - self.offset)
        if len(raw) != self.end - self.offset:
            raise InvalidModelError("storage data ends early (truncated?)", path=self.path)
        if self.ascii and self.dtype.itemsize > 1:
            try:
                values = np.array(raw.split(), dtype=np.float64 if self.dtype.kind == "f"
                                  else np.int64)
            except ValueError:
                raise InvalidModelError("storage holds text that is not a number",
                                        path=self.path) from None
            if values.size != self.count:
                raise InvalidModelError(
                    f"storage declares {self.count} elements but holds {values.size}",
                    path=self.path)
            return values.astype(self.dtype)
        if self.dtype == np.int64 and self.long_size == 4:
            return np.frombuffer(raw, dtype="<i4").astype(np.int64)
        return np.frombuffer(raw, dtype=self.dtype.newbyteorder("<")).astype(self.dtype,
                                                                            copy=False)


class Tensor:
    """A torch.<X>Tensor: a size/stride/offset view of a storage."""

    __slots__ = ("class_name", "dtype", "size", "stride", "offset", "storage")

    def __init__(self, class_name: str, dtype: np.dtype, size: tuple[int, ...],
                 stride: tuple[int, ...], offset: int, storage: Storage | None) -> None:
        self.class_name = class_name
        self.dtype = np.dtype(dtype)
        self.size = size
        self.stride = stride
        self.offset = offset  # 0-based
        self.storage = storage

    @property
    def numel(self) -> int:
        n = 1
        for d in self.size:
            n *= d
        return n if self.size else 0

    def numpy(self) -> np.ndarray:
        """The tensor's elements as a C-contiguous array of its shape."""
        if not self.size or self.numel == 0:
            return np.zeros(self.size, dtype=self.dtype)
        data = self.storage.read()
        item = data.itemsize
        view = np.lib.stride_tricks.as_strided(
            data[self.offset:], shape=self.size, strides=tuple(s * item for s in self.stride),
            writeable=False)
        return np.ascontiguousarray(view)

    def __repr__(self) -> str:
        return f"Tensor({self.class_name}, {list(self.size)})"


class _Reader:
    def __init__(self, path: str, data: bytes | mmap.mmap, *, ascii: bool, long_size: int
                 ) -> None:
        self.path = path
        self.data = data
        self.n = len(data)
        self.pos = 0
        self.ascii = ascii
        self.long_size = long_size
        self.objects: dict[int, Any] = {}
        self._int = struct.Struct("<i")
        self._long = struct.Struct("<q" if long_size == 8 else "<i")
        self._double = struct.Struct("<d")

    # -- primitives -----------------------------------------------------------------------------
    def need(self, nbytes: int, what: str) -> None:
        if nbytes < 0 or self.pos + nbytes > self.n:
            raise FormatError(f"{what} needs {nbytes} bytes at offset {self.pos}, but the file "
                              f"has {self.n - self.pos} left (truncated?)")

    def _token(self, what: str) -> bytes:
        data, pos, n = self.data, self.pos, self.n
        while pos < n and data[pos] in b" \t\r\n":
            pos += 1
        start = pos
        while pos < n and data[pos] not in b" \t\r\n":
            pos += 1
        if start == pos:
            raise FormatError(f"file ends where {what} was expected (truncated?)")
        self.pos = pos
        return bytes(data[start:pos])

    def _end_group(self) -> None:  # ASCII files put a newline after each group of values
        if self.pos < self.n and self.data[self.pos] == 0x0A:
            self.pos += 1

    def _ascii_numbers(self, count: int, what: str, cast) -> list:
        out = []
        for _ in range(count):
            token = self._token(what)
            try:
                out.append(cast(token))
            except ValueError:
                raise FormatError(f"{what}: {token[:20]!r} is not a number") from None
        if count:
            self._end_group()
        return out

    def int(self, what: str = "an int") -> int:
        if self.ascii:
            return self._ascii_numbers(1, what, int)[0]
        self.need(4, what)
        value = self._int.unpack_from(self.data, self.pos)[0]
        self.pos += 4
        return value

    def longs(self, count: int, what: str = "a long") -> list[int]:
        if self.ascii:
            return self._ascii_numbers(count, what, int)
        self.need(count * self.long_size, what)
        out = [self._long.unpack_from(self.data, self.pos + i * self.long_size)[0]
               for i in range(count)]
        self.pos += count * self.long_size
        return out

    def double(self, what: str = "a number") -> float:
        if self.ascii:
            return self._ascii_numbers(1, what, float)[0]
        self.need(8, what)
        value = self._double.unpack_from(self.data, self.pos)[0]
        self.pos += 8
        return value

    def raw(self, size: int, what: str) -> bytes:
        if size < 0:
            raise FormatError(f"{what} has a negative length {size}")
        self.need(size, what)
        out = bytes(self.data[self.pos:self.pos + size])
        self.pos += size
        if self.ascii and size:
            self._end_group()
        return out

    def string(self, what: str = "a string") -> str:
        size = self.int(f"the length of {what}")
        return self.raw(size, what).decode("utf-8", errors="replace")

    # -- objects --------------------------------------------------------------------------------
    def object(self) -> Any:
        tag = self.int("a type tag")
        if tag == TYPE_NIL:
            return None
        if tag == TYPE_NUMBER:
            return self.double()
        if tag == TYPE_BOOLEAN:
            return self.int("a boolean") == 1
        if tag == TYPE_STRING:
            return self.string()
        if tag == TYPE_FUNCTION:
            size = self.int("a function's bytecode length")
            self.skip_raw(size, "a function's bytecode")
            func = LuaFunction(size)
            func.upvalues = self.object()
            return func
        if tag in (TYPE_TABLE, TYPE_TORCH, TYPE_RECUR_FUNCTION, TYPE_LEGACY_RECUR_FUNCTION):
            index = self.int("an object index")
            if index in self.objects:
                return self.objects[index]
            if tag == TYPE_TABLE:
                return self.table(index)
            if tag == TYPE_TORCH:
                return self.torch_object(index)
            size = self.int("a function's bytecode length")
            self.skip_raw(size, "a function's bytecode")
            func = LuaFunction(size)
            self.objects[index] = func
            func.upvalues = self.object()
            return func
        raise FormatError(f"unknown type tag {tag} at offset {self.pos} (not a Torch7 file, "
                          "or a wrong long size)")

    def skip_raw(self, size: int, what: str) -> None:
        if size < 0:
            raise FormatError(f"{what} has a negative length {size}")
        self.need(size, what)
        self.pos += size
        if self.ascii and size:
            self._end_group()

    def table(self, index: int) -> LuaTable:
        table = LuaTable()
        self.objects[index] = table
        size = self.int("a table size")
        # Each pair holds at least two type tags.
        if size < 0 or size * (4 if self.ascii else 8) > self.n - self.pos:
            raise FormatError(f"a table declares {size} entries, more than the file can hold")
        for _ in range(size):
            key = self.object()
            value = self.object()
            if isinstance(key, float) and key.is_integer():
                key = int(key)
            if key is None:
                raise FormatError("a table has a nil key")
            table.items[key] = value
        return table

    def torch_object(self, index: int) -> Any:
        version_text = self.string("a class version")
        if version_text.startswith("V "):
            try:
                version = int(float(version_text[2:]))
            except ValueError:
                raise FormatError(f"bad class version {version_text!r}") from None
            class_name = self.string("a class name")
        else:
            class_name, version = version_text, 0
        if not re.match(r"^[A-Za-z_][\w.]*$", class_name):
            raise FormatError(f"bad class name {class_name[:40]!r} (not a Torch7 file?)")
        match = _CLASS.match(class_name)
        if match and match.group(1) in _ELEMENT:
            dtype = _ELEMENT[match.group(1)]
            if match.group(2) == "Storage":
                storage = self.storage(class_name, dtype)
                self.objects[index] = storage
                return storage
            tensor = self.tensor(class_name, dtype, index)
            return tensor
        obj = TorchObject(class_name, version)
        self.objects[index] = obj
        obj.fields = self.object()
        return obj

    def storage(self, class_name: str, dtype) -> Storage:
        (count,) = self.longs(1, "a storage size")
        dtype = np.dtype(dtype)
        if count < 0:
            raise FormatError(f"{class_name} has a negative size {count}")
        start = self.pos
        if self.ascii and dtype.itemsize > 1:
            if count == 0:
                end = start
            else:
                # The elements are one line of text: at least two bytes each.
                if 2 * count - 1 > self.n - start:
                    raise FormatError(f"{class_name} declares {count} elements, more than the "
                                      "rest of the file can hold (truncated?)")
                end = self.data.find(b"\n", start)
                if end < 0:
                    raise FormatError(f"{class_name} data has no end (truncated?)")
                self.pos = end + 1
        else:
            itemsize = self.long_size if (dtype == np.int64 and not self.ascii) else dtype.itemsize
            self.need(count * itemsize, f"{class_name} of {count} elements")
            end = start + count * itemsize
            self.pos = end
            if self.ascii and count:
                self._end_group()
        return Storage(class_name, dtype, count, self.path, start, end, self.ascii,
                       self.long_size)

    def tensor(self, class_name: str, dtype, index: int) -> Tensor:
        ndim = self.int("a tensor's number of dimensions")
        if not 0 <= ndim <= MAX_DIMS:
            raise FormatError(f"{class_name} declares {ndim} dimensions")
        size = tuple(self.longs(ndim, "tensor sizes"))
        stride = tuple(self.longs(ndim, "tensor strides"))
        (offset,) = self.longs(1, "a tensor offset")
        tensor = Tensor(class_name, dtype, size, stride, offset - 1, None)
        self.objects[index] = tensor
        storage = self.object()
        if storage is not None and not isinstance(storage, Storage):
            raise FormatError(f"{class_name} refers to a {type(storage).__name__}, not a storage")
        tensor.storage = storage
        if any(d < 0 for d in size) or any(s < 0 for s in stride):
            raise FormatError(f"{class_name} has negative sizes or strides {size} / {stride}")
        if ndim and tensor.numel:
            if storage is None:
                raise FormatError(f"{class_name} of size {list(size)} has no storage")
            last = tensor.offset + sum((d - 1) * s for d, s in zip(size, stride))
            if tensor.offset < 0 or last >= storage.count:
                raise FormatError(f"{class_name} of size {list(size)} reaches element {last} of "
                                  f"a storage of {storage.count}")
            if np.dtype(dtype) != storage.dtype:
                raise FormatError(f"{class_name} over a {storage.class_name}")
        return tensor


def looks_ascii(head: bytes) -> bool:
    """An ASCII Torch7 file starts with the type tag 4 (or 3) and the index 1 as text lines
    (a binary one with the bytes 04 00 00 00 or 03 00 00 00)."""
    return re.match(rb"^[34]\n1\n", head) is not None


@contextlib.contextmanager
def _deep_recursion(limit: int = 200_000) -> Iterator[None]:
    # Graphs serialise as chains of nodes (each node holds its children): the reader recurses
    # as deep as the longest path. Python 3.11 calls do not use the C stack for this.
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(max(old, limit))
    try:
        yield
    finally:
        sys.setrecursionlimit(old)


def load(path: str, *, long_size: int | None = None) -> tuple[Any, dict[str, Any]]:
    """Read the object stored in ``path``; returns (object, info) where info tells the encoding.

    Raises InvalidModelError (naming the file) for anything that is not a complete Torch7 file.
    """
    try:
        size = os.path.getsize(path)
    except OSError as exc:
        raise InvalidModelError(f"cannot read: {exc.strerror or exc}", path=path) from None
    if size == 0:
        raise InvalidModelError("file is empty", path=path)
    with open(path, "rb") as f:
        data = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    try:
        ascii = looks_ascii(bytes(data[:256]))
        sizes = [long_size] if long_size else ([8] if ascii else [8, 4])
        first_error: Exception | None = None
        for ls in sizes:
            reader = _Reader(path, data, ascii=ascii, long_size=ls)
            try:
                with _deep_recursion():
                    obj = reader.object()
            except (FormatError, RecursionError, OverflowError, MemoryError) as exc:
                first_error = first_error or exc
                continue
            rest = bytes(data[reader.pos:reader.pos + 64])
            if reader.pos != reader.n and not (ascii and not rest.strip()):
                first_error = first_error or FormatError(
                    f"{reader.n - reader.pos} bytes follow the stored object")
                continue
            return obj, {"ascii": ascii, "long_size": ls}
        msg = str(first_error) if not isinstance(first_error, RecursionError) else \
            "objects nested too deeply"
        raise InvalidModelError(f"cannot be read as a Torch7 file: {msg}", path=path)
    finally:
        data.close()
