"""Control flow: Keras recurrent models (While loops over TensorLists), tf.while_loop with a
data-dependent trip count, a counter loop with a TensorArray, tf.cond; frozen with functional
control flow kept (lower_control_flow=False), frozen with the default lowering to TF 1 loop
frames and Switch/Merge, and saved with model.export(); TF 1 graphs (dynamic_rnn over a
MultiRNNCell, v1 cond, v1 while_loop with a TensorArrayV3) made in a child process; all
converted where TensorFlow cannot be imported and compared with TensorFlow (rtol=1e-3,
atol=1e-4)."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import onnx
import pytest

from tests.importers.tensorflow import models as M
from tests.importers.tensorflow.conftest import ROOT, convert_without_tensorflow
from tests.oracles import assert_close, run_onnx

RECURRENT = ["lstm", "gru", "simple_rnn", "bidirectional", "stacked", "masked"]
FUNCTIONAL = [f"{n}_functional" for n in RECURRENT] + [f"{n}_export" for n in RECURRENT] + [
    "while_data_dependent", "while_counter_tensorarray", "cond_on_input", "nested"]
LOWERED = [f"{n}_lowered" for n in RECURRENT] + [
    "while_data_dependent_lowered", "while_counter_tensorarray_lowered", "cond_on_input_lowered",
    "nested_lowered"]
TF1 = ["tf1_dynamic_rnn", "tf1_while"]


@pytest.fixture(scope="module")
def flow(tf, tmp_path_factory):
    import keras

    folder = tmp_path_factory.mktemp("tf_flow")
    cases: dict[str, M.Case] = {}
    for i, (name, model) in enumerate(M.recurrent(keras).items()):
        M.randomize(model, 20 + i)
        feeds = M.rng_inputs(30 + i, (3, 6, 5))
        feeds[0][1, 4:] = 0.0  # masked steps for the Masking layer
        # The masked model is frozen with a dynamic batch (shape arithmetic stays in the graph).
        specs = [tf.TensorSpec((None, 6, 5), tf.float32)] if name == "masked" else None
        cases[f"{name}_functional"] = M.keras_frozen(f"{name}_functional", model, feeds, folder,
                                                     specs=specs, lower=False)
        cases[f"{name}_export"] = M.keras_export(f"{name}_export", model, feeds, folder)
        cases[f"{name}_lowered"] = M.keras_frozen(f"{name}_lowered", model, feeds, folder,
                                                  specs=specs)
    for lower, suffix in ((False, ""), (True, "_lowered")):
        rng = np.random.default_rng(5)
        x = rng.standard_normal((3, 4)).astype(np.float32)
        key = "while_data_dependent" + suffix
        cases[key] = M.frozen_case(key, M.while_loop_fn(tf), [x], folder, lower=lower)
        x = rng.standard_normal((5, 3)).astype(np.float32)
        key = "while_counter_tensorarray" + suffix
        cases[key] = M.frozen_case(key, M.counter_loop_fn(tf), [x], folder, lower=lower)
        x = rng.standard_normal((3, 4)).astype(np.float32)
        key = "nested" + suffix
        cases[key] = M.frozen_case(key, M.nested_loop_fn(tf), [x], folder, lower=lower)
        for flag in (1.0, -1.0):
            key = ("cond_on_input" if flag > 0 else "cond_on_input_else") + suffix
            x = rng.standard_normal((2, 3)).astype(np.float32)
            cases[key] = M.frozen_case(key, M.cond_fn(tf), [x, np.asarray(flag, np.float32)],
                                       folder, lower=lower)
    cases.update(_tf1_cases(folder))
    x = np.ones(3, np.float32)
    cases["refused_list"] = M.frozen_case("refused_list", M.list_read_and_written_fn(tf), [x],
                                          folder, lower=False)
    jobs = [{"name": c.name, "src": c.src, "out": str(folder / f"{c.name}.onnx"),
             "options": c.options} for c in cases.values()]
    results = convert_without_tensorflow(jobs, folder)
    return {"cases": cases, "results": results, "folder": folder}


def _tf1_cases(folder) -> dict[str, M.Case]:
    """TF 1 graphs, made by a child process with TF 1 settings (see tf1_flow.py)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), TF_USE_LEGACY_KERAS="1",
               TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run([sys.executable, "-m", "tests.importers.tensorflow.tf1_flow",
                           str(folder)], capture_output=True, text=True, env=env, timeout=600,
                          cwd=str(ROOT))
    assert proc.returncode == 0, proc.stderr[-3000:]
    cases = {}
    for name in TF1:
        data = np.load(folder / f"{name}.npz")
        feeds = {k[3:]: data[k] for k in data.files if k.startswith("in:")}
        expected = {k[4:]: data[k] for k in data.files if k.startswith("out:")}
        cases[name] = M.Case(name, str(folder / f"{name}.pb"), feeds, expected)
    return cases


