"""-O2 zero initial states: a Concat of all-zero values is all zeros (tf2onnx builds a
bidirectional layer's initial state as ``Concat(Unsqueeze(zeros_fw), Unsqueeze(zeros_bw))``),
and a Concat with one non-zero part is not."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import helper

from tests.conftest import init, make_model
from tests.graph_ir.test_o2_passes import agree, dyn, ops

rng = np.random.default_rng(3)
i64 = np.int64
HIDDEN, FEAT = 5, 3


def bidirectional_lstm(backward_fill: float):
    """A bidirectional LSTM whose initial h and c are Concat(Unsqueeze(Expand(0, [batch,
    hidden])), Unsqueeze(Expand(fill, [batch, hidden]))) along the direction axis."""
    inits = [
        init("W", rng.standard_normal((2, 4 * HIDDEN, FEAT)).astype(np.float32)),
        init("R", rng.standard_normal((2, 4 * HIDDEN, HIDDEN)).astype(np.float32)),
        init("B", rng.standard_normal((2, 8 * HIDDEN)).astype(np.float32)),
        init("zero", np.array(0.0, np.float32)),
        init("fill", np.array(backward_fill, np.float32)),
        init("one", np.array([1], i64)), init("two", np.array([2], i64)),
        init("hid", np.array([HIDDEN], i64)), init("ax0", np.array([0], i64)),
    ]
    nodes = [
        helper.make_node("Shape", ["x"], ["s"]),
        helper.make_node("Slice", ["s", "one", "two"], ["batch"]),
        helper.make_node("Concat", ["batch", "hid"], ["hs"], axis=0),
        helper.make_node("Expand", ["zero", "hs"], ["fw"]),
        helper.make_node("Expand", ["fill", "hs"], ["bw"]),
        helper.make_node("Unsqueeze", ["fw", "ax0"], ["fw1"]),
        helper.make_node("Unsqueeze", ["bw", "ax0"], ["bw1"]),
        helper.make_node("Concat", ["fw1", "bw1"], ["h0"], axis=0),
        helper.make_node("LSTM", ["x", "W", "R", "B", "", "h0", "h0"], ["Y", "Y_h"],
                         hidden_size=HIDDEN, direction="bidirectional"),
    ]
    return make_model(nodes, [dyn("x", [4, "batch", FEAT])],
                      [dyn("Y", [4, 2, "batch", HIDDEN]), dyn("Y_h", [2, "batch", HIDDEN])],
                      inits, opset=18)


@pytest.mark.parametrize("fill", [0.0, -0.0])
def test_a_concat_of_zero_states_is_dropped(tmp_path, fill):
    model = agree(tmp_path, bidirectional_lstm(fill))
    assert ops(model) == ["LSTM"]
    assert len(next(iter(model.graph)).inputs) == 4


def test_a_concat_with_a_nonzero_part_stays(tmp_path):
    model = agree(tmp_path, bidirectional_lstm(0.5))
    lstm = next(n for n in model.graph if n.op_type == "LSTM")
    assert lstm.inputs[5] is not None and lstm.inputs[6] is not None
