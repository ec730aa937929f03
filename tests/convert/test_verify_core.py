"""The comparison at the heart of verification: each way it could pass a wrong model."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import helper

from modelport.convert.runners.caffe_opencv import trim_detections
from modelport.convert.verify import (
    Comparison,
    NotCompared,
    VerifyReport,
    check_tolerances,
    compare,
    random_inputs,
    to_json,
    to_source_layout,
    verify_files,
)
from modelport.errors import InputSpecError
from tests.conftest import f32, make_model

R, A = 1e-3, 1e-4


def test_a_wrong_shape_fails_even_when_the_element_counts_agree():
    want = np.arange(6, dtype=np.float32).reshape(2, 3)
    got = want.reshape(3, 2)  # same numbers in memory order: a reshape would call it equal
    c = compare("y", got, want, R, A)
    assert not c.passed
    assert c.shape == [3, 2] and c.reference_shape == [2, 3]
    assert "[3, 2]" in c.note and "[2, 3]" in c.note


def test_a_transposed_output_fails():
    want = np.arange(6, dtype=np.float32).reshape(2, 3)
    assert not compare("y", want.T.copy(), want, R, A).passed
    assert not compare("y", want.reshape(1, 2, 3), want, R, A).passed


def test_nan_on_one_side_only_fails_and_on_both_sides_agrees():
    want = np.array([1.0, np.nan, 3.0], dtype=np.float32)
    assert compare("y", want.copy(), want, R, A).passed
    got = want.copy()
    got[0] = np.nan
    c = compare("y", got, want, R, A)
    assert not c.passed and c.mismatched == 1
    c = compare("y", np.array([1.0, 2.0, 3.0], np.float32), want, R, A)
    assert not c.passed and c.mismatched == 1


def test_infinities_must_agree_in_sign():
    want = np.array([np.inf, -np.inf], dtype=np.float32)
    assert compare("y", want.copy(), want, R, A).passed
    assert not compare("y", -want, want, R, A).passed
    # an infinite reference must not make the tolerance infinite
    assert not compare("y", np.array([1.0, 2.0], np.float32), want, R, A).passed
    assert not compare("y", np.array([np.inf], np.float32), np.array([1.0], np.float32),
                       R, A).passed


def test_an_integer_output_off_by_one_fails():
    want = np.array([[3, 1, 4]], dtype=np.int64)
    got = want.copy()
    got[0, 2] += 1
    c = compare("ids", got, want, R, A)
    assert not c.passed and c.mismatched == 1 and c.max_abs == 1.0
    # integers are compared exactly, however loose the tolerance
    assert not compare("ids", got, want, rtol=0.5, atol=2.0).passed


def test_tolerance_is_atol_plus_rtol_times_reference():
    want = np.array([100.0], np.float32)
    assert compare("y", want + 0.1, want, R, A).passed  # 0.1 <= 1e-4 + 0.1
    assert not compare("y", want + 0.11, want, R, A).passed


@pytest.mark.parametrize("rtol,atol", [(float("nan"), A), (R, float("nan")), (-1e-3, A),
                                       (R, -1.0), (float("inf"), A)])
def test_nan_negative_or_infinite_tolerances_are_refused(rtol, atol):
    with pytest.raises(InputSpecError):
        check_tolerances(rtol, atol)


def test_json_has_no_nan_or_infinity():
    report = VerifyReport("s", "c", "ref", "ort", R, A, 0, {"x": [1]},
                          [Comparison("y", [1], float("inf"), float("nan"), 1, False)])
    text = to_json(report.to_dict())
    assert "NaN" not in text and "Infinity" not in text
    d = json.loads(text)
    assert d["outputs"][0]["max_abs"] == "inf" and d["outputs"][0]["max_rel"] == "nan"


def test_a_report_that_compared_nothing_is_not_a_pass():
    empty = VerifyReport("s", "c", "ref", "ort", R, A, 0, {}, [])
    assert not empty.verified and not empty.passed
    assert "NOT VERIFIED" in empty.table() and "PASS" not in empty.table()


def test_a_reference_that_cannot_judge_the_file_is_never_a_pass():
    r = VerifyReport("s", "c", "ref", "ort", R, A, 0, {}, [Comparison("y", [1], 0, 0, 0, True)],
                     cannot_judge="the reference ignores the file's backend")
    assert not r.passed and not r.verified
    assert "CANNOT JUDGE" in r.table() and "PASS" not in r.table().splitlines()[-1]


def test_the_table_counts_layers_not_compared():
    r = VerifyReport("s", "c", "ref", "ort", R, A, 0, {}, [Comparison("y", [1], 0, 0, 0, True)],
                     layers=[Comparison("a", [1], 0, 0, 0, True)],
                     not_compared=[NotCompared("bn", "fused"), NotCompared("drop", "no value")])
    text = r.table()
    assert "all 1 compared layers agree; 2 not compared" in text
    assert "not compared: bn: fused" in text and "not compared: drop: no value" in text


def test_to_source_layout_transposes_and_unflattens():
    x = np.arange(24, dtype=np.float32).reshape(1, 2, 3, 4)  # NCHW
    nhwc = np.transpose(x, (0, 2, 3, 1))
    # "p0,p1,..": the converted value is the source tensor transposed by that permutation
    assert np.array_equal(to_source_layout(x, "0,3,1,2", nhwc.shape), nhwc)
    flat_cf = x.reshape(1, -1)  # flattened in channels-first order
    want = nhwc.reshape(1, -1)  # what a channels-last Flatten gives
    assert np.array_equal(to_source_layout(flat_cf, "2,3,4|0,2,3,1", want.shape), want)


def test_random_inputs_are_seeded_and_typed():
    specs = [("x", np.dtype(np.float32), ["N", 3]), ("ids", np.dtype(np.int64), [1, 5]),
             ("m", np.dtype(bool), [2])]
    a = random_inputs(specs, 7)
    b = random_inputs(specs, 7)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert a["x"].shape == (1, 3) and a["x"].dtype == np.float32
    assert a["ids"].dtype == np.int64 and a["ids"].min() >= 0 and a["ids"].max() < 4
    assert a["m"].dtype == bool
    assert not np.array_equal(random_inputs(specs, 8)["x"], a["x"])
    assert random_inputs(specs, 7, {"x": [4, 3]})["x"].shape == (4, 3)
    assert random_inputs(specs, 7, int_high=2)["ids"].max() < 2
    with pytest.raises(InputSpecError):
        random_inputs([("s", np.dtype("U4"), [1])], 0)


def test_detection_rows_are_matched_in_caffe_order():
    rows = np.zeros((1, 1, 4, 7), np.float32)
    rows[0, 0, 0] = [0, 2, 0.5, 0, 0, 1, 1]
    rows[0, 0, 1] = [0, 1, 0.9, 0, 0, 1, 1]
    rows[0, 0, 2] = [0, 1, 0.95, 0, 0, 1, 1]
    got = trim_detections(rows)
    assert got.shape == (1, 1, 3, 7)
    assert got[0, 0, :, 1].tolist() == [1, 1, 2] and got[0, 0, 0, 2] == np.float32(0.95)
    nothing = trim_detections(np.zeros((1, 1, 5, 7), np.float32))
    assert nothing.tolist() == [[[[0, -1, -1, -1, -1, -1, -1]]]]


class _Fixed:
    """A reference that returns fixed values (to drive verify_files)."""

    name = "fixed"

    def __init__(self, outputs):
        self.outputs = outputs

    def run(self, feeds):
        return self.outputs


def _identity_model(tmp_path, shape=(2, 3), perm=None):
    node = helper.make_node("Identity", ["x"], ["y"])
    model = make_model([node], [f32("x", list(shape))], [f32("y", list(shape))])
    if perm is not None:
        for vi in (model.graph.input[0], model.graph.output[0]):
            vi.metadata_props.add(key="modelport.source_perm", value=",".join(map(str, perm)))
    path = tmp_path / "m.onnx"
    onnx.save(model, path)
    return str(path)


def test_verify_fails_an_output_missing_from_the_reference(tmp_path):
    path = _identity_model(tmp_path)
    report = verify_files(_Fixed({"other": np.zeros((2, 3), np.float32)}), path,
                          source_label="s")
    assert not report.passed
    assert "no output of this name" in report.outputs[0].note


def test_verify_fails_a_reference_output_of_another_shape(tmp_path):
    path = _identity_model(tmp_path)
    feeds = random_inputs([("x", np.dtype(np.float32), [2, 3])], 0)
    wrong = feeds["x"].reshape(3, 2)
    report = verify_files(_Fixed({"y": wrong}), path, source_label="s")
    assert not report.passed
    assert "reference has [3, 2]" in report.outputs[0].note


def test_verify_reports_the_layout_permutation_it_applied(tmp_path):
    path = _identity_model(tmp_path, (1, 2, 3, 4), perm=(0, 2, 3, 1))
    x = random_inputs([("x", np.dtype(np.float32), [1, 2, 3, 4])], 0)["x"]
    source_layout = np.transpose(x, (0, 2, 3, 1))

    class Echo(_Fixed):
        def run(self, feeds):
            assert feeds["x"].shape == (1, 3, 4, 2)  # the reference got the source layout
            return {"y": feeds["x"]}

    report = verify_files(Echo({}), path, source_label="s")
    assert report.passed and report.layouts == {"x": [0, 2, 3, 1], "y": [0, 2, 3, 1]}
    assert "transposed by (0,2,3,1)" in report.table()
    assert "transposed by (0,2,3,1)" in report.outputs[0].note
    assert np.array_equal(source_layout, np.transpose(x, (0, 2, 3, 1)))


def test_verify_with_nan_tolerance_is_refused(tmp_path):
    path = _identity_model(tmp_path)
    with pytest.raises(InputSpecError):
        verify_files(_Fixed({}), path, source_label="s", atol=float("nan"))


def test_onnx_reference_runs_on_the_cpu_whatever_the_device(tmp_path):
    from modelport.convert.runners.onnxruntime import OnnxReference

    path = _identity_model(tmp_path)
    ref = OnnxReference(path, device="cuda")  # no GPU needed: the original never uses it
    assert ref.device == "cpu" and "CPUExecutionProvider" in ref.name


def test_per_layer_lists_what_it_could_not_compare(tmp_path):
    nodes = [helper.make_node("Relu", ["x"], ["r"], name="relu"),
             helper.make_node("Neg", ["r"], ["y"], name="neg")]
    model = make_model(nodes, [f32("x", [2, 3])], [f32("y", [2, 3])])
    model.metadata_props.add(key="modelport.layer_outputs",
                             value=json.dumps({"relu": ["r"], "neg": ["y"], "gone": ["zz"]}))
    model.metadata_props.add(key="modelport.layer_skips", value=json.dumps({"bn": "folded"}))
    path = tmp_path / "m.onnx"
    onnx.save(model, path)

    class Ref(_Fixed):
        def run(self, feeds):
            return {"y": -np.maximum(feeds["x"], 0)}

        def run_layers(self, feeds, layers):
            self.layer_reasons = {"neg": "not computable here"}
            assert set(layers) == {"relu", "neg"}
            return {"relu": [np.maximum(feeds["x"], 0)]}

        def layer_names(self):
            return ["relu", "neg", "bn", "drop"]

    report = verify_files(Ref({}), str(path), source_label="s", per_layer=True)
    assert report.passed
    assert [c.name for c in report.layers] == ["relu"]
    reasons = {nc.layer: nc.reason for nc in report.not_compared}
    assert reasons["bn"] == "folded"
    assert reasons["neg"] == "not computable here"
    assert "optimisation" in reasons["gone"]
    assert "no value" in reasons["drop"]
    assert "4 not compared" in report.table()
