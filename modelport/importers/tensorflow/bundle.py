"""TensorFlow checkpoints (tensor bundles), read without TensorFlow.

A checkpoint ``PREFIX`` is ``PREFIX.index`` plus data shards ``PREFIX.data-SSSSS-of-NNNNN``.
The index is a LevelDB-format sorted table (SSTable) mapping each tensor's key to a
BundleEntryProto (dtype, shape, shard, offset and size of its bytes in that shard); the empty
key holds the BundleHeaderProto (number of shards, endianness).

Facts of the table format used here: the file ends with a 48-byte footer (the BlockHandles of
the meta-index and index blocks, each two varints offset and size, zero padding to 40 bytes,
then the 8-byte magic number 0xdb4775248b80fb57 little-endian). Every block is followed by a
5-byte trailer (compression type, CRC). A block is a run of entries, each
``varint shared, varint non_shared, varint value_length, key suffix, value``, whose key shares
its first ``shared`` bytes with the previous key (prefix compression); the block ends with the
uint32 offsets of its restart points (entries stored with shared = 0) and their uint32 count.
The index block maps the last key of each data block to that block's handle.

Tensor bytes are only read when a weight is exported (each from its region of its shard).
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator

import numpy as np

from modelport.errors import InvalidModelError
from modelport.importers.tensorflow import dtypes
from modelport.importers.tensorflow._pb import modelport_tf_pb2 as pb
from modelport.importers.tensorflow.tensors import shape_of
from modelport.protowire import decode_varint

TABLE_MAGIC = 0xDB4775248B80FB57
FOOTER_SIZE = 48
BLOCK_TRAILER = 5


def _handle(buf, pos: int) -> tuple[int, int, int]:
    offset, pos = decode_varint(buf, pos)
    size, pos = decode_varint(buf, pos)
    return offset, size, pos


def _block(data: bytes, offset: int, size: int) -> bytes:
    if offset + size + BLOCK_TRAILER > len(data):
        raise ValueError("a block handle points past the end of the file")
    kind = data[offset + size]
    if kind != 0:
        raise ValueError(f"compressed table blocks (type {kind}) are not supported")
    return data[offset: offset + size]


def block_entries(block: bytes) -> Iterator[tuple[bytes, bytes]]:
    """The (key, value) pairs of one table block, prefix compression undone."""
    if len(block) < 4:
        raise ValueError("a table block is too short")
    (restarts,) = struct.unpack_from("<I", block, len(block) - 4)
    end = len(block) - 4 * (restarts + 1)
    if end < 0:
        raise ValueError("a table block's restart array is corrupt")
    pos = 0
    key = b""
    while pos < end:
        shared, pos = decode_varint(block, pos)
        unshared, pos = decode_varint(block, pos)
        vlen, pos = decode_varint(block, pos)
        if shared > len(key) or pos + unshared + vlen > end:
            raise ValueError("a table entry is corrupt")
        key = key[:shared] + block[pos: pos + unshared]
        pos += unshared
        yield key, block[pos: pos + vlen]
        pos += vlen


def read_table(path: str) -> dict[bytes, bytes]:
    """Every (key, value) of a LevelDB-format table file."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < FOOTER_SIZE:
        raise ValueError("too short for a table (no footer)")
    footer = data[-FOOTER_SIZE:]
    (magic,) = struct.unpack_from("<Q", footer, FOOTER_SIZE - 8)
    if magic != TABLE_MAGIC:
        raise ValueError("not a LevelDB-format table (bad magic number)")
    _, _, pos = _handle(footer, 0)  # meta-index: not needed
    index_offset, index_size, _ = _handle(footer, pos)
    out: dict[bytes, bytes] = {}
    for _, handle in block_entries(_block(data, index_offset, index_size)):
        offset, size, _ = _handle(handle, 0)
        for key, value in block_entries(_block(data, offset, size)):
            out[key] = value
    return out


