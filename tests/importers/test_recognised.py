"""Formats modelport recognises but does not convert: each small file below is built byte by
byte the way its framework writes it, and `modelport convert` answers in one line (exit 2)
naming the format and what to do. `modelport formats` lists them; none is ever loaded."""

from __future__ import annotations

import json
import os
import pickle
import struct
import subprocess
import sys
import zipfile

import pytest

from modelport.errors import ModelportError
from modelport.importers.registry import NotConvertedError, detect_format, formats
from modelport.protowire import encode_field, encode_varint

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
JAX_ADVICE = "a JAX model is code; export it with jax2onnx, then convert the ONNX"


# -- protobuf, msgpack and flatbuffer bytes, written by hand ------------------------------------
varint = encode_varint
ld = encode_field


def vi(field: int, value: int) -> bytes:
    return varint(field << 3) + varint(value)


def cntk_value(kind: int, payload: bytes) -> bytes:
    """CNTK.proto DictionaryValue: version 1, value_type, then the value field."""
    return vi(1, 1) + vi(2, kind) + payload


def cntk_dictionary(entries: list[tuple[str, bytes]]) -> bytes:
    """CNTK.proto Dictionary: version (1), then map<string, DictionaryValue> data (2)."""
    body = vi(1, 1)
    for key, value in entries:
        body += ld(2, ld(1, key.encode()) + ld(2, value))
    return body


def cntk_model(magic: bool = False, kind: str = "CompositeFunction") -> bytes:
    floats = struct.pack("<2000f", *range(2000))
    # NDArrayView: data_type Float (1), shape (3), float_values (4)
    view = vi(1, 1) + ld(3, ld(1, varint(2000))) + ld(4, ld(1, floats))
    param = cntk_dictionary([("uid", cntk_value(6, ld(8, b"Parameter3"))),
                             ("value", cntk_value(11, ld(13, view)))])
    entries = [
        ("version", cntk_value(3, vi(5, 1))),
        ("uid", cntk_value(6, ld(8, b"CompositeFunction7"))),
        ("primitive_functions", cntk_value(9, ld(11, ld(1, cntk_value(10, ld(12, param)))))),
        ("type", cntk_value(6, ld(8, kind.encode()))),  # map order is not fixed: after the data
        ("root", cntk_value(6, ld(8, b"Plus12"))),
    ]
    body = cntk_dictionary(entries)
    if magic:  # models over 2 GB: magic number and the metadata size before the protobuf
        body = struct.pack("<II", 0x636E746B, len(body)) + body
    return body


def wide(text: str) -> bytes:
    return text.encode("utf-16-le") + b"\0\0"


def cntk_v1_model() -> bytes:
    return (wide("BCN") + wide("BVersion") + struct.pack("<Q", 27) + wide("EVersion")
            + struct.pack("<Q", 3) + wide("BNodeList") + wide("LearnableParameter")
            + wide("W0") + struct.pack("<Q", 1) + wide("ENodeList") + wide("ECN"))


def msgpack_str(s: str) -> bytes:
    b = s.encode()
    return bytes([0xA0 | len(b)]) + b


def flax_leaf(shape: tuple[int, ...], values: bytes) -> bytes:
    # flax.serialization: ext type 1 holding msgpack (shape, dtype name, buffer)
    payload = bytes([0x93, 0x90 | len(shape)]) + bytes(shape) + msgpack_str("float32") \
        + bytes([0xC4, len(values)]) + values
    return bytes([0xC7, len(payload), 0x01]) + payload


def flax_params() -> bytes:
    kernel = flax_leaf((3, 4), struct.pack("<12f", *range(12)))
    bias = flax_leaf((4,), struct.pack("<4f", *range(4)))
    dense = bytes([0x82]) + msgpack_str("kernel") + kernel + msgpack_str("bias") + bias
    layer = bytes([0x81]) + msgpack_str("Dense_0") + dense
    return bytes([0x81]) + msgpack_str("params") + layer


def jax_exported() -> bytes:
    """A flatbuffer with root table Exported: version (slot 0), function_name (slot 1),
    mlir_module_serialized (slot 13) holding MLIR bytecode."""
    slots = 14
    vtable_at = 4
    vt_size = 4 + 2 * slots
    table_at = vtable_at + vt_size
    offsets = [0] * slots
    offsets[0], offsets[1], offsets[13] = 4, 8, 12
    table_size = 16
    name = b"main"
    mlir = b"ML\xefR" + b"\x06" + b"StableHLO_v1.9.5\x00" + bytes(range(40))
    name_at = table_at + table_size
    name_blob = struct.pack("<I", len(name)) + name + b"\0"
    name_blob += b"\0" * (-len(name_blob) % 4)
    mlir_at = name_at + len(name_blob)
    out = struct.pack("<I", table_at)
    out += struct.pack("<HH", vt_size, table_size) + struct.pack(f"<{slots}H", *offsets)
    out += struct.pack("<i", table_at - vtable_at)
    out += struct.pack("<H", 6) + b"\0\0"
    out += struct.pack("<I", name_at - (table_at + 8))
    out += struct.pack("<I", mlir_at - (table_at + 12))
    out += name_blob + struct.pack("<I", len(mlir)) + mlir
    return out


