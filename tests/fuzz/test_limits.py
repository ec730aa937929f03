"""Bugs are exit 3, bad files exit 2; declared sizes, zip bombs and CRCs are checked before
anything is allocated or trusted. Cases that could allocate run in the fork server's child
(memory cap, deadline); the others run the CLI in-process."""

from __future__ import annotations

import shutil
import zipfile

import h5py
import numpy as np
import onnx
import pytest
from onnx import helper

from modelport.cli import main
from modelport.importers.caffe.table import caffe_layer
from tests.fuzz.harness import problem
from tests.importers.tensorflow.models import graph_with_const

NET = """name: "t"
input: "data"
input_shape { dim: 1 dim: 3 dim: 4 dim: 4 }
layer { name: "relu" type: "ReLU" bottom: "data" top: "relu" }
"""


def _cli(capsys, *argv):
    try:
        main([str(a) for a in argv] + ["--quiet"])
        code = 0
    except SystemExit as exc:
        code = exc.code
    return code, capsys.readouterr().err


def _one_line_refusal(code, err, name):
    assert code == 2, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and name in lines[0] and "internal error" not in err, err


@pytest.mark.parametrize("error", [KeyError("oops"), ValueError("bad"), RuntimeError("bug")])
def test_a_broken_translator_is_an_internal_error(tmp_path, capsys, monkeypatch, error):
    """A translator raising (even KeyError/ValueError, which parsers raise on bad files) is a
    bug of modelport: exit 3 with the internal-error line, never 'cannot be read'."""
    proto = tmp_path / "net.prototxt"
    proto.write_text(NET)
    code, err = _cli(capsys, "convert", proto, "-o", tmp_path / "ok.onnx", "--random-weights")
    assert code == 0, err

    def broken(ctx, layer, inputs):
        raise error

    monkeypatch.setattr(caffe_layer, "get", lambda name, _get=caffe_layer.get:
                        broken if name == "ReLU" else _get(name))
    code, err = _cli(capsys, "convert", proto, "-o", tmp_path / "bad.onnx", "--random-weights")
    assert code == 3, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "internal error" in lines[0] and "--debug" in lines[0], err
    assert type(error).__name__ in lines[0] and "cannot be read" not in err
    assert not (tmp_path / "bad.onnx").exists()


def test_malformed_inputs_are_exit_2(tmp_path, capsys, seeds):
    cases = {
        "garbage.prototxt": b'input: "data"\nlayer { name: "x" type: ',
        "deep.prototxt": b'input: "data"\ninput_shape { dim: 1 }\n' + b"layer { " * 5000,
        "cut.onnx": (seeds / "seed.onnx").read_bytes()[:3000],
        "cut.h5": (seeds / "seed.h5").read_bytes()[:6000],
        "notzip.keras": b"PK\x03\x04" + b"\x00" * 200,
        "bad.caffemodel": (seeds / "seed.caffemodel").read_bytes()[:700],
    }
    for name, data in cases.items():
        src = tmp_path / name
        src.write_bytes(data)
        argv = ["convert", src, "-o", tmp_path / "o.onnx"]
        if name.endswith(".caffemodel"):
            argv = ["convert", seeds / "seed.prototxt", "--weights", src, "-o",
                    tmp_path / "o.onnx"]
        code, err = _cli(capsys, *argv)
        _one_line_refusal(code, err, name)


def test_keras_archive_with_a_bad_weight_crc_is_refused(tmp_path, capsys, seeds):
    src = tmp_path / "m.keras"
    shutil.copy(seeds / "seed.keras", src)
    code, err = _cli(capsys, "convert", src, "-o", tmp_path / "ok.onnx")
    assert code == 0, err
    with zipfile.ZipFile(src) as z:
        info = z.getinfo("model.weights.h5")
        assert info.compress_type == zipfile.ZIP_STORED  # what Keras writes
    data = bytearray(src.read_bytes())
    # Flip one byte near the end of the member (weight data, not HDF5 metadata).
    start = info.header_offset + 30 + len(info.filename)
    data[start + info.file_size - 600] ^= 0x40
    src.write_bytes(bytes(data))
    code, err = _cli(capsys, "convert", src, "-o", tmp_path / "bad.onnx")
    _one_line_refusal(code, err, "m.keras")
    assert "CRC" in err


def test_keras_archive_zip_bomb_is_refused(tmp_path, capsys, seeds):
    src = tmp_path / "bomb.keras"
    with zipfile.ZipFile(seeds / "seed.keras") as z_in, \
            zipfile.ZipFile(src, "w", compression=zipfile.ZIP_DEFLATED) as z_out:
        for name in ("config.json", "metadata.json"):
            z_out.writestr(name, z_in.read(name))
        z_out.writestr("model.weights.h5", b"\0" * (16 << 20))  # 16 MiB -> ~16 KiB
    code, err = _cli(capsys, "convert", src, "-o", tmp_path / "o.onnx")
    _one_line_refusal(code, err, "bomb.keras")
    assert "zip bomb" in err


