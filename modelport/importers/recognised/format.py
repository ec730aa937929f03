"""Recognised-only formats: detection by content, and the one-line answer instead of a load.

- CNTK v2 ``.model``: a protobuf ``CNTK.proto.Dictionary`` (field 1 ``version``, field 2 the
  map entries) whose ``type`` entry is the string ``CompositeFunction`` (models over 2 GB
  start with the magic 0x636e746b and a length); the top-level entries are walked by their
  length prefixes, so the (large) ``primitive_functions`` entry is skipped, not read.
- CNTK v1 ``.dnn``: BrainScript's ``ComputationNetwork`` file, opened by the section markers
  ``BCN`` and ``BVersion`` (wide strings).
- Deeplearning4j: a ``ModelSerializer`` zip with ``configuration.json`` and
  ``coefficients.bin``.
- Nervana neon: a pickle (protocol 2+) whose first strings name ``neon.`` classes or the
  ``neon_version`` key of ``Model.serialize()``; the opcodes are scanned, never executed.
- JAX: Flax ``to_bytes`` msgpack (a map whose leaves are the ndarray extension type 1),
  Orbax checkpoint directories (``_CHECKPOINT_METADATA``, ``_METADATA``,
  ``manifest.ocdbt``), and ``jax.export`` ``Exported.serialize()`` flatbuffers (a root
  table whose ``mlir_module_serialized`` vector holds MLIR bytecode, ``ML\\xefR``).
"""

from __future__ import annotations

import io
import os
import pickletools
import re
import struct
import zipfile

from modelport.importers.registry import OPTION_FLAGS, FormatSpec, get_format
from modelport.protowire import decode_varint

_JAX_ADVICE = ("a JAX model is code; export it with jax2onnx, then convert the ONNX")
_CNTK_ADVICE = ("load it in CNTK 2.7 (C.load_model) and save it as ONNX "
                "(model.save('model.onnx', format=C.ModelFormat.ONNX)), then convert the ONNX")


# -- CNTK v2 -----------------------------------------------------------------------------------
_CNTK_MAGIC = struct.pack("<I", 0x636E746B)


def _read_varint(f) -> int:
    shift = result = 0
    while True:
        b = f.read(1)
        if not b:
            raise ValueError("truncated varint")
        result |= (b[0] & 0x7F) << shift
        if not b[0] & 0x80:
            return result
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def _dictionary_type(path: str, head: bytes, limit: int = 100_000) -> str | None:
    """The ``type`` string of a serialized CNTK Dictionary, walking its top-level entries."""
    start = 8 if head.startswith(_CNTK_MAGIC) else 0
    if len(head) < start + 4 or head[start] != 0x08:  # field 1 (version), varint
        return None
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        f.seek(start + 1)
        _read_varint(f)
        for _ in range(limit):
            if f.tell() >= size:
                return None
            key = _read_varint(f)
            if key != 0x12:  # field 2 (data), length-delimited map entry
                return None
            length = _read_varint(f)
            end = f.tell() + length
            if end > size:
                return None
            entry = f.read(min(length, 256))
            if not entry or entry[0] != 0x0A:  # entry field 1: the key string
                return None
            klen, pos = decode_varint(entry, 1)
            name = entry[pos:pos + klen]
            if name == b"type" and length <= 256:
                return _string_value(entry, pos + klen)
            f.seek(end)
    return None


def _string_value(entry: bytes, pos: int) -> str | None:
    """The string_value (field 8) of the DictionaryValue in a map entry's field 2."""
    if pos >= len(entry) or entry[pos] != 0x12:
        return None
    length, pos = decode_varint(entry, pos + 1)
    end = min(pos + length, len(entry))
    while pos < end:
        key, pos = decode_varint(entry, pos)
        field, wire = key >> 3, key & 7
        if wire == 0:
            _, pos = decode_varint(entry, pos)
        elif wire == 2:
            n, pos = decode_varint(entry, pos)
            if field == 8:
                return entry[pos:pos + n].decode("utf-8", "replace")
            pos += n
        elif wire == 5:
            pos += 4
        elif wire == 1:
            pos += 8
        else:
            return None
    return None


