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
    assert doc["target"] == "tensorrt" and doc["version"] == "10.15" and doc["findings"] == []


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
    (model([helper.make_node("Einsum", ["a", "b"], ["y"], equation="bIJ,bJK->bIK",
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
    (model([helper.make_node("Relu", ["x"], ["y"], name="r8")], [vi("x", [2])],
           [vi("y", [2])], opset=8), "TRT010", None, "error"),
    (model([helper.make_node("Resize", ["x", "", "s"], ["y"], name="rsym",
                             coordinate_transformation_mode="half_pixel_symmetric")],
           [vi("x", [1, 1, 4, 4])], [vi("y", [1, 1, 8, 8])],
           [numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "s")], opset=19),
     "TRT050", "rsym", "error"),
    (model([helper.make_node("Resize", ["x", "", "s"], ["y"], mode="linear", antialias=1,
                             name="raa")],
           [vi("x", [1, 1, 4, 4])], [vi("y", [1, 1, 8, 8])],
           [numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "s")], opset=18),
     "TRT050", "raa", "error"),
    (model([helper.make_node("TopK", ["x", "k"], ["v", "i"], sorted=0, name="tks")],
           [vi("x", [1, 8])], [vi("v", [1, 2]), vi("i", [1, 2], TensorProto.INT64)],
           [numpy_helper.from_array(np.array([2], np.int64), "k")], opset=11),
     "TRT053", "tks", "error"),
    (model([helper.make_node("LayerNormalization", ["x", "g"], ["y", "mean"], name="ln"),
            helper.make_node("Identity", ["mean"], ["m"], name="idm")],
           [vi("x", [2, 4])], [vi("y", [2, 4]), vi("m", [2, 1])],
           [numpy_helper.from_array(np.ones(4, np.float32), "g")]), "TRT055", "ln", "error"),
    (model([helper.make_node("DequantizeLinear", ["q", "sc", "zp"], ["y"], name="dq")],
           [vi("q", [4], TensorProto.INT8)], [vi("y", [4])],
           [numpy_helper.from_array(np.array(0.5, np.float32), "sc"),
            numpy_helper.from_array(np.array(3, np.int8), "zp")]), "TRT057", "dq", "error"),
    (model([helper.make_node("Shape", ["x"], ["sh"], name="shp"),
            helper.make_node("Slice", ["sh", "zero", "one"], ["ax0"], name="sl"),
            helper.make_node("Sub", ["ax0", "ax0"], ["ax"], name="sub"),
            helper.make_node("ReduceSum", ["x", "ax"], ["y"], name="rsum")],
           [vi("x", ["n", 4])], [vi("y", [1, 4])],
           [numpy_helper.from_array(np.array([0], np.int64), "zero"),
            numpy_helper.from_array(np.array([1], np.int64), "one")], opset=18),
     "TRT030", "rsum", "error"),
    (model([helper.make_node("Attention", ["q", "k", "v", "", "pk", "pv"], ["y", "prk", "prv"],
                             name="att")],
           [vi(n, [1, 2, 4, 8]) for n in ("q", "k", "v", "pk", "pv")],
           [vi("y", [1, 2, 4, 8]), vi("prk", [1, 2, 8, 8]), vi("prv", [1, 2, 8, 8])],
           opset=23), "TRT058", "att", "error"),
    (model([helper.make_node("TensorScatter", ["c", "u"], ["y"], name="ts")],
           [vi("c", [1, 8, 4]), vi("u", [1, 2, 4])], [vi("y", [1, 8, 4])], opset=24),
     "TRT059", "ts", "error"),
    (model([helper.make_node("GridSample", ["x", "g"], ["y"], name="gs5")],
           [vi("x", [1, 1, 2, 4, 4]), vi("g", [1, 2, 4, 4, 3])], [vi("y", [1, 1, 2, 4, 4])],
           opset=20), "TRT044", "gs5", "error"),
    (model([helper.make_node("Resize", ["x", "", "s"], ["y"], axes=[2, 3], name="rax")],
           [vi("x", [1, 1, 4, 4])], [vi("y", [1, 1, 8, 8])],
           [numpy_helper.from_array(np.array([2, 2], np.float32), "s")], opset=18),
     "TRT050", "rax", "error"),
    (model([helper.make_node("Cast", ["x"], ["c"], to=TensorProto.FLOAT8E5M2, name="to85"),
            helper.make_node("Cast", ["c"], ["y"], to=F, name="back")],
           [vi("x", [2])], [vi("y", [2])], opset=19), "TRT020", "to85", "error"),
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
    assert versions() == ["8.6", "10.1", "10.15"]
    assert parse_target("tensorrt").version == "10.15"  # the default: the newest table
    assert parse_target("tensorrt:10").version == "10.15"  # a major: its newest table
    assert parse_target("tensorrt:10.1").version == "10.1"
    assert parse_target("tensorrt:10.5").version == "10.1"  # the newest not newer than asked
    assert parse_target("tensorrt:10.0").version == "10.1"  # none older: the oldest of 10
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
    r = cli("convert", src, "-o", out, "--target", "tensorrt:10.1", "--verify")
    assert r.returncode == 0, r.stderr + r.stdout
    fixed = onnx.load(out)
    assert fixed.opset_import[0].version == 20
    assert all(t.data_type != TensorProto.DOUBLE for t in fixed.graph.initializer)
    ir_model, _ = import_model(out)
    assert [f for f in check(ir_model, "10.1") if f.severity == "error"] == []
    feeds = _feeds(proto)
    want = feeds["x"].astype(np.float64) * 1.5
    np.testing.assert_allclose(run_onnx(out, feeds)["y"], want, rtol=1e-6)
    side = json.loads((tmp_path / "trt.trt.json").read_text())
    assert side["version"] == "10.1" and side["trtexec"].startswith("trtexec --onnx=")


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


def _fixed_and_equal(tmp_path, proto, code, node, target="tensorrt", shapes=None):
    """The check flags `code` on `node` as fixable; `convert --target` writes a model with no
    error-level finding whose outputs match the original's in onnxruntime."""
    src = tmp_path / "src.onnx"
    onnx.save(proto, src)
    version = target.partition(":")[2] or None
    flagged = [f for f in findings_of(tmp_path, proto, version) if (f.code, f.node) ==
               (code, node)]
    assert flagged and all(f.fixable and f.severity == "error" and f.fix for f in flagged), \
        flagged
    out = tmp_path / "fixed.onnx"
    r = cli("convert", src, "-o", out, "--target", target)
    assert r.returncode == 0, r.stderr + r.stdout
    ir_model, _ = import_model(out)
    assert [f for f in check(ir_model, version) if f.severity == "error"] == []
    feeds = _feeds(proto, shapes)
    want, got = run_onnx(src, feeds), run_onnx(out, feeds)
    assert want.keys() == got.keys()
    for name in want:
        np.testing.assert_allclose(got[name], want[name], rtol=1e-3, atol=1e-4)
    return onnx.load(out)


def _only(proto, op):
    (node,) = [n for n in proto.graph.node if n.op_type == op]
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}, list(node.input)


def test_einsum_upper_case_labels_are_relabelled(tmp_path):
    proto = model([helper.make_node("Einsum", ["a", "b"], ["y"], equation="bIJ, bJK -> bIK",
                                    name="es")],
                  [vi("a", [2, 3, 4]), vi("b", [2, 4, 5])], [vi("y", [2, 3, 5])], opset=12)
    fixed = _fixed_and_equal(tmp_path, proto, "TRT052", "es")
    assert _only(fixed, "Einsum")[0]["equation"].decode() == "bac,bcd->bad"


def test_einsum_implicit_output_with_one_case_is_relabelled(tmp_path):
    # onnxruntime refuses upper-case labels in an implicit output, so numpy is the reference
    proto = model([helper.make_node("Einsum", ["a", "b"], ["y"], equation="IJ,JK",
                                    name="es")],
                  [vi("a", [3, 4]), vi("b", [4, 5])], [vi("y", [3, 5])], opset=12)
    hits = [f for f in findings_of(tmp_path, proto) if (f.code, f.node) == ("TRT052", "es")]
    assert hits and hits[0].fixable
    out = tmp_path / "fixed.onnx"
    r = cli("convert", tmp_path / "m.onnx", "-o", out, "--target", "tensorrt")
    assert r.returncode == 0, r.stderr
    assert _only(onnx.load(out), "Einsum")[0]["equation"].decode() == "ab,bc->ac"
    feeds = _feeds(proto)
    np.testing.assert_allclose(run_onnx(out, feeds)["y"], np.einsum("IJ,JK", feeds["a"],
                                                                     feeds["b"]),
                               rtol=1e-3, atol=1e-4)


def test_einsum_ellipsis_is_written_out_for_8_6_only(tmp_path):
    proto = model([helper.make_node("Einsum", ["a", "b"], ["y"], equation="...ij,...jk->...ik",
                                    name="es")],
                  [vi("a", [2, 3, 4, 5]), vi("b", [2, 3, 5, 6])], [vi("y", [2, 3, 4, 6])],
                  opset=12)
    # the parser writes ellipses out itself from TensorRT 9 on
    assert ("TRT052", "es") not in codes(findings_of(tmp_path, proto, "10.15"))
    fixed = _fixed_and_equal(tmp_path, proto, "TRT052", "es", target="tensorrt:8.6")
    assert _only(fixed, "Einsum")[0]["equation"].decode() == "abij,abjk->abik"


def test_einsum_without_an_equivalent_equation_is_refused(tmp_path):
    # implicit output mixing cases: numpy puts 'I' first, onnxruntime 'k': no safe relabelling
    proto = model([helper.make_node("Einsum", ["a", "b"], ["y"], equation="Ij,jk",
                                    name="mixed"),
                   helper.make_node("Einsum", ["c"], ["z"], equation="ii->i", name="diag")],
                  [vi("a", [3, 4]), vi("b", [4, 5]), vi("c", [3, 3])],
                  [vi("y", [3, 5]), vi("z", [3])], opset=12)
    found = findings_of(tmp_path, proto)
    for name in ("mixed", "diag"):
        hits = [f for f in found if (f.code, f.node) == ("TRT052", name)]
        assert hits and not any(f.fixable for f in hits)
    src = tmp_path / "m.onnx"
    r = cli("convert", src, "-o", tmp_path / "no.onnx", "--target", "tensorrt")
    assert r.returncode == 2 and "TRT052" in r.stderr and not (tmp_path / "no.onnx").exists()


def _resize(mode_attrs, x_shape, y_shape, scales=None, sizes=None, roi=None, opset=19):
    inits, names = [], ["x", "", "", ""]
    for i, (name, arr) in enumerate((("roi", roi), ("scales", scales), ("sizes", sizes)), 1):
        if arr is not None:
            inits.append(numpy_helper.from_array(np.asarray(arr), name))
            names[i] = name
    while names[-1] == "":
        names.pop()
    return model([helper.make_node("Resize", names, ["y"], name="rs", **mode_attrs)],
                 [vi("x", x_shape)], [vi("y", y_shape)], inits, opset=opset)


@pytest.mark.parametrize("attrs,x_shape,y_shape,scales,sizes", [
    ({"mode": "linear"}, [1, 2, 4, 5], [1, 2, 8, 10], [1, 1, 2, 2], None),
    ({"mode": "nearest"}, [1, 2, 4, 5], [1, 2, 8, 10], [1, 1, 2.0, 2.0], None),
    ({"mode": "linear"}, [1, 2, 4, 6], [1, 2, 6, 9], [1, 1, 1.5, 1.5], None),
    ({"mode": "linear"}, [1, 2, 5, 7], [1, 2, 7, 3], None, [1, 2, 7, 3]),  # sizes: any ratio
])
def test_resize_half_pixel_symmetric_becomes_half_pixel_where_equal(tmp_path, attrs, x_shape,
                                                                     y_shape, scales, sizes):
    proto = _resize({**attrs, "coordinate_transformation_mode": "half_pixel_symmetric"},
                    x_shape, y_shape,
                    scales=None if scales is None else np.array(scales, np.float32),
                    sizes=None if sizes is None else np.array(sizes, np.int64))
    fixed = _fixed_and_equal(tmp_path, proto, "TRT050", "rs")
    assert _only(fixed, "Resize")[0]["coordinate_transformation_mode"] == b"half_pixel"


def test_resize_half_pixel_symmetric_with_a_fractional_size_is_refused(tmp_path):
    # 5 * 1.5 = 7.5: the output has 7 pixels and half_pixel_symmetric re-centres them
    proto = _resize({"mode": "linear", "coordinate_transformation_mode": "half_pixel_symmetric"},
                    [1, 1, 5, 5], [1, 1, 7, 7], scales=np.array([1, 1, 1.5, 1.5], np.float32))
    hits = [f for f in findings_of(tmp_path, proto) if (f.code, f.node) == ("TRT050", "rs")]
    assert hits and not hits[0].fixable
    src = tmp_path / "m.onnx"
    r = cli("convert", src, "-o", tmp_path / "no.onnx", "--target", "tensorrt")
    assert r.returncode == 2 and "TRT050" in r.stderr


def test_resize_tf_crop_and_resize_over_the_whole_input_becomes_align_corners(tmp_path):
    roi = np.array([0, 0, 0, 0, 1, 1, 1, 1], np.float32)
    proto = _resize({"mode": "linear", "coordinate_transformation_mode": "tf_crop_and_resize",
                     "extrapolation_value": 5.0}, [1, 2, 4, 5], [1, 2, 7, 9], roi=roi,
                    sizes=np.array([1, 2, 7, 9], np.int64))
    fixed = _fixed_and_equal(tmp_path, proto, "TRT050", "rs")
    attrs, inputs = _only(fixed, "Resize")
    assert attrs["coordinate_transformation_mode"] == b"align_corners"
    assert inputs[1] == "" and "extrapolation_value" not in attrs


@pytest.mark.parametrize("roi,y_shape", [
    ([0, 0, 0.1, 0, 1, 1, 1, 1], [1, 2, 7, 9]),  # a real crop
    ([0, 0, 0, 0, 1, 1, 1, 1], [1, 2, 1, 9]),  # an output axis of 1 samples the middle
])
def test_resize_tf_crop_and_resize_that_crops_is_refused(tmp_path, roi, y_shape):
    proto = _resize({"mode": "linear", "coordinate_transformation_mode": "tf_crop_and_resize"},
                    [1, 2, 4, 5], y_shape, roi=np.array(roi, np.float32),
                    sizes=np.array(y_shape, np.int64))
    hits = [f for f in findings_of(tmp_path, proto) if (f.code, f.node) == ("TRT050", "rs")]
    assert hits and not hits[0].fixable and hits[0].fix


def test_resize_antialias_is_dropped_when_nothing_shrinks(tmp_path):
    proto = _resize({"mode": "linear", "antialias": 1}, [1, 2, 4, 5], [1, 2, 8, 15],
                    scales=np.array([1, 1, 2, 3], np.float32), opset=18)
    fixed = _fixed_and_equal(tmp_path, proto, "TRT050", "rs")
    assert _only(fixed, "Resize")[0].get("antialias", 0) == 0
    shrink = _resize({"mode": "linear", "antialias": 1}, [1, 2, 8, 8], [1, 2, 4, 4],
                     scales=np.array([1, 1, 0.5, 0.5], np.float32), opset=18)
    hits = [f for f in findings_of(tmp_path, shrink) if (f.code, f.node) == ("TRT050", "rs")]
    assert hits and not hits[0].fixable


def test_resize_axes_become_a_scale_for_every_axis(tmp_path):
    proto = _resize({"mode": "linear", "axes": [3, 2]}, [1, 2, 4, 5], [1, 2, 12, 10],
                    scales=np.array([2, 3], np.float32), opset=18)
    fixed = _fixed_and_equal(tmp_path, proto, "TRT050", "rs")
    attrs, inputs = _only(fixed, "Resize")
    assert "axes" not in attrs
    (scales,) = [t for t in fixed.graph.initializer if t.name == inputs[2]]
    np.testing.assert_array_equal(numpy_helper.to_array(scales), [1, 1, 3, 2])


def test_weights_over_2_gb_need_external_data(tmp_path):
    import onnx_ir as ir

    # 600M floats (2.4 GB) that are never read: the check only adds up their sizes
    big = ir.ExternalTensor("absent.bin", 0, 2_400_000_000, ir.DataType.FLOAT,
                            shape=ir.Shape([600_000_000]), name="w")
    w = ir.Value(name="w", type=ir.TensorType(ir.DataType.FLOAT), shape=ir.Shape([600_000_000]),
                 const_value=big)
    x = ir.Value(name="x", type=ir.TensorType(ir.DataType.FLOAT), shape=ir.Shape([600_000_000]))
    add = ir.Node("", "Add", [x, w], name="add")
    add.outputs[0].name = "y"
    graph = ir.Graph([x], [add.outputs[0]], nodes=[add], initializers=[w],
                     opset_imports={"": 17})
    m = ir.Model(graph, ir_version=8)
    hits = [f for f in check(m, "10.15", external_data=False) if f.code == "TRT070"]
    assert hits and hits[0].severity == "error" and hits[0].fixable
    assert not [f for f in check(m, "10.15") if f.code == "TRT070"]  # external data: fine
