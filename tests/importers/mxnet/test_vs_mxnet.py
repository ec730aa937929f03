"""Models built and run by real MXNet 1.9.1 (in its own environment), converted here without
MXNet, compared at rtol=1e-3, atol=1e-4. Every parameter and auxiliary state is random."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from tests.importers.mxnet.conftest import SYMBOL_MODELS
from tests.importers.mxnet.helpers import ROOT, convert_and_compare, io_arrays

LEGACY_COPY = ROOT / "tests" / "fixtures" / "mxnet" / "legacy_0800-symbol.json"


@pytest.mark.parametrize("name", SYMBOL_MODELS)
def test_symbol_models_match_mxnet(name, mxnet_models, tmp_path):
    folder = mxnet_models(*SYMBOL_MODELS)
    assert convert_and_compare(folder / name, tmp_path) == []


@pytest.mark.parametrize("name", SYMBOL_MODELS[:3])
def test_unoptimized_graph_matches_too(name, mxnet_models, tmp_path):
    folder = mxnet_models(*SYMBOL_MODELS)
    assert convert_and_compare(folder / name, tmp_path, level=0) == []


ZOO_FAST = ["resnet18_v1:64", "resnet18_v2:64", "mobilenet0.25:64", "mobilenetv2_0.25:64"]
ZOO_SLOW = ["squeezenet1.1:224", "densenet121:224", "alexnet:224", "vgg11_bn:64",
            "inceptionv3:299"]


@pytest.mark.parametrize("spec", ZOO_FAST + [pytest.param(s, marks=pytest.mark.slow)
                                             for s in ZOO_SLOW])
def test_gluon_zoo_export_matches_mxnet(spec, mxnet_models, tmp_path):
    folder = mxnet_models(f"zoo:{spec}")
    name = spec.split(":")[0].replace(".", "_")
    assert convert_and_compare(folder / name, tmp_path) == []


RNN_SPECS = ["lstm:2:bi", "lstm:1:uni", "gru:1:uni", "gru:2:bi", "rnn_relu:1:bi",
             "rnn_tanh:2:uni"]


@pytest.mark.parametrize("spec", RNN_SPECS)
def test_gluon_text_rnn_matches_mxnet(spec, mxnet_models, tmp_path):
    """Embedding -> Gluon LSTM/GRU/RNN (layers, directions) -> Dense, as Gluon exports it."""
    folder = mxnet_models(*[f"rnn:{s}" for s in RNN_SPECS])
    kind, layers, bidir = spec.split(":")
    assert convert_and_compare(folder / f"text_{kind}_{layers}_{bidir}", tmp_path) == []


def test_legacy_0_8_symbol_matches_mxnet(mxnet_models, tmp_path):
    """The real 0.8-era JSON (param/attr/backward_source_id, 2-element inputs, implicit BN
    auxiliary states) with seeded random params made by MXNet for it."""
    source = LEGACY_COPY
    folder = mxnet_models(f"legacy:{source}:data=2,20")
    params = folder / "legacy_0800-0000.params"
    inputs, want = io_arrays(folder / "legacy_0800")
    import onnxruntime as ort

    from modelport.convert.pipeline import convert
    from modelport.importers.registry import LoadOptions

    out = tmp_path / "legacy.onnx"
    convert(str(source), out, options=LoadOptions(input_shapes={"data": [2, 20]},
                                                  weights=str(params)))
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    got = sess.run(None, {"data": inputs["data"]})
    np.testing.assert_allclose(got[0], want[0], rtol=1e-3, atol=1e-4)


def test_cli_verify_per_layer_against_mxnet(mxnet_models, tmp_path, mxnet_python):
    """`modelport convert --verify --per-layer` runs MXNet in its child process and compares
    every internal output by symbol name."""
    folder = mxnet_models(*SYMBOL_MODELS)
    for f in folder.glob("conv2d-*"):
        shutil.copy(f, tmp_path)
    cli = [sys.executable, "-m", "modelport", "convert", str(tmp_path / "conv2d-symbol.json"),
           "-o", str(tmp_path / "m.onnx"), "--input", "data:2,3,17,19", "--verify",
           "--per-layer", "-O0"]
    proc = subprocess.run(cli, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "MODELPORT_MXNET_PYTHON": mxnet_python})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for layer in ("conv1", "bn1", "relu1", "conv2", "pool1", "pool2", "flat", "fc", "softmax"):
        assert any(line.startswith(layer + " ") and line.rstrip().endswith("ok")
                   for line in proc.stdout.splitlines()), (layer, proc.stdout)
    assert "all 9 compared layers agree" in proc.stdout


def test_every_dtype_mxnet_writes_is_read(mxnet_models):
    from modelport.importers.mxnet.params import ParamsFile

    folder = mxnet_models("dtypes")
    params = ParamsFile(str(folder / "dtypes.params"))
    with np.load(folder / "dtypes-values.npz") as want:
        assert sorted(r.name for r in params.arrays) == sorted(want.files)
        for ref in params.arrays:
            got = params.reader(ref)()
            assert got.dtype == want[ref.name].dtype
            np.testing.assert_array_equal(got, want[ref.name])
