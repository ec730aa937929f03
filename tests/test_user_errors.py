"""User mistakes through the command line: exit 2, one line on stderr naming the problem, no
traceback, no output file left. Never exit 3 (that is for bugs of modelport)."""

import os
import subprocess
import sys

import numpy as np
import onnx
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def cli(*args, cwd=None):
    env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run([sys.executable, "-m", "modelport", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd or ROOT, env=env)


def assert_user_error(r, needle, *outputs):
    lines = [line for line in r.stderr.strip().splitlines() if line.startswith("modelport:")]
    assert r.returncode == 2, r.stderr
    assert len(lines) == 1 and needle in lines[0], r.stderr
    assert "Traceback" not in r.stderr and "internal error" not in r.stderr
    for out in outputs:
        assert not os.path.exists(out), out


ONNX_CASES = [
    (["--input", "image:1,3,32"], "has rank 4"),
    (["--input", "image:1,4,32,32"], "dim 1 of the model's input is fixed at 3, got 4"),
    (["--input", "image:1,3,99999999999999999999,32"], "does not fit in 64 bits"),
    (["--input", "image:9223372036854775807,3,32,32"], "more elements than 64 bits can count"),
    (["--input", "image:100000000000,3,32,32"], "verification ran out of memory"),
    (["--input", "image:1,3,32,32:float33"], "unknown dtype 'float33'"),
    (["--input", "image:batchx3x32x32"], "separate dims with commas"),
    (["--opset", "99"], "--opset 99: modelport writes ONNX opsets 7 to"),
    (["--opset", "13"], "opsets 14 to"),
    (["--dynamic", "batch"], "does not take --dynamic"),
    (["--nchw-inputs"], "does not take --nchw-inputs"),
    (["--weights", "w.bin"], "does not take --weights"),
    (["--random-weights"], "does not take --random-weights"),
    (["--input", "image:1,3,32,32:float32"], "does not take a dtype in --input"),
]


@pytest.mark.parametrize("args, needle", ONNX_CASES, ids=[" ".join(a) for a, _ in ONNX_CASES])
def test_onnx_source_mistakes(sample_onnx, tmp_path, args, needle):
    out = tmp_path / "o.onnx"
    r = cli("convert", sample_onnx, "-o", out, "--verify", *args)
    assert_user_error(r, needle, out)


def test_opset_error_has_no_converter_traceback(sample_onnx, tmp_path):
    r = cli("convert", sample_onnx, "-o", tmp_path / "o.onnx", "--opset", "13")
    assert_user_error(r, "--opset 13", tmp_path / "o.onnx")
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr


@pytest.fixture
def npz_files(tmp_path):
    files = {
        "shape": {"image": np.zeros((1, 3, 16, 16), np.float32)},
        "rank": {"image": np.zeros((3, 32, 32), np.float32)},
        "name": {"picture": np.zeros((1, 3, 32, 32), np.float32)},
        "extra": {"image": np.zeros((1, 3, 32, 32), np.float32), "mask": np.zeros(3)},
    }
    paths = {}
    for key, arrays in files.items():
        paths[key] = tmp_path / f"{key}.npz"
        np.savez(paths[key], **arrays)
    return paths


@pytest.mark.parametrize("key, needle", [
    ("shape", "has shape 1x3x16x16, but the converted model's input takes batchx3x32x32"),
    ("rank", "has shape 3x32x32"),
    ("name", "no array for input(s) image (it has picture)"),
    ("extra", "array(s) mask name no input"),
])
def test_inputs_npz_that_does_not_fit(sample_onnx, tmp_path, npz_files, key, needle):
    r = cli("verify", sample_onnx, sample_onnx, "--inputs", npz_files[key])
    assert_user_error(r, needle)
    out = tmp_path / "o.onnx"
    r = cli("convert", sample_onnx, "-o", out, "--verify", "--inputs", npz_files[key])
    assert_user_error(r, needle, out)


def test_verify_maps_differently_named_inputs_by_position(sample_onnx, tmp_path):
    proto = onnx.load(sample_onnx)
    for node in proto.graph.node:
        node.input[:] = ["pixels" if i == "image" else i for i in node.input]
    proto.graph.input[0].name = "pixels"
    renamed = tmp_path / "renamed.onnx"
    onnx.save(proto, renamed)
    r = cli("verify", sample_onnx, renamed)
    assert r.returncode == 0, r.stderr
    assert "inputs matched by position: pixels->image" in r.stdout and "PASS" in r.stdout

    # Another input count cannot be matched: one line, exit 2.
    two = onnx.load(renamed)
    two.graph.input.append(onnx.helper.make_tensor_value_info("other", 1, [1]))
    onnx.save(two, tmp_path / "two.onnx")
    r = cli("verify", sample_onnx, tmp_path / "two.onnx")
    assert_user_error(r, "their counts differ")

    # Same count, but the shapes by position disagree.
    wide = onnx.load(renamed)
    wide.graph.input[0].type.tensor_type.shape.dim[1].dim_value = 4
    onnx.save(wide, tmp_path / "wide.onnx")
    r = cli("verify", sample_onnx, tmp_path / "wide.onnx")
    assert_user_error(r, "cannot be matched")


# -- Keras and Caffe sources ------------------------------------------------------------------
@pytest.fixture(scope="module")
def keras_model(tmp_path_factory):
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import keras
    x = keras.Input((8, 8, 3), name="img")
    y = keras.layers.Conv2D(4, 3, name="conv")(x)
    y = keras.layers.GlobalAveragePooling2D(name="gap")(y)
    model = keras.Model(x, keras.layers.Dense(2, name="fc")(y))
    path = tmp_path_factory.mktemp("keras") / "small.keras"
    model.save(path)
    return path


@pytest.mark.parametrize("args, needle", [
    (["--input", "img:1,8,8"], "has rank 4"),
    (["--input", "img:1,8,8,4"], "dim 3 of the model's input is fixed at 3, got 4"),
    (["--random-weights"], "does not take --random-weights"),
    (["--dynamic", "batch"], "does not take --dynamic"),
])
def test_keras_source_mistakes(keras_model, tmp_path, args, needle):
    out = tmp_path / "o.onnx"
    assert_user_error(cli("convert", keras_model, "-o", out, *args), needle, out)


def test_verify_keras_against_an_unrelated_onnx(keras_model, sample_onnx):
    r = cli("verify", keras_model, sample_onnx)
    assert_user_error(r, "matched to the source's by position, do not fit it")


CAFFE = """name: "n"
input: "data"
input_shape { dim: 1 dim: 3 dim: 8 dim: 8 }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
        convolution_param { num_output: 4 kernel_size: 3 } }
"""


@pytest.mark.parametrize("args, needle", [
    (["--input", "data:1,3,8"], "has rank 4"),
    (["--input", "data:batch,3,8,8"], "a Caffe net has fixed dims"),
    (["--dynamic", "batch"], "does not take --dynamic"),
    (["--nchw-inputs"], "does not take --nchw-inputs"),
    (["--trust-code"], "does not take --trust-code"),
])
def test_caffe_source_mistakes(tmp_path, args, needle):
    proto = tmp_path / "n.prototxt"
    proto.write_text(CAFFE)
    out = tmp_path / "o.onnx"
    assert_user_error(cli("convert", proto, "-o", out, "--random-weights", *args), needle, out)
