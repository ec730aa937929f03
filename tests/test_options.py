"""Options and their parsing: --input dims, what each format honours, --opset, Caffe nets that end
in Silence layers, ONNX sources with external data named from another folder."""

import os
import subprocess
import sys

import numpy as np
import onnx
import pytest

from modelport.convert.pipeline import convert, import_model
from modelport.errors import InputSpecError, InvalidModelError, UnsupportedOptionError
from modelport.graph_ir.io import parse_input_spec, parse_shape
from modelport.importers.registry import OPTION_FLAGS, LoadOptions, check_options, formats
from tests.oracles import assert_close, run_onnx

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# -- --input dims ------------------------------------------------------------------------------
@pytest.mark.parametrize("text, dims", [
    ("1,3,224,224", [1, 3, 224, 224]),
    ("1x3x224x224", [1, 3, 224, 224]),
    ("batch,max_len", ["batch", "max_len"]),      # 'x' inside a name is not a separator
    ("max_len", ["max_len"]),
    ("x", ["x"]),                                  # a dim named x stays
    ("x,3", ["x", 3]),
    ("box,x,y", ["box", "x", "y"]),
    (" batch , 3 ", ["batch", 3]),
    ("7", [7]),
    ("", []),                                      # a scalar
    ("9223372036854775807", [2**63 - 1]),
])
def test_parse_shape_forms(text, dims):
    assert parse_shape(text) == dims


@pytest.mark.parametrize("text, reason", [
    ("batchx3x224x224", "separate dims with commas"),
    ("1,,3", "empty dim"),
    ("1,3,", "empty dim"),
    ("0,3", "positive"),
    ("-1,3", "positive"),
    ("9223372036854775808", "does not fit in 64 bits"),
    ("1,a-b", "neither a positive integer nor a name"),
    ("1x3xx4", "empty dim"),
    ("4294967296,4294967296", "more elements than 64 bits can count"),
])
def test_parse_shape_refuses(text, reason):
    with pytest.raises(ValueError, match=reason):
        parse_shape(text)


def test_parse_input_spec():
    assert parse_input_spec("ids:batch,max_len:int64") == ("ids", ["batch", "max_len"], "int64")
    assert parse_input_spec("x:0:1x4") == ("x:0", [1, 4], None)
    assert parse_input_spec("tokens:max_len") == ("tokens", ["max_len"], None)
    assert parse_input_spec("x:1,2:Float16") == ("x", [1, 2], "float16")
    for spec, needle in [("x:1,3:float33", "unknown dtype 'float33'"),
                         ("x:1,3:int65", "unknown dtype"), ("1,3,224", "NAME:DIMS"),
                         ("x:1,,2", "empty dim")]:
        with pytest.raises(InputSpecError, match=needle):
            parse_input_spec(spec)


# -- what each format honours ------------------------------------------------------------------
def test_every_format_declares_the_options_it_honours():
    for spec in formats().values():
        assert spec.options is not None, f"{spec.name}: declare FormatSpec(options=...)"
        assert spec.options <= set(OPTION_FLAGS), spec.name


GIVEN = {"weights": "w.bin", "trust_code": True, "random_weights": True, "nchw_inputs": True,
         "dynamic": ["batch"], "input_dtypes": {"x": "int64"}}


@pytest.mark.parametrize("name", sorted(formats()))
@pytest.mark.parametrize("field", sorted(OPTION_FLAGS))
def test_option_matrix(name, field):
    """Every format x option: honoured (declared) or refused naming the CLI flag."""
    spec = formats()[name]
    options = LoadOptions(**{field: GIVEN[field]})
    if field in spec.options:
        check_options(spec, options)
        return
    with pytest.raises(UnsupportedOptionError) as info:
        check_options(spec, options)
    message = str(info.value)
    assert OPTION_FLAGS[field].split()[-1].split(":")[0] in message and "\n" not in message
    assert "LoadOptions" not in message and "extra" not in message


def test_declarations_match_the_importers():
    """The declared options are the ones the importers read (spot checks of the matrix)."""
    f = formats()
    assert f["onnx"].options == frozenset()
    assert f["caffe"].options == {"weights", "random_weights"}
    assert "nchw_inputs" in f["keras"].options and "random_weights" not in f["keras"].options
    assert "dynamic" in f["pytorch"].options and "weights" not in f["torchscript"].options


def test_no_error_message_names_a_python_only_argument():
    """Messages users see never tell them to pass LoadOptions/extra/keyword arguments."""
    import re

    pattern = re.compile(r"(LoadOptions\(|extra=\{|extra\[|ignore_unknown_fields|"
                         r"random_caffemodel|keras_fold_batchnorm)")
    offenders = []
    for folder, _, files in os.walk(os.path.join(ROOT, "modelport")):
        for name in files:
            if not name.endswith(".py"):
                continue
            path = os.path.join(folder, name)
            with open(path, encoding="utf-8") as f:
                for no, line in enumerate(f, 1):
                    s = line.strip()
                    if pattern.search(s) and ('"' in s or "'" in s) and (
                            "Error(" in s or s.startswith(('"', "f\"", "hint="))):
                        offenders.append(f"{path}:{no}: {s}")
    assert not offenders, "\n".join(offenders)


# -- --opset -----------------------------------------------------------------------------------
def test_opset_range_is_checked_before_any_work(sample_onnx, tmp_path):
    from modelport.exporters.onnx import MIN_OPSET, max_opset

    for bad in (MIN_OPSET - 1, max_opset() + 1):
        with pytest.raises(InputSpecError, match=f"opsets {MIN_OPSET} to {max_opset()}"):
            convert(tmp_path / "does-not-exist.onnx", tmp_path / "o.onnx", opset=bad)
    assert not (tmp_path / "o.onnx").exists()


