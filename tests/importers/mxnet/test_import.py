"""The MXNet importer without MXNet: file formats, detection, errors, params discovery."""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
import sys

import numpy as np
import pytest

from modelport.errors import InvalidModelError, UnsupportedOpsError
from modelport.importers.mxnet.ops.shape import mxnet_reshape as check_reshape
from modelport.importers.mxnet.params import V1_MAGIC, V2_MAGIC, V3_MAGIC, ParamsFile
from modelport.importers.mxnet.symbol import parse_symbol
from modelport.importers.registry import LoadOptions, detect_format
from tests.importers.mxnet.helpers import FIXTURES, ROOT


def _array(version: str, arr: np.ndarray, flag: int) -> bytes:
    """One NDArray as MXNet writes it (format facts: src/ndarray/ndarray.cc Save/Load)."""
    shape = arr.shape
    if version == "legacy":  # before the magics: uint32 ndim, uint32 dims
        head = struct.pack("<I", len(shape)) + struct.pack(f"<{len(shape)}I", *shape)
    else:
        shape64 = struct.pack("<i", len(shape)) + struct.pack(f"<{len(shape)}q", *shape)
        if version == "v1":
            head = struct.pack("<I", V1_MAGIC) + shape64
        else:
            magic = V2_MAGIC if version == "v2" else V3_MAGIC
            head = struct.pack("<Ii", magic, 0) + shape64
    return head + struct.pack("<iii", 1, 0, flag) + arr.tobytes()


def _params(arrays: list[bytes], names: list[str]) -> bytes:
    out = struct.pack("<QQQ", 0x112, 0, len(arrays)) + b"".join(arrays)
    out += struct.pack("<Q", len(names))
    for n in names:
        out += struct.pack("<Q", len(n.encode())) + n.encode()
    return out


@pytest.mark.parametrize("version", ["legacy", "v1", "v2", "v3"])
def test_params_versions(version, tmp_path):
    w = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    b = np.asarray([1.5, -2.0], np.float64)
    path = tmp_path / "m-0000.params"
    path.write_bytes(_params([_array(version, w, 0), _array(version, b, 1)],
                             ["arg:w", "aux:b"]))
    p = ParamsFile(str(path))
    assert [r.name for r in p.arrays] == ["arg:w", "aux:b"]
    np.testing.assert_array_equal(p.reader(p.lookup("w"))(), w)
    np.testing.assert_array_equal(p.reader(p.lookup("b", "aux"))(), b)


def test_params_bfloat16_widened(tmp_path):
    values = np.asarray([1.0, -2.5, 0.15625], np.float32)
    bits = (values.view(np.uint32) >> 16).astype(np.uint16)
    path = tmp_path / "bf.params"
    path.write_bytes(_params([_array("v2", bits, 12)], ["arg:x"]))
    p = ParamsFile(str(path))
    np.testing.assert_array_equal(p.reader(p.arrays[0])(), values)


@pytest.mark.parametrize("cut", [10, 40, -3])
def test_truncated_params_is_a_clear_error(cut, tmp_path):
    data = (FIXTURES / "conv2d-0000.params").read_bytes()
    path = tmp_path / "t-0000.params"
    path.write_bytes(data[:cut] if cut > 0 else data[:cut])
    with pytest.raises(InvalidModelError, match="not a valid MXNet .params file"):
        ParamsFile(str(path))


def test_declared_size_is_checked(tmp_path):
    w = np.zeros((4, 4), np.float32)
    blob = _array("v2", w, 0)
    blob = blob.replace(struct.pack("<q", 4) + struct.pack("<q", 4),
                        struct.pack("<q", 400) + struct.pack("<q", 4))
    path = tmp_path / "big.params"
    path.write_bytes(_params([blob], ["arg:w"]))
    with pytest.raises(InvalidModelError, match="runs past the end"):
        ParamsFile(str(path))


def test_detection_by_content(tmp_path):
    sym = tmp_path / "model.txt"
    shutil.copy(FIXTURES / "conv2d-symbol.json", sym)
    assert detect_format(str(sym)).name == "mxnet"
    assert detect_format(str(FIXTURES / "legacy_0800-symbol.json")).name == "mxnet"
    params = tmp_path / "weights.bin"
    shutil.copy(FIXTURES / "conv2d-0000.params", params)
    assert detect_format(str(params)).name == "mxnet"


def test_legacy_json_is_parsed():
    data = json.loads((FIXTURES / "legacy_0800-symbol.json").read_text())
    sym = parse_symbol(data)
    assert sym.legacy
    fc1 = next(n for n in sym.nodes if n.name == "fc1")
    assert fc1.attrs.int("num_hidden") == 128 and fc1.inputs == [(0, 0), (1, 0), (2, 0)]
    assert "ctx_group" in fc1.user and "ctx_group" not in fc1.attrs.raw