def _check(flow, name):
    case = flow["cases"][name]
    assert flow["results"][name] == "ok", flow["results"][name]
    got = run_onnx(flow["folder"] / f"{name}.onnx", case.feeds)
    assert set(got) == set(case.expected), (sorted(got), sorted(case.expected))
    for key, want in case.expected.items():
        assert_close(got[key], want, case.rtol, case.atol, name=f"{name}:{key}")


@pytest.mark.parametrize("name", FUNCTIONAL)
def test_matches_tensorflow(flow, name):
    _check(flow, name)


@pytest.mark.parametrize("name", LOWERED)
def test_tf1_frames_from_lowering_match_tensorflow(flow, name):
    _check(flow, name)


@pytest.mark.parametrize("name", TF1)
def test_tf1_graphs_match_tensorflow(flow, name):
    _check(flow, name)


@pytest.mark.parametrize("name", ["cond_on_input_else", "cond_on_input_else_lowered"])
def test_cond_else_branch(flow, name):
    _check(flow, name)


def test_lowered_graphs_have_no_tf1_ops_left(flow):
    for name in ["stacked_lowered", "tf1_dynamic_rnn", "cond_on_input_lowered"]:
        model = onnx.load(flow["folder"] / f"{name}.onnx", load_external_data=False)
        ops = {n.op_type for n in model.graph.node}
        assert ops & {"Loop", "If"}, (name, ops)
        assert not ops & {"Enter", "Exit", "Merge", "Switch", "NextIteration", "LoopCond"}


def _ops(path) -> list[str]:
    model = onnx.load(path, load_external_data=False)
    return [n.op_type for n in model.graph.node]


def test_keras_loops_become_loop_with_static_trip_count(flow):
    """A Keras LSTM is one ONNX Loop whose trip count M is the constant 6 (the steps)."""
    model = onnx.load(flow["folder"] / "lstm_functional.onnx", load_external_data=False)
    loops = [n for n in model.graph.node if n.op_type == "Loop"]
    assert len(loops) == 1
    consts = {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}
    for n in model.graph.node:
        if n.op_type == "Constant":
            consts[n.output[0]] = onnx.numpy_helper.to_array(n.attribute[0].t)
    assert int(consts[loops[0].input[0]]) == 6
    assert loops[0].input[1] == ""  # no condition: the counters' bound is M
    assert len(loops[0].input) == 4  # carried: the states h and c only (counters derived)
    assert "TensorList" not in " ".join(_ops(flow["folder"] / "stacked_functional.onnx"))
    assert _ops(flow["folder"] / "cond_on_input.onnx").count("If") == 1


def test_data_dependent_loop_keeps_its_condition(flow):
    model = onnx.load(flow["folder"] / "while_data_dependent.onnx", load_external_data=False)
    (loop,) = [n for n in model.graph.node if n.op_type == "Loop"]
    assert loop.input[1] != ""


def test_unsupported_list_pattern_is_refused_in_one_line(flow):
    """A TensorList read in the loop that writes it: an error naming the node and the reason,
    not a wrong graph."""
    result = flow["results"]["refused_list"]
    assert result.startswith("InvalidModelError"), result
    assert "TensorListGetItem" in result and "reads a TensorList that the loop also writes" \
        in result and "\n" not in result, result