class Checkpoint:
    """A tensor bundle: its index read now, tensors read from their shards on demand."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        index = prefix + ".index"
        try:
            table = read_table(index)
        except OSError as exc:
            raise InvalidModelError(f"cannot read: {exc.strerror or exc}", path=index) from None
        except ValueError as exc:
            raise InvalidModelError(f"is not a TensorFlow checkpoint index: {exc}",
                                    path=index) from None
        header = pb.BundleHeaderProto()
        self.entries: dict[str, pb.BundleEntryProto] = {}
        try:
            header.ParseFromString(table.get(b"", b""))
            for key, value in table.items():
                if key:
                    entry = pb.BundleEntryProto()
                    entry.ParseFromString(value)
                    self.entries[key.decode("utf-8", "replace")] = entry
        except Exception as exc:
            raise InvalidModelError(f"has a corrupt entry: {exc}", path=index) from None
        if header.endianness != 0:
            raise InvalidModelError("big-endian checkpoints are not supported", path=index)
        self.num_shards = max(header.num_shards, 1)

    def shard(self, shard_id: int) -> str:
        return f"{self.prefix}.data-{shard_id:05d}-of-{self.num_shards:05d}"

    def __contains__(self, key: str) -> bool:
        return key in self.entries

    def dtype(self, key: str) -> int:
        return self.entries[key].dtype

    def shape(self, key: str) -> list[int]:
        return shape_of(self.entries[key].shape) or []

    def check(self, key: str) -> None:
        """Raise a clear error if the tensor is sliced or its shard is missing or too short."""
        entry = self.entries[key]
        if len(entry.slices):
            raise InvalidModelError(f"variable {key!r} is stored in slices (partitioned); "
                                    "this is not supported", path=self.prefix + ".index")
        path = self.shard(entry.shard_id)
        if not os.path.isfile(path):
            raise InvalidModelError(f"the checkpoint shard for {key!r} is missing", path=path)
        if os.path.getsize(path) < entry.offset + entry.size:
            raise InvalidModelError(f"is too short for {key!r} (truncated?)", path=path)

    def read(self, key: str) -> np.ndarray:
        """The tensor's value, after checking what the index declares (shape, dtype, offset and
        size) against each other and against the data file, before reading anything."""
        entry = self.entries[key]
        index = self.prefix + ".index"
        shape = self.shape(key)
        if any(d < 0 for d in shape):
            raise InvalidModelError(f"variable {key!r} has an unknown dimension in its shape "
                                    f"{shape}", path=index)
        path = self.shard(entry.shard_id)
        if entry.offset < 0 or entry.size < 0 or not os.path.isfile(path) or \
                os.path.getsize(path) < entry.offset + entry.size:
            raise InvalidModelError(f"is too short for {key!r} (truncated?), or the index "
                                    "declares a region beyond it", path=path)
        count = int(np.prod(shape, dtype=object))
        string = dtypes.base(entry.dtype) == dtypes.STRING
        if not string:
            try:
                np_dtype = dtypes.to_numpy(entry.dtype)
            except (InvalidModelError, KeyError, ValueError, TypeError):
                raise InvalidModelError(f"variable {key!r} has an unknown dtype {entry.dtype}",
                                        path=index) from None
            if count * np_dtype.itemsize != entry.size:
                raise InvalidModelError(
                    f"variable {key!r} declares shape {shape} of {np_dtype} "
                    f"({count * np_dtype.itemsize} bytes) but stores {entry.size} bytes",
                    path=index)
        elif count > entry.size:  # every string takes at least its one-byte length
            raise InvalidModelError(f"variable {key!r} declares {count} strings in "
                                    f"{entry.size} bytes", path=index)
        with open(path, "rb") as f:
            f.seek(entry.offset)
            raw = f.read(entry.size)
        if len(raw) != entry.size:
            raise InvalidModelError(f"is too short for {key!r} (truncated?)", path=path)
        if string:
            try:
                return _strings(raw, shape)
            except ValueError as exc:
                raise InvalidModelError(f"variable {key!r} holds corrupt strings ({exc})",
                                        path=path) from None
        return np.frombuffer(raw, dtype=np_dtype.newbyteorder("<")).astype(
            np_dtype, copy=False).reshape(shape)


def _strings(raw: bytes, shape: list[int]) -> np.ndarray:
    """A string tensor's bytes: every element's varint length, a 4-byte CRC, then the bytes."""
    count = int(np.prod(shape, dtype=np.int64))
    lengths, pos = [], 0
    for _ in range(count):
        n, pos = decode_varint(raw, pos)
        lengths.append(n)
    pos += 4
    out = []
    for n in lengths:
        out.append(raw[pos: pos + n])
        pos += n
    return np.asarray(out, dtype=object).reshape(shape)
