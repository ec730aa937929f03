"""TensorRT readiness: each problem the parser's table and documented limits name is found on
the right node with its code; `convert --target tensorrt` fixes what it can and keeps the
numbers, and refuses the rest."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from modelport.convert.pipeline import import_model
from modelport.errors import ModelportError
from modelport.exporters.tensorrt import check, parse_ranges, parse_target, versions
from tests.oracles import run_onnx

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
F = TensorProto.FLOAT


def cli(*args):
    return subprocess.run([sys.executable, "-m", "modelport", *map(str, args)],
                          capture_output=True, text=True, cwd=ROOT)


def model(nodes, inputs, outputs, inits=(), opset=17, domains=()):
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(inits))
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset),
                                                *[helper.make_opsetid(d, 1) for d in domains]])
    m.ir_version = 8 if opset <= 17 else 10
    return m


def vi(name, shape, t=F):
    return helper.make_tensor_value_info(name, t, shape)


def findings_of(tmp_path, proto, target="10"):
    path = tmp_path / "m.onnx"
    onnx.save(proto, path)
    ir_model, _ = import_model(path)
    return check(ir_model, target)


def codes(findings):
    return {(f.code, f.node) for f in findings}


def test_clean_model_has_no_findings(tmp_path, sample_onnx):
    ir_model, _ = import_model(sample_onnx)
    # its batch is dynamic: the only finding is that an optimisation profile is needed
    assert [f.code for f in check(ir_model, "10")] == ["TRT060"]
    r = cli("check", sample_onnx, "--target", "tensorrt:10", "--json", "--input",
            "image:1,3,32,32")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["target"] == "tensorrt" and doc["version"] == "10" and doc["findings"] == []


@pytest.mark.parametrize("proto,code,node,severity", [
    (model([helper.make_node("Det", ["x"], ["y"], name="det")], [vi("x", [2, 3, 3])],
           [vi("y", [2])]), "TRT001", "det", "error"),
    (model([helper.make_node("MyOp", ["x"], ["y"], name="custom", domain="acme")],
           [vi("x", [2])], [vi("y", [2])], domains=("acme",)), "TRT003", "custom", "error"),
    (model([helper.make_node("Cast", ["x"], ["c"], to=TensorProto.INT16, name="to16"),
            helper.make_node("Cast", ["c"], ["y"], to=F, name="back")],
           [vi("x", [2])], [vi("y", [2])]), "TRT020", "to16", "error"),
    (model([helper.make_node("Cast", ["x"], ["c"], to=TensorProto.UINT8, name="tou8"),
            helper.make_node("Cast", ["c"], ["y"], to=F, name="back")],
           [vi("x", [2])], [vi("y", [2])]), "TRT021", "tou8", "error"),
    (model([helper.make_node("Cast", ["x"], ["c"], to=TensorProto.DOUBLE, name="tod"),
            helper.make_node("Cast", ["c"], ["y"], to=F, name="back")],
           [vi("x", [2])], [vi("y", [2])]), "TRT022", "tod", "warning"),
    (model([helper.make_node("MaxPool", ["x"], ["y", "idx"], kernel_shape=[2, 2], name="mp"),
            helper.make_node("Cast", ["idx"], ["i"], to=F, name="c")],
           [vi("x", [1, 1, 4, 4])], [vi("y", [1, 1, 2, 2]), vi("i", [1, 1, 2, 2])]),
     "TRT041", "mp", "error"),
    (model([helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=[2, 2], dilations=[2, 2],
                             name="mpd")],
           [vi("x", [1, 1, 6, 6])], [vi("y", [1, 1, 4, 4])]), "TRT042", "mpd", "error"),
    (model([helper.make_node("Resize", ["x", "", "s"], ["y"], mode="cubic", name="rs")],
           [vi("x", [1, 1, 4, 4])], [vi("y", [1, 1, 8, 8])],
           [numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "s")]),
     "TRT050", "rs", "error"),
    (model([helper.make_node("ScatterND", ["x", "i", "u"], ["y"], reduction="add", name="sc")],
           [vi("x", [4])], [vi("y", [4])],
           [numpy_helper.from_array(np.array([[1]], np.int64), "i"),
            numpy_helper.from_array(np.array([2.0], np.float32), "u")]),
     "TRT051", "sc", "error"),
    (model([helper.make_node("Einsum", ["a", "b"], ["y"], equation="...ij,...jk->...ik",
                             name="es")],
           [vi("a", [2, 3, 4]), vi("b", [2, 4, 5])], [vi("y", [2, 3, 5])]),
     "TRT052", "es", "error"),
    (model([helper.make_node("Einsum", ["a"], ["y"], equation="ii->i", name="diag")],
           [vi("a", [3, 3])], [vi("y", [3])]), "TRT052", "diag", "error"),
    (model([helper.make_node("TopK", ["x", "k"], ["v", "i"], name="tk")],
           [vi("x", [1, 5000])], [vi("v", [1, 4000]), vi("i", [1, 4000], TensorProto.INT64)],
           [numpy_helper.from_array(np.array([4000], np.int64), "k")]),
     "TRT053", "tk", "error"),
    (model([helper.make_node("NonZero", ["x"], ["y"], name="nz")],
           [vi("x", [4])], [vi("y", [1, None], TensorProto.INT64)]), "TRT040", "nz", "warning"),
    (model([helper.make_node("Shape", ["x"], ["s"], name="shape"),
            helper.make_node("Gather", ["s", "one"], ["k"], axis=0, name="g"),
            helper.make_node("Unsqueeze", ["k", "zero"], ["k1"], name="u"),
            helper.make_node("TopK", ["x", "k1"], ["v", "i"], axis=1, name="topk")],
           [vi("x", [1, "n"])], [vi("v", [1, "n"]), vi("i", [1, "n"], TensorProto.INT64)],
           [numpy_helper.from_array(np.array(1, np.int64), "one"),
            numpy_helper.from_array(np.array([0], np.int64), "zero")]),
     "TRT030", "topk", "error"),
    (model([helper.make_node("Relu", ["x"], ["y"], name="r")], [vi("x", ["batch", 3])],
           [vi("y", ["batch", 3])]), "TRT060", None, "warning"),
    (model([helper.make_node("Relu", ["x"], ["y"], name="r21")], [vi("x", [2])],
           [vi("y", [2])], opset=21), "TRT010", None, "error"),
])
def test_each_problem_is_found_on_its_node(tmp_path, proto, code, node, severity):
    found = findings_of(tmp_path, proto)
    hits = [f for f in found if f.code == code and f.node == node]
    assert hits, [(f.code, f.node, f.message) for f in found]
    assert hits[0].severity == severity and hits[0].message


def test_loop_scan_outputs_are_flagged(tmp_path):
    body = helper.make_graph(
        [helper.make_node("Identity", ["cond_in"], ["cond_out"]),
         helper.make_node("Add", ["acc_in", "one"], ["acc_out"]),
         helper.make_node("Identity", ["acc_out"], ["scan"])],
        "body", [vi("i", [], TensorProto.INT64), vi("cond_in", [], TensorProto.BOOL),
                 vi("acc_in", [1])],
        [vi("cond_out", [], TensorProto.BOOL), vi("acc_out", [1]), vi("scan", [1])],
        [numpy_helper.from_array(np.array([1.0], np.float32), "one")])
    proto = model([helper.make_node("Loop", ["n", "", "x"], ["acc", "scans"], body=body,
                                    name="loop")],
                  [vi("n", [], TensorProto.INT64), vi("x", [1])],
                  [vi("acc", [1]), vi("scans", [None, 1])])
    found = findings_of(tmp_path, proto)
    assert ("TRT056", "loop") in codes(found)


def test_older_version_has_its_own_table(tmp_path):
    proto = model([helper.make_node("Hardmax", ["x"], ["y"], name="hm")],
                  [vi("x", [2, 4])], [vi("y", [2, 4])])
    assert ("TRT001", "hm") in codes(findings_of(tmp_path, proto, "8.6"))
    assert ("TRT001", "hm") not in codes(findings_of(tmp_path, proto, "10"))
    assert "8.6" in versions() and "10" in versions()
    assert parse_target("tensorrt:10.1").version == "10"
    with pytest.raises(ModelportError):
        parse_target("tensorrt:11")
    with pytest.raises(ModelportError):
        parse_target("coreml")


def test_check_cli_exit_codes_and_json(tmp_path):
    path = tmp_path / "det.onnx"
    onnx.save(model([helper.make_node("Det", ["x"], ["y"], name="det")], [vi("x", [2, 3, 3])],
                    [vi("y", [2])]), path)
    r = cli("check", path, "--json")
    assert r.returncode == 1
    doc = json.loads(r.stdout)
    f = doc["findings"][0]
    assert set(f) == {"severity", "code", "node", "op", "message", "fix"}
    assert f["code"] == "TRT001" and f["node"] == "det" and f["op"] == "Det"
    r = cli("check", path)
    assert r.returncode == 1 and "TRT001 det (Det)" in r.stdout
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07junk")
    assert cli("check", bad).returncode == 2


def _feeds(proto, shapes=None):
    rng = np.random.default_rng(0)
    out = {}
    for v in proto.graph.input:
        dims = [d.dim_value or 1 for d in v.type.tensor_type.shape.dim]
        out[v.name] = rng.standard_normal(shapes.get(v.name, dims) if shapes else dims) \
            .astype(np.float32)
    return out


def test_target_tensorrt_fixes_double_and_opset_and_keeps_the_numbers(tmp_path):
    proto = model([helper.make_node("Cast", ["x"], ["c"], to=TensorProto.DOUBLE, name="tod"),
                   helper.make_node("Mul", ["c", "w"], ["m"], name="mul"),
                   helper.make_node("Cast", ["m"], ["y"], to=F, name="back")],
                  [vi("x", [2, 3])], [vi("y", [2, 3])],
                  [numpy_helper.from_array(np.full((2, 3), 1.5), "w")], opset=21)
    src = tmp_path / "src.onnx"
    onnx.save(proto, src)
    out = tmp_path / "trt.onnx"
    r = cli("convert", src, "-o", out, "--target", "tensorrt", "--verify")
    assert r.returncode == 0, r.stderr + r.stdout
    fixed = onnx.load(out)
    assert fixed.opset_import[0].version == 20
    assert all(t.data_type != TensorProto.DOUBLE for t in fixed.graph.initializer)
    ir_model, _ = import_model(out)
    assert [f for f in check(ir_model, "10") if f.severity == "error"] == []
    feeds = _feeds(proto)
    want = feeds["x"].astype(np.float64) * 1.5
    np.testing.assert_allclose(run_onnx(out, feeds)["y"], want, rtol=1e-6)
    side = json.loads((tmp_path / "trt.trt.json").read_text())
    assert side["version"] == "10" and side["trtexec"].startswith("trtexec --onnx=")


def test_target_tensorrt_folds_a_shape_computed_topk_k_with_static_inputs(tmp_path):
    nodes = [helper.make_node("Shape", ["x"], ["s"], name="shape"),
             helper.make_node("Gather", ["s", "one"], ["k"], axis=0, name="g"),
             helper.make_node("Unsqueeze", ["k", "zero"], ["k1"], name="u"),
             helper.make_node("TopK", ["x", "k1"], ["v", "i"], axis=1, name="topk")]
    proto = model(nodes, [vi("x", [1, "n"])],
                  [vi("v", [1, "n"]), vi("i", [1, "n"], TensorProto.INT64)],
                  [numpy_helper.from_array(np.array(1, np.int64), "one"),
                   numpy_helper.from_array(np.array([0], np.int64), "zero")])
    src = tmp_path / "topk.onnx"
    onnx.save(proto, src)
    refused = cli("convert", src, "-o", tmp_path / "no.onnx", "--target", "tensorrt")
    assert refused.returncode == 2 and "TRT030" in refused.stderr
    assert not (tmp_path / "no.onnx").exists()
    out = tmp_path / "ok.onnx"
    r = cli("convert", src, "-o", out, "--target", "tensorrt", "--input", "x:1,8", "--verify")
    assert r.returncode == 0, r.stderr + r.stdout
    x = np.random.default_rng(1).standard_normal((1, 8)).astype(np.float32)
    got = run_onnx(out, {"x": x})
    np.testing.assert_allclose(got["v"], -np.sort(-x, axis=1), rtol=1e-6)


def test_profile_and_trtexec_command_for_dynamic_inputs(tmp_path):
    proto = model([helper.make_node("Relu", ["x"], ["y"], name="r")],
                  [vi("x", ["batch", 3, 8, 8])], [vi("y", ["batch", 3, 8, 8])])
    src = tmp_path / "dyn.onnx"
    onnx.save(proto, src)
    out = tmp_path / "dyn_trt.onnx"
    r = cli("convert", src, "-o", out, "--target", "tensorrt:10", "--input-range",
            "x:1,3,8,8/4,3,8,8/16,3,8,8")
    assert r.returncode == 0, r.stderr
    side = json.loads((tmp_path / "dyn_trt.trt.json").read_text())
    assert side["profile"]["x"] == {"min": [1, 3, 8, 8], "opt": [4, 3, 8, 8],
                                    "max": [16, 3, 8, 8]}
    cmd = side["trtexec"]
    assert "--minShapes=x:1x3x8x8" in cmd and "--maxShapes=x:16x3x8x8" in cmd
    assert "--fp16" not in cmd
    out2 = tmp_path / "dyn_default.onnx"
    assert cli("convert", src, "-o", out2, "--target", "tensorrt:8.6").returncode == 0
    side = json.loads((tmp_path / "dyn_default.trt.json").read_text())
    assert side["profile"]["x"]["max"] == [32, 3, 8, 8] and side["notes"]
    assert "--fp16" in side["trtexec"]


@pytest.mark.parametrize("spec", ["x:1,3/2,3", "x:4,3/2,3/8,3", "1,3/2,3/4,3", "x:1,3/2,3/4"])
def test_bad_input_ranges_are_refused(spec):
    with pytest.raises(ModelportError):
        parse_ranges((spec,))


def test_input_range_without_target_is_exit_2(sample_onnx, tmp_path):
    r = cli("convert", sample_onnx, "-o", tmp_path / "o.onnx", "--input-range",
            "image:1,3,32,32/1,3,32,32/2,3,32,32")
    assert r.returncode == 2 and "--target" in r.stderr
    r = cli("convert", sample_onnx, "-o", tmp_path / "o.onnx", "--target", "tensorrt:7")
    assert r.returncode == 2 and "tensorrt:7" in r.stderr
    assert not (tmp_path / "o.onnx").exists()