def test_hdf5_dataset_claiming_1e12_elements_is_refused(tmp_path, fuzz_server, seeds):
    src = tmp_path / "huge.h5"
    shutil.copy(seeds / "seed.h5", src)
    with h5py.File(src, "r+") as h:
        group = h["model_weights/fc"]
        name = [n.decode() if isinstance(n, bytes) else n for n in group.attrs["weight_names"]][0]
        del group[name]
        group.create_dataset(name, shape=(1_000_000, 1_000_000), dtype="f4")  # nothing stored
    outcome = fuzz_server.run(["convert", src, "-o", tmp_path / "o.onnx", "--quiet"],
                              timeout=60, mem_mb=1024)
    assert problem(outcome, ["huge.h5"]) is None and outcome.rc == 2, outcome.stderr
    assert "declares shape [1000000, 1000000]" in outcome.stderr


def test_caffe_shapes_claiming_1e12_elements_are_refused(tmp_path, fuzz_server, seeds):
    from modelport.protowire import encode_key, encode_varint
    from tests.oracles.caffe_write import _blob_header

    proto = tmp_path / "huge.prototxt"
    proto.write_text('input: "data"\ninput_shape { dim: 1 dim: 1000000 dim: 1000000 }\n'
                     'layer { name: "relu" type: "ReLU" bottom: "data" top: "relu" }\n')
    outcome = fuzz_server.run(["convert", proto, "-o", tmp_path / "o.onnx", "--quiet",
                               "--random-weights"], timeout=60, mem_mb=1024)
    assert problem(outcome, ["huge.prototxt"]) is None and outcome.rc == 2, outcome.stderr
    # A caffemodel blob whose shape claims 10^12 values but holds four.
    values = np.zeros(4, "<f4").tobytes()
    blob = _blob_header((1_000_000, 1_000_000), len(values)) + values
    layer = (encode_key(1) + encode_varint(2) + b"fc" + encode_key(7) +
             encode_varint(len(blob)) + blob)
    weights = tmp_path / "huge.caffemodel"
    weights.write_bytes(encode_key(1) + encode_varint(1) + b"t" + encode_key(100) +
                        encode_varint(len(layer)) + layer)
    outcome = fuzz_server.run(["convert", seeds / "seed.prototxt", "--weights", weights, "-o",
                               tmp_path / "o.onnx", "--quiet"], timeout=60, mem_mb=1024)
    assert problem(outcome, ["huge.caffemodel"]) is None and outcome.rc == 2, outcome.stderr


def test_onnx_tensor_claiming_1e12_elements_is_refused(tmp_path, fuzz_server):
    t = onnx.TensorProto(name="w", data_type=onnx.TensorProto.FLOAT,
                         dims=[1_000_000, 1_000_000], raw_data=b"\0" * 16)
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "w"], ["y"])], "g",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 1])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)], [t])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    src = tmp_path / "huge.onnx"
    src.write_bytes(model.SerializeToString())
    outcome = fuzz_server.run(["convert", src, "-o", tmp_path / "o.onnx", "--quiet"],
                              timeout=60, mem_mb=1024)
    assert problem(outcome, ["huge.onnx"]) is None and outcome.rc == 2, outcome.stderr


@pytest.mark.parametrize("case", ["empty-1e12", "content-short", "content-long"])
def test_tensorflow_constant_sizes_are_checked_before_allocating(tmp_path, fuzz_server, case):
    """A Const claiming 10^12 zeros, or whose tensor_content does not fill its (lazily read,
    over 1024 elements) shape, is refused at import, not at export or by the memory cap."""
    src = tmp_path / "huge.pb"
    if case == "empty-1e12":
        graph_with_const(src, dims=[1_000_000, 1_000_000])
    else:
        n = 2048 * 4 + (-4 if case == "content-short" else 4)
        graph_with_const(src, dims=[1024, 2], content=b"\0" * n)
    outcome = fuzz_server.run(["convert", src, "-o", tmp_path / "o.onnx", "--quiet"],
                              timeout=60, mem_mb=1024)
    assert problem(outcome, ["huge.pb"]) is None and outcome.rc == 2, outcome.stderr
    assert "shape" in outcome.stderr, outcome.stderr
    graph_with_const(src, dims=[1024, 2], content=b"\0" * 2048 * 4)
    outcome = fuzz_server.run(["convert", src, "-o", tmp_path / "o.onnx", "--quiet"],
                              timeout=60, mem_mb=1024)
    assert outcome.rc == 0, outcome.stderr  # the same graph, sizes consistent: converts


def test_mxnet_params_claiming_1e12_elements_are_refused(tmp_path, fuzz_server, seeds):
    import struct

    from modelport.importers.mxnet.params import V2_MAGIC

    data = np.zeros(4, "<f4").tobytes()
    array = struct.pack("<Iii", V2_MAGIC, 0, 2) + struct.pack("<qq", 1_000_000, 1_000_000)
    array += struct.pack("<iii", 1, 0, 0) + data
    name = b"arg:conv1_weight"
    params = struct.pack("<QQQ", 0x112, 0, 1) + array + struct.pack("<QQ", 1, len(name)) + name
    src = tmp_path / "huge.params"
    src.write_bytes(params)
    outcome = fuzz_server.run(["convert", seeds / "conv2d-symbol.json", "--weights", src,
                               "--input", "data:1,3,17,19", "-o", tmp_path / "o.onnx",
                               "--quiet"], timeout=60, mem_mb=1024)
    assert problem(outcome, ["huge.params"]) is None and outcome.rc == 2, outcome.stderr
