"""Torch7 files: detection, the encodings (binary with 8- or 4-byte longs, ASCII), CUDA and
cudnn modules, files from before versioning, shared and strided storages, Lua functions
(never run), hostile and truncated files, the input shape, unsupported modules, --verify,
and converting in a process where torch cannot be imported."""

from __future__ import annotations

import os
import subprocess
import sys

import cv2  # noqa: E402,F401  (the independent reader: installed by the torch7 extra)
import numpy as np
import pytest

from modelport.errors import InvalidModelError, UnsafeModelError, UnsupportedOpsError
from modelport.importers.registry import LoadOptions, detect_format
from modelport.importers.torch7.load import load
from modelport.importers.torch7.reader import load as read_t7
from tests.importers.torch7 import t7writer as w
from tests.importers.torch7.helpers import (
    check_opencv,
    convert_net,
    make_input,
    opencv_forward,
)
from tests.oracles import assert_close, run_onnx

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))
SHAPE = [2, 3, 8, 8]


def small_net(seed=0, cuda=False, prefix="nn", version=1):
    r = np.random.default_rng(seed)
    conv = w.conv(r, 3, 4, 3, pad=1)
    bn = w.batchnorm(r, 4)
    lin = w.linear(r, 4 * 4 * 4, 5)
    mods = [conv, bn, w.module("nn.ReLU", threshold=0, val=0, inplace=True),
            w.module("nn.SpatialMaxPooling", kW=2, kH=2, dW=2, dH=2, padW=0, padH=0,
                     ceil_mode=False),
            w.module("nn.View", size=w.longs([64]), numElements=64, numInputDims=3), lin,
            w.module("nn.SoftMax")]
    for m in mods:
        if prefix != "nn" and m.class_name in ("nn.SpatialConvolution", "nn.ReLU",
                                                "nn.SpatialBatchNormalization",
                                                "nn.SpatialMaxPooling", "nn.SoftMax"):
            m.class_name = prefix + m.class_name[2:]
        m.version = version
        if cuda:
            for k, v in list(m.fields.items()):
                if isinstance(v, w.Tensor) and v.storage is not None:
                    m.fields[k] = w.tensor(v.storage.array.reshape(v.size), cuda=True)
    net = w.sequential(*mods)
    net.version = version
    return net