def detect_cntk2(path: str, head: bytes) -> int:
    try:
        kind = _dictionary_type(path, head)
    except (OSError, ValueError, IndexError):
        return 0
    return 90 if kind == "CompositeFunction" else 0


# -- CNTK v1 -----------------------------------------------------------------------------------
_BCN = ("BCN".encode("utf-16-le") + b"\0\0", "BCN".encode("utf-32-le") + b"\0" * 4, b"BCN\0")
_BVERSION = ("BVersion".encode("utf-16-le"), "BVersion".encode("utf-32-le"), b"BVersion")


def detect_cntk1(path: str, head: bytes) -> int:
    for bcn, version in zip(_BCN, _BVERSION):
        if head.startswith(bcn) and version in head[:256]:
            return 90
    return 0


# -- Deeplearning4j ----------------------------------------------------------------------------
def detect_dl4j(path: str, head: bytes) -> int:
    if not head.startswith(b"PK\x03\x04"):
        return 0
    try:
        with zipfile.ZipFile(path) as z:
            names = set(z.namelist())
    except (OSError, zipfile.BadZipFile):
        return 0
    return 90 if {"configuration.json", "coefficients.bin"} <= names else 0


# -- neon ------------------------------------------------------------------------------------
def _pickle_strings(head: bytes, limit: int = 400) -> list[str]:
    """String arguments of the first opcodes of a pickle (read with pickletools, not run)."""
    out = []
    try:
        for i, (_op, arg, _pos) in enumerate(pickletools.genops(io.BytesIO(head))):
            if isinstance(arg, str):
                out.append(arg)
            elif isinstance(arg, bytes) and len(arg) < 200:
                out.append(arg.decode("latin-1"))
            if i >= limit:
                break
    except Exception:  # the head ends inside an opcode, or this is no pickle after all
        pass
    return out


def detect_neon(path: str, head: bytes) -> int:
    if len(head) < 4 or head[0] != 0x80 or not 2 <= head[1] <= 5:
        return 0
    try:  # neon pickles may put weights before the class names: look a bit further
        with open(path, "rb") as f:
            head = f.read(1 << 16)
    except OSError:
        pass
    strings = _pickle_strings(head, limit=4000)
    if "neon_version" in strings or any(s.startswith("neon.") for s in strings):
        return 85
    return 0


# -- JAX ---------------------------------------------------------------------------------------
_FLAX_LEAF = re.compile(rb"(?:\xc7.|\xc8..|\xc9....)\x01\x93[\x90-\x9f]", re.S)


def detect_flax(path: str, head: bytes) -> int:
    if not head or not (0x80 <= head[0] <= 0x8F or head[0] in (0xDE, 0xDF)):
        return 0
    return 80 if _FLAX_LEAF.search(head) else 0


def detect_orbax(path: str, head: bytes) -> int:
    if not os.path.isdir(path):
        return 0
    try:
        names = set(os.listdir(path))
    except OSError:
        return 0
    if "_CHECKPOINT_METADATA" in names:
        return 90
    if "_METADATA" in names and names & {"manifest.ocdbt", "_sharding", "d"}:
        return 90
    # A CheckpointManager directory: numbered steps, each a checkpoint.
    steps = [n for n in names if n.isdigit() and os.path.isdir(os.path.join(path, n))]
    for step in steps[:4]:
        if os.path.exists(os.path.join(path, step, "_CHECKPOINT_METADATA")):
            return 85
    return 0


_MLIR_BYTECODE = b"ML\xefR"
_EXPORTED_MLIR_SLOT = 13  # Exported.mlir_module_serialized in jax's serialization.fbs


