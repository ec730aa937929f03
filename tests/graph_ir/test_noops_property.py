"""Property test for graph_ir/passes/noops.py over the operand forms the random graphs of
test_o2_passes.py do not draw: Sub by zeros, Div by ones, And with all-True and Or with
all-False constants, on either side, of random shapes — some that broadcast ``x`` up (those
must stay) — through the whole convert pipeline at -O0, -O1 and -O2."""

from __future__ import annotations

import numpy as np
import onnx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper

from tests.conftest import init, make_model
from tests.oracles import run_onnx

X_SHAPE = [3, 4]  # after the batch dim


@st.composite
def noop_graphs(draw):
    """x [batch, 3, 4] float -> a chain of no-op candidates -> y; the boolean ops run on
    ``x > 0`` and are cast back."""
    consts, nodes = [], []
    cur, counter = "x", [0]
    shape = ["batch", *X_SHAPE]

    def fresh(p="v"):
        counter[0] += 1
        return f"{p}{counter[0]}"

    def const_shape():
        # a suffix of x's dims, each kept or 1, sometimes with leading extra dims (broadcast up)
        rank = draw(st.integers(0, len(X_SHAPE)))
        dims = [d if draw(st.booleans()) else 1 for d in X_SHAPE[len(X_SHAPE) - rank:]]
        if len(shape) == 3 and draw(st.integers(0, 4)) == 0:  # [2, 1, ...]: broadcasts x up
            dims = [2, 1, *[1] * (len(X_SHAPE) - len(dims)), *dims]
        return dims

    for step in draw(st.lists(st.sampled_from(["sub0", "div1", "and", "or", "near"]),
                              min_size=1, max_size=4)):
        dims = const_shape()
        out = fresh()
        if step in ("sub0", "div1", "near"):
            op = "Sub" if step == "sub0" else "Div"
            fill = {"sub0": 0.0, "div1": 1.0, "near": 1.0}[step]
            value = np.full(dims, fill, np.float32)
            if step == "near" and value.size:
                value.reshape(-1)[-1] = 2.0  # one element is not neutral: must stay
            c = fresh("c")
            consts.append(init(c, value))
            nodes.append(helper.make_node(op, [cur, c], [out]))
        else:
            pos, b, cast = fresh(), fresh(), fresh("c")
            c = fresh("c")
            consts += [init(c, np.full(dims, step == "and", bool)),
                       init(cast, np.array(0, np.float32))]
            ins = [pos, c] if draw(st.booleans()) else [c, pos]
            nodes += [helper.make_node("Greater", [cur, cast], [pos]),
                      helper.make_node("And" if step == "and" else "Or", ins, [b]),
                      helper.make_node("Cast", [b], [out], to=TensorProto.FLOAT)]
        if len(dims) > len(shape):
            shape = [2, *shape]
        cur = out
    nodes.append(helper.make_node("Identity", [cur], ["y"]))
    out_info = helper.make_tensor_value_info("y", TensorProto.FLOAT, shape)
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, ["batch", *X_SHAPE])], [out_info], consts)
    model = make_model([], [], [], opset=18)
    model.graph.CopyFrom(graph)
    return model


@settings(max_examples=20, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(proto=noop_graphs())
def test_random_noop_candidates_keep_their_outputs_through_the_pipeline(tmp_path, proto):
    from modelport.convert.pipeline import convert

    src = tmp_path / "src.onnx"
    onnx.save(proto, src)
    feeds = {"x": np.random.default_rng(3).standard_normal((2, *X_SHAPE)).astype(np.float32)}
    want = run_onnx(src, feeds)["y"]
    for level in (0, 1, 2):
        out = tmp_path / f"o{level}.onnx"
        convert(src, out, level=level, force=True)
        got = run_onnx(out, feeds)["y"]
        assert got.shape == want.shape, f"-O{level}"
        np.testing.assert_array_equal(got, want, err_msg=f"-O{level}")