def test_opset_below_the_graphs_ops_names_the_opsets_that_work(sample_onnx, tmp_path):
    # The sample uses Relu-14: opset 13 needs a down-conversion adapter onnx lacks.
    with pytest.raises(InputSpecError, match=r"opsets 14 to \d+ work for this graph"):
        convert(sample_onnx, tmp_path / "o.onnx", opset=13)
    assert not (tmp_path / "o.onnx").exists()
    result = convert(sample_onnx, tmp_path / "o.onnx", opset=14, verify=True)
    assert result.opset == 14 and result.passed


# -- Caffe deploy nets that end in Silence -----------------------------------------------------
SILENCED = """name: "silenced"
input: "data"
input_shape { dim: 1 dim: 3 dim: 8 dim: 8 }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
        convolution_param { num_output: 4 kernel_size: 3 } }
layer { name: "relu" type: "ReLU" bottom: "conv" top: "conv" }
layer { name: "pool" type: "Pooling" bottom: "conv" top: "pool"
        pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "ip" type: "InnerProduct" bottom: "conv" top: "ip"
        inner_product_param { num_output: 5 } }
layer { name: "silence" type: "Silence" bottom: "pool" bottom: "ip" }
"""


def test_blobs_read_only_by_silence_are_the_outputs_as_in_opencv(tmp_path):
    import cv2

    from tests.oracles.caffe_write import random_caffemodel

    proto, weights = tmp_path / "net.prototxt", tmp_path / "net.caffemodel"
    proto.write_text(SILENCED)
    random_caffemodel(proto, weights, seed=3)
    out = tmp_path / "net.onnx"
    convert(proto, out, options=LoadOptions(weights=str(weights)))
    assert [o.name for o in onnx.load(out).graph.output] == ["pool", "ip"]

    net = cv2.dnn.readNetFromCaffe(str(proto), str(weights))
    net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
    # OpenCV too leaves the silenced blobs as the net's ends (its Silence layer is unconnected).
    assert list(net.getUnconnectedOutLayersNames()) == ["silence"]
    x = np.random.default_rng(4).standard_normal((1, 3, 8, 8)).astype(np.float32)
    net.setInput(x, "data")
    want = dict(zip(["pool", "ip"], net.forward(["pool", "ip"])))
    got = run_onnx(out, {"data": x})
    for name in ("pool", "ip"):
        assert_close(got[name], want[name], name=name)


def test_a_blob_consumed_by_a_layer_and_silenced_is_not_an_output(tmp_path):
    text = SILENCED.replace('bottom: "pool" bottom: "ip"', 'bottom: "conv"')
    proto = tmp_path / "net.prototxt"
    proto.write_text(text)
    model, _ = import_model(proto, options=LoadOptions(random_weights=True))
    assert [o.name for o in model.graph.outputs] == ["pool", "ip"]


def test_a_net_without_outputs_names_candidates_and_output_option(tmp_path):
    proto = tmp_path / "net.prototxt"
    proto.write_text('name: "n"\nlayer { name: "data" type: "Input" top: "data" input_param '
                     '{ shape { dim: 1 dim: 3 } } }\nlayer { name: "s" type: "Silence" '
                     'bottom: "data" }\n')
    with pytest.raises(InvalidModelError, match=r"--output NAME \(candidates: data\)"):
        import_model(proto)
    model, _ = import_model(proto, options=LoadOptions(outputs=["data"]))
    assert [o.name for o in model.graph.outputs] == ["data"]


# -- ONNX with external data, named from another folder ---------------------------------------
@pytest.fixture
def external_source(sample_onnx, tmp_path):
    folder = tmp_path / "models"
    folder.mkdir()
    path = folder / "m.onnx"
    onnx.save(onnx.load(sample_onnx), path, save_as_external_data=True,
              location="m.onnx.data", size_threshold=1024)
    proto = onnx.load(path, load_external_data=False)
    assert any(t.data_location == onnx.TensorProto.EXTERNAL for t in proto.graph.initializer)
    return path


@pytest.mark.parametrize("how", ["absolute", "relative"])
@pytest.mark.parametrize("where", ["cwd", "other", "source"])
@pytest.mark.parametrize("external", [False, True])
def test_external_data_source_from_any_folder(external_source, tmp_path, how, where, external):
    cwd = tmp_path / "work"
    cwd.mkdir()
    src = str(external_source) if how == "absolute" else os.path.relpath(external_source, cwd)
    out = {"cwd": "out.onnx", "other": str(tmp_path / "elsewhere" / "o.onnx"),
           "source": str(external_source.parent / "o.onnx")}[where]
    os.makedirs(os.path.dirname(os.path.join(cwd, out)), exist_ok=True)
    args = [sys.executable, "-m", "modelport", "convert", src, "-o", out, "--verify", "-q"]
    if external:
        args.append("--external-data")
    env = dict(os.environ, PYTHONPATH=ROOT)
    r = subprocess.run(args, capture_output=True, text=True, cwd=cwd, env=env)
    assert r.returncode == 0, r.stderr
    written = os.path.join(cwd, out)
    proto = onnx.load(written, load_external_data=False)
    locations = {e.value for t in proto.graph.initializer for e in t.external_data
                 if e.key == "location"}
    # The output never points at the source's data file; with --external-data it has its own.
    assert locations == ({"o.onnx.data" if where != "cwd" else "out.onnx.data"}
                         if external else set())
    assert os.path.isfile(external_source.parent / "m.onnx.data")
