"""Detection of TensorFlow files by content (without stealing ONNX or Caffe files), the
command line (--signature, --output with and without :0, --verify --per-layer) and one-line
errors (unsupported ops listed together, control flow, missing variables)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from modelport.errors import InvalidModelError, UnsupportedOpsError
from modelport.importers.registry import LoadOptions, detect_format
from modelport.importers.tensorflow._pb import modelport_tf_pb2 as pb
from tests.importers.tensorflow.conftest import CORPUS_DIR_NAME, ROOT, corpus_dir


def _cli(*args, timeout=600):
    return subprocess.run([sys.executable, "-m", "modelport", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout, cwd=str(ROOT))


def test_detects_graphdefs_and_saved_models(built):
    folder = built["folder"]
    for name in ("cnn.pb", "tf1.pb", "cnn.pbtxt", "two", "two/saved_model.pb",
                 "cnn_export", "cnn_export/saved_model.pb"):
        assert detect_format(folder / name).name == "tensorflow", name
    corpus = corpus_dir()
    for name in ("opencv_face_detector_uint8.pb", "opencv_face_detector.pbtxt",
                 "tf2onnx_regression_saved_model.pb", "tf2onnx_gru_frozen.pb"):
        assert detect_format(corpus / name).name == "tensorflow", name


def test_onnx_and_caffe_files_are_not_taken(tmp_path, sample_onnx):
    assert detect_format(sample_onnx).name == "onnx"
    onnx_as_pb = tmp_path / "model.pb"
    onnx_as_pb.write_bytes(sample_onnx.read_bytes())
    assert detect_format(onnx_as_pb).name == "onnx"
    caffe = corpus_dir().parent / CORPUS_DIR_NAME["caffe"]
    protos = sorted(caffe.glob("*.prototxt"))[:5]
    assert protos
    for proto in protos:
        assert detect_format(proto).name == "caffe", proto


def _graph(*nodes) -> pb.GraphDef:
    g = pb.GraphDef()
    for name, op, inputs in nodes:
        nd = g.node.add(name=name, op=op)
        nd.input.extend(inputs)
        if op == "Placeholder":
            nd.attr["dtype"].type = 1
            nd.attr["shape"].shape.dim.add(size=2)
    return g


def test_every_unsupported_op_is_listed_once(tmp_path):
    from modelport.importers.tensorflow.load import load

    g = _graph(("x", "Placeholder", []), ("a", "FancyOp", ["x"]), ("b", "OtherOp", ["a"]),
               ("c", "FancyOp", ["b"]), ("d", "Relu", ["c"]))
    path = tmp_path / "g.pb"
    path.write_bytes(g.SerializeToString())
    with pytest.raises(UnsupportedOpsError) as info:
        load(str(path))
    text = str(info.value)
    assert "FancyOp" in text and "OtherOp" in text and "'a'" in text and "'c'" in text


def test_control_flow_is_refused_by_name(tmp_path):
    from modelport.importers.tensorflow.load import load

    """Control flow that is not translated (Case, TensorList concatenation) is named."""
    g = _graph(("x", "Placeholder", []), ("w", "StatelessCase", ["x"]),
               ("t", "TensorListConcatV2", ["w"]), ("y", "Relu", ["t"]), ("z", "Bogus", ["y"]))
    path = tmp_path / "loop.pb"
    path.write_bytes(g.SerializeToString())
    with pytest.raises(UnsupportedOpsError) as info:
        load(str(path))
    text = str(info.value)
    assert "StatelessCase" in text and "TensorListConcatV2" in text and "control-flow" in text


def test_saved_model_pb_alone_says_where_variables_should_be(tmp_path):
    """The corpus saved_model.pb was copied without its variables/ folder."""
    src = corpus_dir() / "tf2onnx_regression_saved_model.pb"
    r = _cli("convert", src, "-o", tmp_path / "x.onnx", "--input", "X:1")
    assert r.returncode == 2, r.stderr
    line = r.stderr.strip().splitlines()
    assert len(line) == 1 and "variables" in line[0] and "missing" in line[0], r.stderr


def test_unknown_signature_lists_the_signatures(built, tmp_path):
    from modelport.importers.tensorflow.load import load

    with pytest.raises(InvalidModelError, match="embed.*serving_default"):
        load(str(built["folder"] / "two"), LoadOptions(extra={"signature": "nope"}))


def test_cli_signature_output_names_and_verify(built, tmp_path):
    """--signature picks the function; --output takes names with or without ':0';
    --verify --per-layer runs TensorFlow and names layers."""
    two = built["folder"] / "two"
    out = tmp_path / "embed.onnx"
    r = _cli("convert", two, "-o", out, "--signature", "embed", "--verify", "--json")
    assert r.returncode == 0, r.stderr
    assert '"passed": true' in r.stdout.replace("\n", " ") or "true" in r.stdout
    tf1 = built["folder"] / "tf1.pb"
    for name in ("probs", "probs:0"):
        out = tmp_path / f"tf1_{name.replace(':', '_')}.onnx"
        r = _cli("convert", tf1, "-o", out, "--output", name, "--input", "images:1,16,16,3",
                 "--verify", "--per-layer")
        assert r.returncode == 0, r.stdout + r.stderr
        assert "PASS" in r.stdout and "bn" in r.stdout and "logits" in r.stdout
        import onnx

        model = onnx.load(out, load_external_data=False)
        assert [o.name for o in model.graph.output] == ["probs"]
        dims = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
        assert dims == [1, 16, 16, 3]


def test_weights_stay_lazy_until_export(built):
    """Const weights and checkpoint variables are lazy tensors in the IR."""
    import onnx_ir as ir

    from modelport.importers.tensorflow.load import load

    for src in ("transformer.pb", "transformer_export"):
        model = load(str(built["folder"] / src))
        big = [v for v in model.graph.initializers.values()
               if v.const_value is not None and np.prod(v.const_value.shape.numpy()) > 1024]
        assert big, src
        assert all(isinstance(v.const_value, ir.LazyTensor) for v in big), src


def test_nchw_inputs_leave_no_input_transpose(built, tmp_path):
    """--nchw-inputs: the graph takes NCHW images; the Transpose back to NHWC cancels with the
    first convolution's, and --verify feeds TensorFlow the NHWC equivalent."""
    import onnx

    out = tmp_path / "nchw.onnx"
    r = _cli("convert", built["folder"] / "tf1.pb", "-o", out, "--nchw-inputs",
             "--input", "images:1,3,16,16", "--verify")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "PASS" in r.stdout
    model = onnx.load(out, load_external_data=False)
    assert model.graph.node[0].op_type == "Conv"
    dims = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims == [1, 3, 16, 16]