class Boom:
    """Unpickling this runs code: detection must never do it."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def neon_pickle(marker: str) -> bytes:
    # neon.util.persist.save_obj: pickle protocol 2 of Model.serialize()'s dict
    model = {"neon_version": "2.6.0", "backend": {"rng_state": None},
             "epoch_index": 3,
             "model": {"type": "neon.layers.container.Tree",
                       "config": {"layers": [{"type": "neon.layers.layer.Linear",
                                              "config": {"nout": 10}}]}},
             "hook": Boom(marker)}
    return pickle.dumps(model, protocol=2)


def dl4j_zip(path) -> None:
    conf = {"backprop": True, "backpropType": "Standard", "confs": [
        {"layer": {"dense": {"nin": 4, "nout": 3, "activationFn": {"ReLU": {}}}}, "seed": 1}],
        "pretrain": False}
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("configuration.json", json.dumps(conf))
        z.writestr("coefficients.bin", b"\x00\x00\x00\x02" + struct.pack(">15f", *range(15)))
        z.writestr("updaterState.bin", b"\x00" * 16)


# -- the cases ----------------------------------------------------------------------------------
def _write(tmp_path, name, data: bytes):
    path = tmp_path / name
    path.write_bytes(data)
    return path


def make_cases(tmp_path):
    cases = {}
    cases["cntk"] = (_write(tmp_path, "model.model", cntk_model()), "CNTK v2", "ONNX")
    cases["cntk-big"] = (_write(tmp_path, "big", cntk_model(magic=True)), "CNTK v2", "ONNX")
    cases["cntk-v1"] = (_write(tmp_path, "net.dnn", cntk_v1_model()), "CNTK v1", "ONNX")
    dl4j = tmp_path / "dl4j.zip"
    dl4j_zip(dl4j)
    cases["dl4j"] = (dl4j, "Deeplearning4j", "no ONNX export")
    marker = tmp_path / "UNPICKLED"
    cases["neon"] = (_write(tmp_path, "neon.prm", neon_pickle(str(marker))), "neon",
                     "run code when loaded")
    cases["flax-msgpack"] = (_write(tmp_path, "params.msgpack", flax_params()), "Flax",
                             JAX_ADVICE)
    ckpt = tmp_path / "ckpt" / "100"
    (ckpt / "default" / "d").mkdir(parents=True)
    (ckpt / "_CHECKPOINT_METADATA").write_text(json.dumps({"item_handlers": {}}))
    (ckpt / "default" / "_METADATA").write_text(json.dumps({"tree_metadata": {}}))
    (ckpt / "default" / "manifest.ocdbt").write_bytes(b"\x0a\x00")
    cases["orbax"] = (ckpt, "Orbax", JAX_ADVICE)
    cases["orbax-item"] = (ckpt / "default", "Orbax", JAX_ADVICE)
    cases["orbax-manager"] = (tmp_path / "ckpt", "Orbax", JAX_ADVICE)
    cases["jax-export"] = (_write(tmp_path, "f.jax_exported", jax_exported()), "jax.export",
                           JAX_ADVICE)
    return cases, marker


@pytest.fixture
def cases(tmp_path):
    return make_cases(tmp_path)


@pytest.mark.parametrize("case", ["cntk", "cntk-big", "cntk-v1", "dl4j", "neon", "flax-msgpack",
                                  "orbax", "orbax-item", "orbax-manager", "jax-export"])
def test_one_line_answer(cases, tmp_path, case):
    table, marker = cases
    path, name, advice = table[case]
    with pytest.raises(NotConvertedError) as info:
        detect_format(path)
    assert name in str(info.value) and advice in str(info.value)
    assert "recognises this format but does not convert it" in str(info.value)
    assert isinstance(info.value, ModelportError) and info.value.exit_code == 2
    out = tmp_path / f"{case}.onnx"
    r = subprocess.run([sys.executable, "-m", "modelport", "convert", str(path), "-o", str(out)],
                       cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, (r.stdout, r.stderr)
    err = r.stderr.strip().splitlines()
    assert len(err) == 1 and str(path) in err[0] and advice in err[0], err
    assert not out.exists()
    assert not marker.exists(), "the neon pickle was unpickled"


def _not_recognised(path) -> bool:
    """Detection does not give the recognised-only answer (another format or none may)."""
    try:
        detect_format(path)
    except NotConvertedError:
        return False
    except ModelportError:
        pass
    return True


def test_lookalikes_are_not_recognised(tmp_path):
    # A CNTK Dictionary that is not a model, a pickle without neon, a zip without
    # coefficients.bin, a msgpack map without ndarray leaves, an empty directory.
    checks = {
        "dict.bin": cntk_model(kind="PrimitiveFunction"),
        "plain.pkl": pickle.dumps({"epoch": 3, "weights": [1.0, 2.0]}, protocol=2),
        "map.msgpack": bytes([0x81]) + msgpack_str("a") + bytes([0x01]),
    }
    for name, data in checks.items():
        assert _not_recognised(_write(tmp_path, name, data)), name
    with zipfile.ZipFile(tmp_path / "other.zip", "w") as z:
        z.writestr("configuration.json", "{}")
    assert _not_recognised(tmp_path / "other.zip")
    (tmp_path / "emptydir").mkdir()
    assert _not_recognised(tmp_path / "emptydir")


def test_formats_lists_them_as_recognised_only():
    r = subprocess.run([sys.executable, "-m", "modelport", "formats", "--json"], cwd=ROOT,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    rows = {row["name"]: row for row in json.loads(r.stdout)}
    for name in ("cntk", "cntk-v1", "dl4j", "neon", "flax-msgpack", "orbax", "jax-export"):
        assert rows[name]["convert"] == "recognised, not converted", name
        assert rows[name]["advice"] == formats()[name].not_converted
    assert rows["flax-msgpack"]["advice"] == JAX_ADVICE
    text = subprocess.run([sys.executable, "-m", "modelport", "formats"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120).stdout
    assert "recognised, not converted: a JAX model is code" in text