def cli(*args):
    return subprocess.run([sys.executable, "-m", "modelport", *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)


def test_detection_of_every_encoding(tmp_path):
    net = small_net()
    for name, kwargs in {"b8.t7": {}, "b4.t7": {"long_size": 4}, "a.t7": {"ascii": True},
                         "nosuffix": {}}.items():
        path = tmp_path / name
        w.save(path, net, **kwargs)
        assert detect_format(path).name == "torch7", name
    ckpt = tmp_path / "ckpt.t7"
    w.save(ckpt, {"model": net, "epoch": 3, "opt": {"lr": 0.1}})
    assert detect_format(ckpt).name == "torch7"
    assert load(str(ckpt), LoadOptions(input_shapes={"input": SHAPE})).graph.outputs


@pytest.mark.parametrize("encoding", ["binary8", "binary4", "ascii"])
def test_encodings_match_opencv(tmp_path, encoding):
    net = small_net(1)
    kwargs = {"binary4": {"long_size": 4}, "ascii": {"ascii": True}}.get(encoding, {})
    t7, out = convert_net(tmp_path, net, SHAPE, **kwargs)
    _, info = read_t7(str(t7))
    assert info == {"ascii": encoding == "ascii", "long_size": 4 if encoding == "binary4" else 8}
    x = make_input(SHAPE)
    got = run_onnx(out, {"input": x})["output"]
    if encoding == "binary4":  # OpenCV reads 8-byte longs: it gets the same net written so
        t7 = tmp_path / "same8.t7"
        w.save(t7, net)
    want = opencv_forward(t7, x, binary=encoding != "ascii")
    assert_close(got, want, name=encoding)


def test_cuda_cudnn_and_unversioned_files(tmp_path):
    x = make_input(SHAPE)
    plain = tmp_path / "plain.t7"
    w.save(plain, small_net(2))
    want = opencv_forward(plain, x)
    for name, net in {"cuda": small_net(2, cuda=True, prefix="cudnn"),
                      "cunn": small_net(2, prefix="cunn"),
                      "old": small_net(2, version=None)}.items():
        _, out = convert_net(tmp_path, net, SHAPE, name=name)
        assert_close(run_onnx(out, {"input": x})["output"], want, name=name)


def test_double_tensors_shared_and_strided_storages(tmp_path):
    r = np.random.default_rng(3)
    wt = r.standard_normal((4, 6)).astype(np.float64)
    # One storage holding [bias | weight transposed]: the weight is a strided view of it.
    store = w.Storage(np.concatenate([r.standard_normal(4), wt.T.reshape(-1)]))
    weight = w.Tensor(storage=store, size=(4, 6), stride=(1, 4), offset=4)
    bias = w.Tensor(storage=store, size=(4,), stride=(1,), offset=0)
    lin = w.module("nn.Linear", weight=weight, bias=bias)
    t7, out = convert_net(tmp_path, w.sequential(lin), [3, 6])
    x = make_input([3, 6])
    got = run_onnx(out, {"input": x})["output"]
    # (checked against the definition only: OpenCV 4.x reads a strided weight as contiguous)
    assert_close(got, x @ wt.T + store.array[:4], name="linear")
    contiguous = w.module("nn.Linear", weight=w.tensor(wt), bias=w.tensor(store.array[:4]))
    t7 = tmp_path / "contiguous.t7"
    w.save(t7, w.sequential(contiguous))
    assert_close(got, opencv_forward(t7, x), name="opencv")


def test_functions_in_unused_fields_are_skipped(tmp_path):
    x = make_input(SHAPE)
    plain = tmp_path / "plain.t7"
    w.save(plain, small_net(4))
    net = small_net(4)
    conv = net.fields["modules"][0]
    shared = w.Func(upvalues=[{"name": "k", "value": 3.0}])
    conv.fields["hook"] = shared
    conv.fields["hooks"] = {"a": w.Func(kind=6), "b": w.Func(kind=7), "again": shared}
    net.fields["modules"][1].fields["callback"] = shared  # a back-reference to the function
    _, out = convert_net(tmp_path, net, SHAPE)
    assert_close(run_onnx(out, {"input": x})["output"], opencv_forward(plain, x), name="out")


@pytest.mark.parametrize("where", ["weight", "module", "eps"])
def test_functions_in_used_fields_are_refused(tmp_path, where):
    net = small_net(5)
    if where == "weight":
        net.fields["modules"][0].fields["weight"] = w.Func()
    elif where == "eps":
        net.fields["modules"][1].fields["eps"] = w.Func(kind=6)
    else:
        net.fields["modules"][2] = w.Func()
    path = tmp_path / "f.t7"
    w.save(path, net)
    with pytest.raises(UnsafeModelError, match="holds a Lua function"):
        load(str(path), LoadOptions(input_shapes={"input": SHAPE}))
    r = cli("convert", path, "-o", tmp_path / "f.onnx", "--input", "input:2,3,8,8")
    assert r.returncode == 2, r.stderr
    err = r.stderr.strip().splitlines()
    assert len(err) == 1 and str(path) in err[0] and "Traceback" not in r.stderr, err
    assert not (tmp_path / "f.onnx").exists()


@pytest.mark.parametrize("kwargs", [{}, {"long_size": 4}, {"ascii": True}])
def test_truncated_files_are_invalid(tmp_path, kwargs):
    data = w.dumps(small_net(6), **kwargs)
    path = tmp_path / "cut.t7"
    # (an ASCII file cut by its final newline only is still whole)
    last = len(data) - (3 if kwargs.get("ascii") else 1)
    for cut in sorted({1, 7, 20, 100, len(data) // 3, len(data) // 2, len(data) - 9, last}):
        path.write_bytes(data[:cut])
        with pytest.raises(InvalidModelError):
            load(str(path), LoadOptions(input_shapes={"input": SHAPE}))
    path.write_bytes(data[: len(data) // 2])
    r = cli("convert", path, "-o", tmp_path / "cut.onnx", "--input", "input:2,3,8,8")
    assert r.returncode == 2, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not (tmp_path / "cut.onnx").exists()


def test_declared_sizes_are_checked_before_allocating(tmp_path):
    huge = bytearray(w.dumps(w.sequential(w.linear(np.random.default_rng(0), 3, 2))))
    # Rewrite the first FloatStorage's element count to 2**40.
    name = b"torch.FloatStorage"
    at = huge.index(name) + len(name)
    huge[at:at + 8] = (1 << 40).to_bytes(8, "little")
    path = tmp_path / "huge.t7"
    path.write_bytes(bytes(huge))
    with pytest.raises(InvalidModelError, match="cannot be read as a Torch7 file"):
        read_t7(str(path))
    table = bytearray(w.dumps({"a": 1.0}))
    table[8:12] = (1 << 30).to_bytes(4, "little")  # the table's pair count
    path.write_bytes(bytes(table))
    with pytest.raises(InvalidModelError, match="more than the file can hold"):
        read_t7(str(path))


def test_missing_input_shape_is_one_line(tmp_path):
    path = tmp_path / "m.t7"
    w.save(path, small_net())
    with pytest.raises(InvalidModelError, match="does not record its input shape"):
        load(str(path))
    r = cli("convert", path, "-o", tmp_path / "m.onnx")
    assert r.returncode == 2
    err = r.stderr.strip().splitlines()
    assert len(err) == 1 and "--input input:" in err[0], err


def test_unsupported_modules_are_reported_together(tmp_path):
    net = small_net()
    net.fields["modules"] += [w.module("nn.SpatialFractionalMaxPooling"),
                              w.module("nn.Foo"), w.module("nn.Foo")]
    path = tmp_path / "u.t7"
    w.save(path, net)
    with pytest.raises(UnsupportedOpsError) as info:
        load(str(path), LoadOptions(input_shapes={"input": SHAPE}))
    assert set(info.value.ops) == {"nn.SpatialFractionalMaxPooling", "nn.Foo"}
    assert len(info.value.ops["nn.Foo"]) == 2


def test_cli_verify_against_opencv(tmp_path):
    path = tmp_path / "v.t7"
    w.save(path, small_net(7))
    r = cli("convert", path, "-o", tmp_path / "v.onnx", "--input", "input:2,3,8,8", "--verify")
    assert r.returncode == 0, r.stderr
    assert "OpenCV DNN" in r.stdout and "PASS" in r.stdout, r.stdout
    # A module OpenCV does not read the way Torch7 computes it: the reference says so.
    elu = tmp_path / "elu.t7"
    w.save(elu, w.sequential(w.module("nn.ELU", alpha=1.0)))
    r = cli("convert", elu, "-o", tmp_path / "elu.onnx", "--input", "input:1,3,4,4", "--verify")
    assert r.returncode == 2 and "cannot judge" in r.stderr, (r.stdout, r.stderr)


def test_converting_never_imports_torch(tmp_path):
    path = tmp_path / "n.t7"
    w.save(path, small_net(8))
    out = tmp_path / "n.onnx"
    code = (
        "import sys\n"
        "class NoTorch:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('torch', 'cv2'):\n"
        "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
        "sys.meta_path.insert(0, NoTorch())\n"
        "import modelport\n"
        f"modelport.convert({str(path)!r}, {str(out)!r}, input_shapes={{'input': {SHAPE}}})\n"
        "try:\n"
        "    import torch\n"
        "    print('torch importable')\n"
        "except ImportError:\n"
        "    print('torch blocked')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'cv2')))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split("\n")[:2] == ["torch blocked", "[]"], r.stdout
    x = make_input(SHAPE)
    assert_close(run_onnx(out, {"input": x})["output"], opencv_forward(path, x), name="out")


def test_opencv_reference_runner_matches_direct_opencv(tmp_path):
    from modelport.convert.runners.torch7_opencv import reference

    net = small_net(9)
    got = check_opencv(tmp_path, net, SHAPE)
    ref = reference(str(tmp_path / "net.t7"), LoadOptions(input_shapes={"input": SHAPE}))
    assert_close(got, ref.run({"input": make_input(SHAPE)})["output"], name="runner")


def test_opencv_reference_gives_torch_shapes(tmp_path):
    # Torch drops the batch axis of a 1 x 48 View (a vector); OpenCV keeps it: the reference
    # reshapes where only size-1 axes differ, so verification compares like with like.
    from modelport.convert.runners.torch7_opencv import reference

    r = np.random.default_rng(10)
    net = w.sequential(w.module("nn.View", size=w.longs([48]), numElements=48),
                       w.linear(r, 48, 6), w.module("nn.Tanh"))
    t7, out = convert_net(tmp_path, net, [1, 3, 4, 4])
    x = make_input([1, 3, 4, 4])
    got = run_onnx(out, {"input": x})["output"]
    assert got.shape == (6,)
    ref = reference(str(t7), LoadOptions(input_shapes={"input": [1, 3, 4, 4]}))
    assert_close(got, ref.run({"input": x})["output"], name="reference")
    r2 = cli("convert", t7, "-o", tmp_path / "v2.onnx", "--input", "input:1,3,4,4", "--verify")
    assert r2.returncode == 0 and "PASS" in r2.stdout, (r2.stdout, r2.stderr)


def test_per_layer_verification_names_opencv_layers(tmp_path):
    import modelport

    r = np.random.default_rng(11)
    relu = w.module("nn.ReLU", threshold=0, val=0, inplace=False)
    concat = w.module("nn.Concat", dimension=2,
                      modules=[w.sequential(w.conv(r, 3, 4, 1), relu), w.conv(r, 3, 2, 3, pad=1)])
    depth = w.module("nn.DepthConcat", dimension=2,
                     modules=[w.conv(r, 6, 3, 1), w.conv(r, 6, 2, 3)])
    table = w.module("nn.ConcatTable", modules=[w.conv(r, 5, 5, 3, pad=1),
                                                w.module("nn.Identity")])
    inorm = w.module("nn.InstanceNormalization", nOutput=5, eps=1e-5,
                     weight=w.tensor(r.uniform(0.5, 1.5, 5).astype(np.float32)),
                     bias=w.tensor(r.standard_normal(5).astype(np.float32)))
    net = w.sequential(
        concat, depth, table, w.module("nn.CAddTable"), inorm,
        w.module("nn.PReLU", nOutputPlane=5, weight=w.tensor(np.full(5, 0.2, np.float32))),
        w.module("nn.Dropout", p=0.5, v2=False),
        w.module("nn.View", size=w.longs([-1]), numElements=1, numInputDims=3),
        w.linear(r, 5 * 36, 4), w.module("nn.LogSoftMax"))
    t7, out = convert_net(tmp_path, net, [1, 3, 6, 6], level=0)
    report = modelport.verify(str(t7), str(out), per_layer=True,
                              input_shapes={"input": [1, 3, 6, 6]})
    assert report.passed, report.table()
    compared = {c.name.rsplit("_", 1)[0] for c in report.layers}
    assert {"Concat", "DepthConcat", "CAddTable", "InstanceNormalization", "PReLU",
            "Dropout", "SpatialConvolution", "Linear"} <= compared, compared
    assert all(c.passed for c in report.layers)


@pytest.mark.parametrize("dtype", [np.float16, np.float64])
def test_half_and_double_weights(tmp_path, dtype):
    r = np.random.default_rng(12)
    wt = r.standard_normal((5, 6)).astype(dtype)
    b = r.standard_normal(5).astype(dtype)
    _, out = convert_net(tmp_path, w.sequential(w.module("nn.Linear", weight=w.tensor(wt),
                                                         bias=w.tensor(b))), [3, 6])
    x = make_input([3, 6])
    f32 = tmp_path / "f32.t7"  # OpenCV reads float weights: the same values as float32
    w.save(f32, w.sequential(w.module("nn.Linear", weight=w.tensor(wt.astype(np.float32)),
                                      bias=w.tensor(b.astype(np.float32)))))
    assert_close(run_onnx(out, {"input": x})["output"], opencv_forward(f32, x), name="linear")