def _convert(args, tmp_path):
    return subprocess.run([sys.executable, "-m", "modelport", "convert", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)


def test_missing_input_shape_says_how(tmp_path):
    shutil.copy(FIXTURES / "conv2d-symbol.json", tmp_path)
    shutil.copy(FIXTURES / "conv2d-0000.params", tmp_path)
    out = tmp_path / "m.onnx"
    proc = _convert([str(tmp_path / "conv2d-symbol.json"), "-o", str(out)], tmp_path)
    assert proc.returncode == 2
    assert "--input data:" in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not out.exists()


def test_params_found_beside_highest_epoch_and_weights_chooses(tmp_path):
    shutil.copy(FIXTURES / "conv2d-symbol.json", tmp_path)
    shutil.copy(FIXTURES / "conv2d-0000.params", tmp_path / "conv2d-0003.params")
    (tmp_path / "conv2d-0001.params").write_bytes(b"\x12\x01" + b"\x00" * 30)  # corrupt
    out = tmp_path / "m.onnx"
    proc = _convert([str(tmp_path / "conv2d-symbol.json"), "-o", str(out), "--input",
                     "data:2,3,17,19"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    proc = _convert([str(tmp_path / "conv2d-symbol.json"), "-o", str(out), "--force",
                     "--input", "data:2,3,17,19", "--weights",
                     str(tmp_path / "conv2d-0001.params")], tmp_path)
    assert proc.returncode == 2 and "conv2d-0001.params" in proc.stderr
    assert "Traceback" not in proc.stderr


def _conv_node(data):
    return next(n for n in data["nodes"] if n["op"] == "Convolution")


def _attrs(node):
    return node.setdefault("attrs", node.get("attr", node.get("param", {})))


@pytest.mark.parametrize("edit, message", [
    (lambda a: a.update(kernel="(3, x)"), "parameter kernel='(3, x)' is not a valid value"),
    (lambda a: a.update(no_bias="maybe"), "parameter no_bias='maybe' is not a boolean"),
    (lambda a: a.pop("num_filter"), "required parameter 'num_filter' is missing"),
])
def test_malformed_parameters_are_the_files_problem(edit, message, tmp_path):
    """A parameter MXNet could not have written is exit 2, naming the file and the node."""
    data = json.loads((FIXTURES / "conv2d-symbol.json").read_text())
    node = _conv_node(data)
    edit(_attrs(node))
    (tmp_path / "bad-symbol.json").write_text(json.dumps(data))
    shutil.copy(FIXTURES / "conv2d-0000.params", tmp_path / "bad-0000.params")
    out = tmp_path / "m.onnx"
    proc = _convert([str(tmp_path / "bad-symbol.json"), "-o", str(out), "--input",
                     "data:1,3,17,19"], tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr and node["name"] in proc.stderr
    assert "bad-symbol.json" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert not out.exists()


def test_a_translator_bug_is_not_blamed_on_the_file(tmp_path, monkeypatch):
    """An exception a translator did not mean (here a KeyError) is ours: it propagates as is,
    and the CLI reports it as an internal error (exit 3), not as a corrupt file."""
    from modelport.importers.mxnet.load import build
    from modelport.importers.mxnet.params import ParamsFile as PF
    from modelport.importers.mxnet.table import mxnet_op

    def broken(ctx, node, inputs):
        return {}["missing"]

    monkeypatch.setitem(mxnet_op._table, "Activation", broken)
    sym = parse_symbol(json.loads((FIXTURES / "conv2d-symbol.json").read_text()))
    with pytest.raises(KeyError):
        build(sym, PF(str(FIXTURES / "conv2d-0000.params")),
              LoadOptions(input_shapes={"data": [1, 3, 17, 19]}), "x-symbol.json")


def test_unsupported_ops_are_reported_together(tmp_path):
    data = json.loads((FIXTURES / "conv2d-symbol.json").read_text())
    for node in data["nodes"]:
        if node["name"] == "relu1":
            node["op"] = "MyOpA"
        if node["name"] == "flat":
            node["op"] = "MyOpB"
    from modelport.importers.mxnet.load import build
    from modelport.importers.mxnet.params import ParamsFile as PF

    sym = parse_symbol(data)
    with pytest.raises(UnsupportedOpsError) as err:
        build(sym, PF(str(FIXTURES / "conv2d-0000.params")),
              LoadOptions(input_shapes={"data": [1, 3, 17, 19]}), "x-symbol.json")
    assert set(err.value.ops) == {"MyOpA", "MyOpB"}


def test_conversion_never_imports_mxnet(tmp_path):
    """In a process where `import mxnet` fails, conversion still works."""
    code = f"""
import sys
sys.modules["mxnet"] = None  # any import of mxnet now raises ImportError
from modelport.convert.pipeline import convert
from modelport.importers.registry import LoadOptions
convert({str(FIXTURES / 'conv2d-symbol.json')!r}, {str(tmp_path / 'm.onnx')!r},
        options=LoadOptions(input_shapes={{"data": [2, 3, 17, 19]}}))
assert "mxnet" not in [m for m in sys.modules if sys.modules[m] is not None]
print("ok")
"""
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr


@pytest.mark.parametrize("src,spec,reverse,want", [
    ((2, 3, 4), (4, 0, 2), False, [4, 3, 2]),
    ((2, 3, 4), (0, -1), False, [2, 12]),
    ((2, 3, 4), (-2,), False, [2, 3, 4]),
    ((2, 3, 4, 5), (-3, -2), False, [6, 4, 5]),
    ((2, 3, 4), (-4, 1, 2, -2), False, [1, 2, 3, 4]),
    ((2, 3, 4), (2, -4, -1, 3, -2), False, [2, 1, 3, 4]),
    ((10, 5, 4), (-1, 0), True, [50, 4]),
    ((10, 5, 4), (-1, 0), False, [40, 5]),
])
def test_reshape_codes(src, spec, reverse, want):
    """The examples of MXNet's Reshape documentation."""
    assert check_reshape(src, spec, reverse) == want