def detect_jax_export(path: str, head: bytes) -> int:
    """A flatbuffer whose root table is ``Exported`` with an MLIR bytecode module in it."""
    if len(head) < 16:
        return 0
    try:
        with open(path, "rb") as f:
            data = f.read(1 << 20)
        (root,) = struct.unpack_from("<I", data, 0)
        (soffset,) = struct.unpack_from("<i", data, root)
        vtable = root - soffset
        vt_size, _ = struct.unpack_from("<HH", data, vtable)
        slot = 4 + 2 * _EXPORTED_MLIR_SLOT
        if vt_size < slot + 2:
            return 0
        (field,) = struct.unpack_from("<H", data, vtable + slot)
        (version_off,) = struct.unpack_from("<H", data, vtable + 4)
        if not field or not version_off:
            return 0
        (version,) = struct.unpack_from("<H", data, root + version_off)
        at = root + field
        (rel,) = struct.unpack_from("<I", data, at)
        vec = at + rel
        (length,) = struct.unpack_from("<I", data, vec)
    except (OSError, struct.error):
        return 0
    if 1 <= version <= 100 and length >= 4 and data[vec + 4:vec + 8] == _MLIR_BYTECODE:
        return 90
    return 0


def _refuse(name: str):
    def load(path: str, options=None):
        raise get_format(name).refuse(path)
    load.__name__ = f"refuse_{name.replace('-', '_')}"
    return load


refuse_cntk = _refuse("cntk")
refuse_cntk_v1 = _refuse("cntk-v1")
refuse_dl4j = _refuse("dl4j")
refuse_neon = _refuse("neon")
refuse_flax = _refuse("flax-msgpack")
refuse_orbax = _refuse("orbax")
refuse_jax_export = _refuse("jax-export")

_HERE = "modelport.importers.recognised.format"
# Options are not checked for these formats: the one-line "not converted" answer must come first,
# whatever else the command line holds.
_ANY = frozenset(OPTION_FLAGS)

FORMATS = [
    FormatSpec(
        name="cntk", description="CNTK v2 model (.model)", extensions=(".model", ".cntk"),
        detection="protobuf CNTK Dictionary whose 'type' is CompositeFunction",
        detect=detect_cntk2, load=f"{_HERE}:refuse_cntk", options=_ANY, not_converted=_CNTK_ADVICE),
    FormatSpec(
        name="cntk-v1", description="CNTK v1 / BrainScript model (.dnn)",
        extensions=(".dnn",), detection="'BCN' and 'BVersion' section markers",
        detect=detect_cntk1, load=f"{_HERE}:refuse_cntk_v1", options=_ANY, not_converted=_CNTK_ADVICE),
    FormatSpec(
        name="dl4j", description="Deeplearning4j ModelSerializer zip", extensions=(".zip",),
        detection="zip with configuration.json and coefficients.bin",
        detect=detect_dl4j, load=f"{_HERE}:refuse_dl4j", options=_ANY,
        not_converted="Deeplearning4j has no ONNX export: rebuild the network in Keras or "
                      "PyTorch with the weights from coefficients.bin, or export the Keras "
                      "model it was imported from, then convert that"),
    FormatSpec(
        name="neon", description="Nervana neon model (pickle)", extensions=(".pkl", ".prm"),
        detection="pickle whose first strings name neon. classes or neon_version "
                  "(scanned, never unpickled)",
        detect=detect_neon, load=f"{_HERE}:refuse_neon", options=_ANY,
        not_converted="neon is discontinued and its pickles run code when loaded: load it in "
                      "neon (Python 2) only if you trust it, rebuild the network in a "
                      "framework with an ONNX exporter, then convert that"),
    FormatSpec(
        name="flax-msgpack", description="Flax checkpoint (msgpack parameters)",
        extensions=(".msgpack",), detection="msgpack map with Flax ndarray leaves (ext type 1)",
        detect=detect_flax, load=f"{_HERE}:refuse_flax", options=_ANY, not_converted=_JAX_ADVICE),
    FormatSpec(
        name="orbax", description="Orbax (JAX) checkpoint directory", extensions=(),
        detection="directory with _CHECKPOINT_METADATA, or _METADATA with manifest.ocdbt",
        detect=detect_orbax, load=f"{_HERE}:refuse_orbax", options=_ANY, not_converted=_JAX_ADVICE),
    FormatSpec(
        name="jax-export", description="jax.export serialized function",
        extensions=(".bin", ".jax"),
        detection="flatbuffer Exported table holding an MLIR bytecode module",
        detect=detect_jax_export, load=f"{_HERE}:refuse_jax_export", options=_ANY,
        not_converted=_JAX_ADVICE),
]
