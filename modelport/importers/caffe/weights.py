"""Caffemodel weights, read lazily.

A ``.caffemodel`` is a binary NetParameter whose layers carry their learned blobs. Instead of
parsing it into protobuf objects (which would copy every weight into Python memory), the file
is memory-mapped and its wire format walked once to record, per layer, where each blob's
``data`` bytes lie (the walk jumps over the data, so it touches only a few pages). A weight is
then a zero-copy NumPy view of its own small mapping of the file, made when the exporter asks
for it and unmapped when the exporter drops it: converting never keeps more than the tensor
being written resident. Everything else in the file (a training net's data and loss layers,
solver fields) is skipped without being read.
"""

from __future__ import annotations

import dataclasses
import mmap
import os
import struct
from collections.abc import Callable

import numpy as np

from modelport.errors import InvalidModelError
from modelport.protowire import decode_varint

# NetParameter: 2 = layers (V1), 100 = layer. LayerParameter: 1 name, 2 type, 7 blobs.
# V1LayerParameter: 4 name, 5 type (enum), 6 blobs, 1 = V0 layer (1 name, 2 type, 50 blobs).
# BlobProto: 1-4 num/channels/height/width, 5 data (float), 7 shape, 8 double_data.


@dataclasses.dataclass
class BlobRef:
    shape: tuple[int, ...]
    dtype: np.dtype
    offset: int = -1  # start of the packed data in the file
    count: int = 0
    values: np.ndarray | None = None  # data stored unpacked (old writers): decoded eagerly

    @property
    def size(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n


@dataclasses.dataclass
class LayerBlobs:
    name: str
    type: str
    blobs: list[BlobRef]


class WeightsFile:
    """A memory-mapped caffemodel with an index of its layers' blobs."""

    def __init__(self, path: str) -> None:
        self.path = path
        try:
            self._file = open(path, "rb")  # noqa: SIM115 - kept open for the mapping's lifetime
        except OSError as exc:
            raise InvalidModelError(f"cannot read: {exc.strerror or exc}", path=path) from None
        size = os.fstat(self._file.fileno()).st_size
        if size == 0:
            raise InvalidModelError("weights file is empty", path=path)
        self._map = mmap.mmap(self._file.fileno(), 0, access=mmap.ACCESS_READ)
        self.layers: list[LayerBlobs] = []
        try:
            self._index()
        except (IndexError, ValueError, struct.error) as exc:
            raise InvalidModelError(
                f"is not a valid caffemodel (truncated or corrupt?): {exc}", path=path
            ) from None
        self._map.close()  # the index is built; weights get mappings of their own
        self._by_name: dict[str, list[LayerBlobs]] = {}
        for layer in self.layers:
            self._by_name.setdefault(layer.name, []).append(layer)

    def close(self) -> None:
        """Close the file (readers made before stop working)."""
        self._file.close()

    # -- lookup --------------------------------------------------------------------------------
    def find(self, name: str, occurrence: int = 0) -> LayerBlobs | None:
        """The ``occurrence``-th layer called ``name`` that has blobs (the last one if fewer)."""
        found = [layer for layer in self._by_name.get(name, []) if layer.blobs]
        if not found:
            return None
        return found[min(occurrence, len(found) - 1)]

    def reader(self, blob: BlobRef) -> Callable[[], np.ndarray]:
        if blob.values is not None:
            values = blob.values
            return lambda: values.reshape(blob.shape)
        offset, count, dtype, shape = blob.offset, blob.count, blob.dtype, blob.shape
        start = offset - offset % mmap.ALLOCATIONGRANULARITY
        length = offset - start + count * dtype.itemsize
        file = self._file  # the closure keeps the file open while weights may be read

        def read() -> np.ndarray:
            if count == 0:
                return np.zeros(shape, dtype=dtype)
            region = mmap.mmap(file.fileno(), length, access=mmap.ACCESS_READ, offset=start)
            return np.frombuffer(region, dtype=dtype, count=count,
                                 offset=offset - start).reshape(shape)

        return read

    # -- wire-format walk ----------------------------------------------------------------------
    def _index(self) -> None:
        buf = self._map
        end = len(buf)
        seen_field = False
        for field, wire, start, stop in _fields(buf, 0, end):
            seen_field = True
            if field == 100 and wire == 2:
                self.layers.append(self._layer(buf, start, stop, v1=False))
            elif field == 2 and wire == 2:
                self.layers.append(self._layer(buf, start, stop, v1=True))
        if not seen_field:
            raise ValueError("no fields")

    def _layer(self, buf, start: int, stop: int, *, v1: bool) -> LayerBlobs:
        name_field, type_field, blob_field = (4, 5, 6) if v1 else (1, 2, 7)
        name, type_, blobs = "", "", []
        for field, wire, s, e in _fields(buf, start, stop):
            if field == name_field and wire == 2:
                name = bytes(buf[s:e]).decode("utf-8", "replace")
            elif field == type_field:
                type_ = str(s) if wire == 0 else bytes(buf[s:e]).decode("utf-8", "replace")
            elif field == blob_field and wire == 2:
                blobs.append(self._blob(buf, s, e))
            elif v1 and field == 1 and wire == 2:  # V0 layer inside a V1 layer
                v0 = self._layer_v0(buf, s, e)
                name = name or v0.name
                type_ = type_ or v0.type
                blobs.extend(v0.blobs)
        return LayerBlobs(name, type_, blobs)

    def _layer_v0(self, buf, start: int, stop: int) -> LayerBlobs:
        name, type_, blobs = "", "", []
        for field, wire, s, e in _fields(buf, start, stop):
            if field == 1 and wire == 2:
                name = bytes(buf[s:e]).decode("utf-8", "replace")
            elif field == 2 and wire == 2:
                type_ = bytes(buf[s:e]).decode("utf-8", "replace")
            elif field == 50 and wire == 2:
                blobs.append(self._blob(buf, s, e))
        return LayerBlobs(name, type_, blobs)

    def _blob(self, buf, start: int, stop: int) -> BlobRef:
        legacy = [0, 0, 0, 0]
        has_legacy = False
        shape: list[int] | None = None
        ref = BlobRef(shape=(), dtype=np.dtype("<f4"))
        unpacked: list[float] = []
        for field, wire, s, e in _fields(buf, start, stop):
            if field in (1, 2, 3, 4) and wire == 0:
                legacy[field - 1] = s
                has_legacy = True
            elif field == 7 and wire == 2:
                shape = []
                for f2, w2, s2, e2 in _fields(buf, s, e):
                    if f2 == 1 and w2 == 2:  # packed int64 dims
                        pos = s2
                        while pos < e2:
                            v, pos = decode_varint(buf, pos)
                            shape.append(v)
                    elif f2 == 1 and w2 == 0:
                        shape.append(s2)
            elif field == 5 and wire == 2:
                ref.offset, ref.count, ref.dtype = s, (e - s) // 4, np.dtype("<f4")
            elif field == 5 and wire == 5:
                unpacked.append(struct.unpack_from("<f", buf, s)[0])
            elif field == 8 and wire == 2 and ref.offset < 0:
                ref.offset, ref.count, ref.dtype = s, (e - s) // 8, np.dtype("<f8")
        if unpacked:
            ref.values = np.asarray(unpacked, dtype=np.float32)
            ref.count = len(unpacked)
        if shape is not None:
            ref.shape = tuple(int(d) for d in shape)
        elif has_legacy:
            ref.shape = tuple(int(d) for d in legacy)
        else:
            ref.shape = (ref.count,)
        if ref.size != ref.count:
            raise ValueError(f"a blob has shape {list(ref.shape)} but {ref.count} values")
        return ref


def _fields(buf, start: int, stop: int):
    """Yield (field, wire type, start, end) for each field in buf[start:stop].

    For varints, ``start`` is the value and ``end`` the position after it; for length-
    delimited fields the payload's bounds; for fixed32/64 the value's bounds.
    """
    pos = start
    while pos < stop:
        key, pos = decode_varint(buf, pos)
        field, wire = key >> 3, key & 7
        if field == 0:
            raise ValueError("field number 0")
        if wire == 0:
            value, pos = decode_varint(buf, pos)
            yield field, wire, value, pos
        elif wire == 2:
            length, pos = decode_varint(buf, pos)
            if pos + length > stop:
                raise ValueError("a field runs past the end of its message")
            yield field, wire, pos, pos + length
            pos += length
        elif wire == 5:
            if pos + 4 > stop:
                raise ValueError("truncated fixed32")
            yield field, wire, pos, pos + 4
            pos += 4
        elif wire == 1:
            if pos + 8 > stop:
                raise ValueError("truncated fixed64")
            yield field, wire, pos, pos + 8
            pos += 8
        else:
            raise ValueError(f"unsupported wire type {wire}")
