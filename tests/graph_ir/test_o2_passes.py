"""The -O2 passes of this project (symbolic shapes, zero initial states, standard patterns):
what each rewrites on a tiny graph, that outputs agree with the unoptimised graph in
onnxruntime at two batch sizes, and a hypothesis property test over random small graphs of
the operators they touch, through the whole convert pipeline at every level."""

from __future__ import annotations

import math

import numpy as np
import onnx
import onnx_ir as ir
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper

from modelport.graph_ir import validate
from modelport.graph_ir.passes import optimize
from tests.conftest import init, make_model
from tests.oracles import assert_close, run_onnx

rng = np.random.default_rng(0)
i64 = np.int64


def dyn(name, shape):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def optimized(proto, level=2):
    model = ir.serde.deserialize_model(proto)
    report = optimize(model, level)
    validate(model)
    return model, report


def ops(model):
    return [n.op_type for n in model.graph]


def agree(tmp_path, proto, level=2, batches=(1, 3)):
    """Outputs of the optimised model equal the original's at each batch size."""
    src, out = tmp_path / "src.onnx", tmp_path / f"o{level}.onnx"
    onnx.save(proto, src)
    model, _ = optimized(proto, level)
    onnx.save(ir.serde.serialize_model(model), out)
    for batch in batches:
        feeds = {}
        for i in proto.graph.input:
            shape = [batch if d.dim_param else d.dim_value for d in i.type.tensor_type.shape.dim]
            feeds[i.name] = rng.standard_normal(shape).astype(np.float32)
        want, got = run_onnx(src, feeds), run_onnx(out, feeds)
        assert want.keys() == got.keys()
        for k in want:
            assert_close(got[k], want[k], rtol=1e-4, atol=1e-5, name=k)
    return model


# -- symbolic shapes --------------------------------------------------------------------------

def shape_chain_model():
    """y = Reshape(x, Concat(Shape(x)[0:1], [-1])): x [batch, 4, 6] -> [batch, 24], then a
    Reshape of a Transpose whose target mixes the batch dim with static ones."""
    nodes = [
        helper.make_node("Shape", ["x"], ["s"]),
        helper.make_node("Slice", ["s", "zero", "one"], ["b"]),
        helper.make_node("Slice", ["s", "one", "three"], ["rest"]),
        helper.make_node("Gather", ["s", "two_scalar"], ["d2"], axis=0),
        helper.make_node("Unsqueeze", ["d2", "zero"], ["d2v"]),
        helper.make_node("Concat", ["b", "minus1"], ["t1"], axis=0),
        helper.make_node("Reshape", ["x", "t1"], ["flat"]),
        helper.make_node("Transpose", ["x"], ["xt"], perm=[0, 2, 1]),
        helper.make_node("Concat", ["b", "d2v", "four"], ["t2"], axis=0),
        helper.make_node("Reshape", ["xt", "t2"], ["back"]),
        helper.make_node("Mul", ["rest", "one"], ["rest1"]),
        helper.make_node("Concat", ["b", "rest1"], ["t3"], axis=0),
        helper.make_node("Expand", ["x", "t3"], ["e"]),
        helper.make_node("Relu", ["e"], ["expanded"]),
    ]
    inits = [init("zero", np.array([0], i64)), init("one", np.array([1], i64)),
             init("three", np.array([3], i64)), init("two_scalar", np.array(2, i64)),
             init("minus1", np.array([-1], i64)), init("four", np.array([4], i64))]
    return make_model(nodes, [dyn("x", ["batch", 4, 6])],
                      [dyn("flat", ["batch", 24]), dyn("back", ["batch", 6, 4]),
                       dyn("expanded", ["batch", 4, 6])], inits,
                      opset=18)


def test_shape_chains_become_constant_reshape_targets(tmp_path):
    model = agree(tmp_path, shape_chain_model())
    assert "Shape" not in ops(model) and "Concat" not in ops(model)
    assert "Expand" not in ops(model)  # it only restated its input's shape
    targets = [n.inputs[1].const_value.numpy().tolist() for n in model.graph
               if n.op_type == "Reshape"]
    # the batch dim is copied (0) or inferred (-1); the static dims are spelled out
    assert sorted(t[1:] for t in targets) == [[-1], [6, 4]] or sorted(
        t[1:] for t in targets) == [[6, 4], [24]]
    assert all(t[0] in (0, -1) for t in targets)


def test_o1_leaves_shape_chains_alone():
    model, _ = optimized(shape_chain_model(), 1)
    assert "Shape" in ops(model)


def test_reshape_chain_merges_and_identity_chain_vanishes(tmp_path):
    nodes = [
        helper.make_node("Unsqueeze", ["x", "ax1"], ["u"]),
        helper.make_node("Squeeze", ["u", "ax1"], ["same"]),
        helper.make_node("Relu", ["same"], ["r"]),
        helper.make_node("Reshape", ["r", "t"], ["r2"]),
        helper.make_node("Unsqueeze", ["r2", "ax3"], ["y"]),
    ]
    inits = [init("ax1", np.array([1], i64)), init("ax3", np.array([3], i64)),
             init("t", np.array([0, 2, 12], i64))]
    proto = make_model(nodes, [dyn("x", ["batch", 4, 6])], [dyn("y", ["batch", 2, 12, 1])],
                       inits, opset=18)
    model = agree(tmp_path, proto)
    assert ops(model) == ["Relu", "Reshape"]


# -- recurrent zero states --------------------------------------------------------------------

def recurrent_model(op="LSTM", hidden=5, directions=1, zeros="expand"):
    feat = 3
    gates = {"LSTM": 4, "GRU": 3, "RNN": 1}[op]
    inits = [
        init("W", rng.standard_normal((directions, gates * hidden, feat)).astype(np.float32)),
        init("R", rng.standard_normal((directions, gates * hidden, hidden)).astype(np.float32)),
        init("B", rng.standard_normal((directions, 2 * gates * hidden)).astype(np.float32)),
        init("zero", np.array(0.0, np.float32)), init("dirs", np.array([directions], i64)),
        init("hid", np.array([hidden], i64)), init("s0", np.array([0], i64)),
        init("s1", np.array([1], i64)), init("s2", np.array([2], i64)),
    ]
    nodes = [helper.make_node("Shape", ["x"], ["xs"]),
             helper.make_node("Slice", ["xs", "s1", "s2"], ["batch"])]
    if zeros == "expand":
        nodes += [helper.make_node("Concat", ["dirs", "batch", "hid"], ["hs"], axis=0),
                  helper.make_node("Expand", ["zero", "hs"], ["h0"])]
    else:  # ConstantOfShape, then a Slice of it
        nodes += [helper.make_node("Concat", ["dirs", "batch", "hid"], ["hs"], axis=0),
                  helper.make_node("ConstantOfShape", ["hs"], ["z"]),
                  helper.make_node("Slice", ["z", "s0", "dirs", "s0"], ["h0"])]
    states = ["h0", "h0"] if op == "LSTM" else ["h0"]
    direction = "bidirectional" if directions == 2 else "forward"
    nodes.append(helper.make_node(op, ["x", "W", "R", "B", "", *states], ["Y", "Y_h"],
                                  hidden_size=hidden, direction=direction))
    return make_model(nodes, [dyn("x", [4, "batch", feat])],
                      [dyn("Y", [4, directions, "batch", hidden]),
                       dyn("Y_h", [directions, "batch", hidden])], inits, opset=18)


@pytest.mark.parametrize("op", ["LSTM", "GRU", "RNN"])
@pytest.mark.parametrize("zeros", ["expand", "constant_of_shape"])
def test_zero_initial_states_are_dropped(tmp_path, op, zeros):
    model = agree(tmp_path, recurrent_model(op, directions=2 if op == "GRU" else 1, zeros=zeros))
    assert ops(model) == [op]
    assert len(next(iter(model.graph)).inputs) == 4  # X, W, R, B: the states are gone


def test_a_nonzero_initial_state_stays(tmp_path):
    proto = recurrent_model("GRU")
    for t in proto.graph.initializer:
        if t.name == "zero":
            t.CopyFrom(onnx.numpy_helper.from_array(np.array(0.5, np.float32), "zero"))
    model = agree(tmp_path, proto)
    gru = next(n for n in model.graph if n.op_type == "GRU")
    assert gru.inputs[5] is not None


# -- standard patterns -------------------------------------------------------------------------

def gelu_nodes(x, y, form):
    if form == "erf_mul":  # the Keras and MXNet importers' spelling
        return [helper.make_node("Mul", [x, "rsqrt2"], ["g1"]),
                helper.make_node("Erf", ["g1"], ["g2"]),
                helper.make_node("Mul", [x, "half"], ["g3"]),
                helper.make_node("Add", ["g2", "onef"], ["g4"]),
                helper.make_node("Mul", ["g3", "g4"], [y])]
    if form == "erf":
        return [helper.make_node("Div", [x, "sqrt2"], ["g1"]),
                helper.make_node("Erf", ["g1"], ["g2"]),
                helper.make_node("Add", ["g2", "onef"], ["g3"]),
                helper.make_node("Mul", [x, "g3"], ["g4"]),
                helper.make_node("Mul", ["g4", "half"], [y])]
    return [helper.make_node("Pow", [x, "three_f"], ["t1"]),
            helper.make_node("Mul", ["t1", "c044"], ["t2"]),
            helper.make_node("Add", [x, "t2"], ["t3"]),
            helper.make_node("Mul", ["c_s2pi", "t3"], ["t4"]),
            helper.make_node("Tanh", ["t4"], ["t5"]),
            helper.make_node("Add", ["onef", "t5"], ["t6"]),
            helper.make_node("Mul", ["half", x], ["t7"]),
            helper.make_node("Mul", ["t7", "t6"], [y])]


PATTERN_INITS = [
    init("sqrt2", np.array(math.sqrt(2), np.float32)),
    init("rsqrt2", np.array(1 / math.sqrt(2), np.float32)), init("onef", np.array(1, np.float32)),
    init("half", np.array(0.5, np.float32)), init("three_f", np.array(3, np.float32)),
    init("c044", np.array(0.044715, np.float32)),
    init("c_s2pi", np.array(math.sqrt(2 / math.pi), np.float32)),
    init("axes", np.array([-1], i64)), init("two_f", np.array(2, np.float32)),
    init("eps", np.array(1e-5, np.float32)),
    init("gamma", rng.standard_normal(6).astype(np.float32)),
    init("beta", rng.standard_normal(6).astype(np.float32)),
]


def layer_norm_nodes(x, y):
    return [helper.make_node("ReduceMean", [x, "axes"], ["m"]),  # keepdims implicit
            helper.make_node("Sub", [x, "m"], ["d"]),
            helper.make_node("Pow", ["d", "two_f"], ["d2"]),
            helper.make_node("ReduceMean", ["d2", "axes"], ["v"], keepdims=1),
            helper.make_node("Add", ["v", "eps"], ["ve"]),
            helper.make_node("Sqrt", ["ve"], ["sd"]),
            helper.make_node("Div", ["d", "sd"], ["n"]),
            helper.make_node("Mul", ["n", "gamma"], ["ns"]),
            helper.make_node("Add", ["ns", "beta"], [y])]


@pytest.mark.parametrize("form", ["erf", "erf_mul", "tanh"])
def test_gelu_chain_becomes_opset20_gelu_and_stays_below(tmp_path, form):
    nodes = gelu_nodes("x", "y", form)
    proto20 = make_model(nodes, [dyn("x", ["batch", 6])], [dyn("y", ["batch", 6])],
                         PATTERN_INITS, opset=20)
    model = agree(tmp_path, proto20)
    assert ops(model) == ["Gelu"]
    gelu = next(iter(model.graph))
    want = "tanh" if form == "tanh" else "none"
    assert gelu.attributes.get_string("approximate", "none") == want
    proto18 = make_model(nodes, [dyn("x", ["batch", 6])], [dyn("y", ["batch", 6])],
                         PATTERN_INITS, opset=18)
    assert "Erf" in ops(optimized(proto18)[0]) or "Tanh" in ops(optimized(proto18)[0])


def test_layer_norm_chain_becomes_layer_normalization(tmp_path):
    proto = make_model(layer_norm_nodes("x", "y"), [dyn("x", ["batch", 6])],
                       [dyn("y", ["batch", 6])], PATTERN_INITS, opset=18)
    model = agree(tmp_path, proto)
    assert ops(model) == ["LayerNormalization"]
    assert ops(optimized(proto, 1)[0]) != ["LayerNormalization"]  # -O2 only


def test_report_counts_nodes_per_pass():
    model, report = optimized(recurrent_model("LSTM"), 2)
    d = report.to_dict()
    assert d["passes"]["drop-zero-initial-states"]["rewrites"] == 2
    net = sum(p["removed"] - p["added"] for p in d["passes"].values())
    assert net == d["nodes_before"] - d["nodes_after"] == 4


# -- property test -----------------------------------------------------------------------------

def random_graph(draw):
    """A chain over x [batch, 4, 6] of the operators the -O2 passes touch."""
    consts: list = []
    nodes: list = []
    shape = [4, 6]  # the non-batch dims of the current value
    cur = "x"
    counter = [0]

    def fresh(prefix="v"):
        counter[0] += 1
        return f"{prefix}{counter[0]}"

    def const(array):
        name = fresh("c")
        consts.append(init(name, array))
        return name

    steps = draw(st.lists(st.sampled_from(
        ["flatten_dyn", "split_dyn", "transpose", "unsq_sq", "expand", "affine", "gelu", "ln",
         "relu", "reshape_chain", "matmul", "zero_bias", "attention_kt", "qkv", "slices", "conv_affine", "unit_reduce", "pad0",
         "const_split", "bn_matmul", "unit_transpose", "dense2", "dense_heads"]),
        min_size=1,
        max_size=6))
    for step in steps:
        out = fresh()
        if step == "flatten_dyn" and len(shape) >= 2:
            s, b, t = fresh(), fresh(), fresh()
            nodes += [helper.make_node("Shape", [cur], [s]),
                      helper.make_node("Slice", [s, const(np.array([0], i64)),
                                                 const(np.array([1], i64))], [b]),
                      helper.make_node("Concat", [b, const(np.array([-1], i64))], [t], axis=0),
                      helper.make_node("Reshape", [cur, t], [out])]
            shape = [int(np.prod(shape))]
        elif step == "split_dyn" and shape[-1] % 2 == 0:
            s, lead, t = fresh(), fresh(), fresh()
            rank = len(shape) + 1
            nodes += [helper.make_node("Shape", [cur], [s]),
                      helper.make_node("Slice", [s, const(np.array([0], i64)),
                                                 const(np.array([rank - 1], i64))], [lead]),
                      helper.make_node("Concat", [lead, const(np.array([2, shape[-1] // 2],
                                                                       i64))], [t], axis=0),
                      helper.make_node("Reshape", [cur, t], [out])]
            shape = shape[:-1] + [2, shape[-1] // 2]
        elif step == "transpose" and len(shape) >= 2:
            perm = draw(st.permutations(range(len(shape))))
            nodes.append(helper.make_node("Transpose", [cur], [out],
                                          perm=[0] + [p + 1 for p in perm]))
            shape = [shape[p] for p in perm]
        elif step == "unsq_sq":
            u = fresh()
            ax = const(np.array([draw(st.integers(1, len(shape) + 1))], i64))
            nodes += [helper.make_node("Unsqueeze", [cur, ax], [u]),
                      helper.make_node("Squeeze", [u, ax], [out])]
        elif step == "expand":
            s = fresh()
            nodes += [helper.make_node("Shape", [cur], [s]),
                      helper.make_node("Expand", [cur, s], [out])]
        elif step == "affine":
            m = fresh()
            nodes += [helper.make_node("Mul", [cur, const(np.float32(1.5))], [m]),
                      helper.make_node("Add", [m, const(np.float32(-0.25))], [out])]
        elif step == "relu":
            nodes.append(helper.make_node("Relu", [cur], [out]))
        elif step == "zero_bias":
            fill = draw(st.sampled_from([0.0, 1.0]))
            op = "Add" if fill == 0.0 else "Mul"
            nodes.append(helper.make_node(op, [cur, const(np.full(shape[-1:], fill,
                                                                  np.float32))], [out]))
        elif step == "qkv" and len(shape) == 2 and shape[-1] % draw(
                st.sampled_from([2, 3])) == 0:
            n = 3 if shape[-1] % 3 == 0 else 2
            e = shape[-1] // n
            u, t, sq = fresh(), fresh(), fresh()
            picks = [fresh() for _ in range(n)]
            nodes += [helper.make_node("Reshape", [cur, const(np.array([1, -1, shape[0], n, e],
                                                                       i64))], [u]),
                      helper.make_node("Transpose", [u], [t], perm=[3, 1, 2, 0, 4]),
                      helper.make_node("Squeeze", [t, const(np.array([-2], i64))], [sq])]
            nodes += [helper.make_node("Gather", [sq, const(np.array(i, i64))], [p], axis=0)
                      for i, p in enumerate(picks)]
            acc = picks[0]
            for p in picks[1:]:
                nxt = fresh()
                nodes.append(helper.make_node("Mul", [acc, p], [nxt]))
                acc = nxt
            nodes.append(helper.make_node("Identity", [acc], [out]))
            shape = [shape[0], e]
        elif step == "conv_affine" and len(shape) == 2:
            c = draw(st.integers(1, 4))
            conv, m = fresh(), fresh()
            w = const(rng.standard_normal((c, shape[0], 3)).astype(np.float32))
            nodes += [helper.make_node("Conv", [cur, w], [conv], pads=[1, 1]),
                      helper.make_node("Mul", [conv, const(rng.standard_normal(
                          draw(st.sampled_from([(c, 1), (1, c, 1), (1,)]))).astype(
                              np.float32))], [m]),
                      helper.make_node("Add", [const(rng.standard_normal((c, 1)).astype(
                          np.float32)), m], [out])]
            shape = [c, shape[1]]
        elif step == "unit_transpose":
            u = fresh()
            rank = len(shape) + 2  # batch, the new unit axis at 1, then shape
            dest = draw(st.integers(0, rank - 1))
            order = [0] + list(range(2, rank))
            order.insert(dest, 1)
            nodes += [helper.make_node("Unsqueeze", [cur, const(np.array([1], i64))], [u]),
                      helper.make_node("Transpose", [u], [out], perm=order)]
            full = ["B", 1, *shape]
            permuted = [full[p] for p in order]
            if permuted[0] != "B":
                # keep the batch dim first for the steps that follow
                back = fresh()
                bpos = permuted.index("B")
                perm2 = [bpos] + [i for i in range(rank) if i != bpos]
                nodes.append(helper.make_node("Transpose", [out], [back], perm=perm2))
                permuted = [permuted[p] for p in perm2]
                out = back
            shape = permuted[1:]
        elif step == "unit_reduce":
            u = fresh()
            op = draw(st.sampled_from(["ReduceMean", "ReduceSum", "ReduceMax"]))
            nodes += [helper.make_node("Unsqueeze", [cur, const(np.array([-1], i64))], [u]),
                      helper.make_node(op, [u, const(np.array([-1], i64))], [out], keepdims=0)]
        elif step == "pad0":
            nodes.append(helper.make_node("Pad", [cur, const(np.zeros(2 * (len(shape) + 1),
                                                                      i64))], [out]))
        elif step == "const_split":
            k = draw(st.integers(1, 4))
            w = const(rng.standard_normal((shape[-1], k + 2)).astype(np.float32))
            w0, w1, m = fresh(), fresh(), fresh()
            nodes += [helper.make_node("Split", [w, const(np.array([k, 2], i64))], [w0, w1],
                                       axis=1),
                      helper.make_node("MatMul", [cur, w0], [m]),
                      helper.make_node("Relu", [m], [out])]
            shape = shape[:-1] + [k]
        elif step == "bn_matmul" and len(shape) == 1:
            k = draw(st.integers(1, 4))
            m = fresh()
            nodes += [helper.make_node("MatMul", [cur, const(rng.standard_normal(
                (shape[0], k)).astype(np.float32))], [m]),
                      helper.make_node("BatchNormalization", [
                          m, const((rng.random(k) + 0.5).astype(np.float32)),
                          const(rng.standard_normal(k).astype(np.float32)),
                          const(rng.standard_normal(k).astype(np.float32)),
                          const((rng.random(k) + 0.5).astype(np.float32))], [out])]
            shape = [k]
        elif step == "slices" and shape[-1] >= 2:
            cuts = sorted(draw(st.sets(st.integers(1, shape[-1] - 1), min_size=1, max_size=2)))
            bounds = list(zip([0, *cuts], [*cuts, shape[-1]]))
            parts = []
            for a, b in bounds:
                part = fresh()
                nodes.append(helper.make_node("Slice", [cur, const(np.array([a], i64)),
                                                        const(np.array([b], i64)),
                                                        const(np.array([-1], i64))], [part]))
                parts.append(part)
            relu = fresh()
            nodes.append(helper.make_node("Relu", [parts[0]], [relu]))
            nodes.append(helper.make_node("Concat", [*parts[1:], relu], [out], axis=-1))
        elif step == "attention_kt" and len(shape) >= 2:
            # merge the leading dims, swap the last two, split the leading dims again
            lead, a, b = shape[:-2], shape[-2], shape[-1]
            s, bt, r, rt, t = fresh(), fresh(), fresh(), fresh(), fresh()
            nodes += [helper.make_node("Shape", [cur], [s]),
                      helper.make_node("Slice", [s, const(np.array([0], i64)),
                                                 const(np.array([1], i64))], [bt]),
                      helper.make_node("Reshape", [cur, const(np.array([-1, a, b], i64))], [r]),
                      helper.make_node("Transpose", [r], [rt], perm=[0, 2, 1]),
                      helper.make_node("Concat", [bt, const(np.array([*lead, b, a], i64))],
                                       [t], axis=0),
                      helper.make_node("Reshape", [rt, t], [out])]
            shape = [*lead, b, a]
        elif step in ("gelu", "ln"):
            names = {}

            def rename(n, names=names):
                for i, v in enumerate(n.input):
                    n.input[i] = names.get(v, v)
                for i, v in enumerate(n.output):
                    names[v] = fresh()
                    n.output[i] = names[v]
                return n

            if step == "gelu":
                chain = gelu_nodes("X", "Y", draw(st.sampled_from(["erf", "erf_mul", "tanh"])))
            else:
                chain = [n for n in layer_norm_nodes("X", "Y")]
                gamma = const(rng.standard_normal(shape[-1]).astype(np.float32))
                beta = const(rng.standard_normal(shape[-1]).astype(np.float32))
                names.update({"gamma": gamma, "beta": beta})
            names["X"] = cur
            for n in chain:
                nodes.append(rename(n))
            out = names["Y"]
        elif step == "reshape_chain":
            r, t = fresh(), const(np.array([0, -1], i64))
            nodes += [helper.make_node("Reshape", [cur, t], [r]),
                      helper.make_node("Unsqueeze", [r, const(np.array([2], i64))], [out])]
            shape = [int(np.prod(shape)), 1]
        elif step == "matmul":
            k = draw(st.integers(1, 5))
            w = const(rng.standard_normal((shape[-1], k)).astype(np.float32))
            m = fresh()
            nodes += [helper.make_node("MatMul", [cur, w], [m]),
                      helper.make_node("Add", [m, const(rng.standard_normal(k).astype(
                          np.float32))], [out])]
            shape = shape[:-1] + [k]
        elif step == "dense2":  # two dense layers in a row: the pair may run as 2-D Gemms
            for _ in range(2):
                k = draw(st.integers(1, 5))
                m, a = fresh(), fresh()
                nodes += [helper.make_node("MatMul", [cur, const(rng.standard_normal(
                    (shape[-1], k)).astype(np.float32))], [m]),
                          helper.make_node("Add", [m, const(rng.standard_normal(k).astype(
                              np.float32))], [a])]
                shape, cur = shape[:-1] + [k], a
            nodes.append(helper.make_node("Identity", [cur], [out]))
        elif step == "dense_heads":  # a dense layer split into two heads and scaled
            k = 2 * draw(st.integers(1, 3))
            m, a, r = fresh(), fresh(), fresh()
            lead = [0] * len(shape)  # batch and the leading dims copied, the last one split
            nodes += [helper.make_node("MatMul", [cur, const(rng.standard_normal(
                (shape[-1], k)).astype(np.float32))], [m]),
                      helper.make_node("Add", [const(rng.standard_normal(k).astype(np.float32)),
                                               m], [a]),
                      helper.make_node("Reshape", [a, const(np.array([*lead, 2, k // 2], i64))],
                                       [r]),
                      helper.make_node("Mul", [r, const(np.float32(0.5))], [out])]
            shape = shape[:-1] + [2, k // 2]
        else:
            nodes.append(helper.make_node("Relu", [cur], [out]))
        cur = out
    nodes.append(helper.make_node("Identity", [cur], ["y"]))
    return nodes, consts, shape


@st.composite
def graphs(draw):
    nodes, consts, shape = random_graph(draw)
    opset = draw(st.sampled_from([18, 20]))
    return make_model(nodes, [dyn("x", ["batch", 4, 6])], [dyn("y", ["batch", *shape])],
                      [*PATTERN_INITS, *consts], opset=opset)


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(proto=graphs())
def test_random_graphs_keep_their_outputs_through_the_pipeline(tmp_path, proto):
    from modelport.convert.pipeline import convert

    src = tmp_path / "src.onnx"
    onnx.save(proto, src)
    feeds = {"x": rng.standard_normal((3, 4, 6)).astype(np.float32)}
    want = run_onnx(src, feeds)["y"]
    for level in (0, 1, 2):
        out = tmp_path / f"o{level}.onnx"
        convert(src, out, level=level, force=True)
        assert_close(run_onnx(out, feeds)["y"], want, rtol=1e-4, atol=1e-5, name=f"-O{level}")


# -- no-op elementwise ------------------------------------------------------------------------

def test_zero_bias_and_unit_scale_vectors_are_removed_but_broadcasting_ones_stay(tmp_path):
    nodes = [helper.make_node("Add", ["x", "zeros6"], ["a"]),
             helper.make_node("Mul", ["ones16", "a"], ["b"]),
             helper.make_node("Pad", ["b", "pads0"], ["c"]),
             helper.make_node("Add", ["c", "zeros46"], ["y"])]  # broadcasts up: must stay
    inits = [init("zeros6", np.zeros(6, np.float32)),
             init("ones16", np.ones((1, 6), np.float32)),
             init("pads0", np.zeros(4, i64)),
             init("zeros46", np.zeros((5, 1, 6), np.float32))]
    proto = make_model(nodes, [dyn("x", ["batch", 6])], [dyn("y", [5, "batch", 6])], inits,
                       opset=18)
    model = agree(tmp_path, proto)
    assert ops(model) == ["Add"]
    assert ops(optimized(proto, 1)[0]) == ["Add", "Mul", "Pad", "Add"]


def test_reshape_transpose_reshape_of_merged_leading_dims_is_one_transpose(tmp_path):
    """k.transpose(-2, -1) on [batch, heads, seq, dim] as torch exports it for attention."""
    nodes = [
        helper.make_node("Shape", ["k"], ["s"]),
        helper.make_node("Slice", ["s", "zero", "one"], ["b"]),
        helper.make_node("Reshape", ["k", "t1"], ["r"]),
        helper.make_node("Transpose", ["r"], ["rt"], perm=[0, 2, 1]),
        helper.make_node("Concat", ["b", "tail"], ["t2"], axis=0),
        helper.make_node("Reshape", ["rt", "t2"], ["y"]),
    ]
    inits = [init("zero", np.array([0], i64)), init("one", np.array([1], i64)),
             init("t1", np.array([-1, 5, 4], i64)), init("tail", np.array([2, 4, 5], i64))]
    proto = make_model(nodes, [dyn("k", ["batch", 2, 5, 4])], [dyn("y", ["batch", 2, 4, 5])],
                       inits, opset=18)
    model = agree(tmp_path, proto)
    assert ops(model) == ["Transpose"]
    assert list(next(iter(model.graph)).attributes["perm"].as_ints()) == [0, 1, 3, 2]


@pytest.mark.parametrize("form", ["sizes", "num_outputs"])
def test_split_of_a_constant_is_folded(tmp_path, form):
    w = rng.standard_normal((6, 4)).astype(np.float32)
    if form == "sizes":
        split = helper.make_node("Split", ["w", "sizes"], ["w0", "w1"], axis=0)
    else:
        split = helper.make_node("Split", ["w"], ["w0", "w1"], axis=0, num_outputs=2)
    nodes = [split, helper.make_node("Transpose", ["w1"], ["w1t"], perm=[1, 0]),
             helper.make_node("MatMul", ["x", "w0"], ["a"]),
             helper.make_node("MatMul", ["a", "w1t"], ["y"])]
    sizes = [2, 4] if form == "sizes" else [3, 3]
    inits = [init("w", w), init("sizes", np.array(sizes, i64))]
    proto = make_model(nodes, [dyn("x", ["batch", sizes[0]])], [dyn("y", ["batch", sizes[1]])],
                       inits, opset=18)
    model = agree(tmp_path, proto)
    assert ops(model) == ["MatMul", "MatMul"]


@st.composite
def recurrent_models(draw):
    op = draw(st.sampled_from(["LSTM", "GRU", "RNN"]))
    return recurrent_model(op, hidden=draw(st.integers(1, 6)),
                           directions=draw(st.sampled_from([1, 2])),
                           zeros=draw(st.sampled_from(["expand", "constant_of_shape"])))


@settings(max_examples=10, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(proto=recurrent_models())
def test_random_recurrent_layers_keep_their_outputs_through_the_pipeline(tmp_path, proto):
    from modelport.convert.pipeline import convert

    src = tmp_path / "src.onnx"
    onnx.save(proto, src)
    feeds = {"x": rng.standard_normal((4, 2, 3)).astype(np.float32)}
    want = run_onnx(src, feeds)
    for level in (0, 1, 2):
        out = tmp_path / f"o{level}.onnx"
        convert(src, out, level=level, force=True)
        got = run_onnx(out, feeds)
        for k in want:
            assert_close(got[k], want[k], rtol=1e-4, atol=1e-5, name=f"{k} -O{level}")


def test_reductions_over_unit_dims_are_removed(tmp_path):
    nodes = [helper.make_node("ReduceMean", ["x", "hw"], ["m"], keepdims=1),
             helper.make_node("ReduceMax", ["m", "hw"], ["y"])]  # keepdims defaults to 1
    inits = [init("hw", np.array([-1, -2], i64))]
    proto = make_model(nodes, [dyn("x", ["batch", 3, 1, 1])], [dyn("y", ["batch", 3, 1, 1])],
                       inits, opset=18)
    model = agree(tmp_path, proto)
    assert ops(model) == ["Identity"] or ops(model) == []
    kept = make_model([helper.make_node("ReduceSum", ["x", "hw"], ["y"], keepdims=1)],
                      [dyn("x", ["batch", 3, 2, 1])], [dyn("y", ["batch", 3, 1, 1])], inits,
                      opset=18)
    assert ops(agree(tmp_path, kept)) == ["ReduceSum"]


def test_batchnorm_after_bias_free_matmul_becomes_gemm(tmp_path):
    nodes = [helper.make_node("MatMul", ["x", "W"], ["mm"]),
             helper.make_node("BatchNormalization", ["mm", "s", "b", "m", "v"], ["y"],
                              epsilon=1e-3)]
    inits = [init("W", rng.standard_normal((6, 4)).astype(np.float32)),
             init("s", rng.random(4).astype(np.float32) + 0.5),
             init("b", rng.standard_normal(4).astype(np.float32)),
             init("m", rng.standard_normal(4).astype(np.float32)),
             init("v", rng.random(4).astype(np.float32) + 0.5)]
    proto = make_model(nodes, [dyn("x", ["batch", 6])], [dyn("y", ["batch", 4])], inits,
                       opset=18)
    assert ops(agree(tmp_path, proto)) == ["Gemm"]
    # on a 3-D product BatchNormalization's axis 1 is not the feature axis: kept
    proto3 = make_model([helper.make_node("MatMul", ["x", "W"], ["mm"]),
                         helper.make_node("BatchNormalization", ["mm", "s", "b", "m", "v"],
                                          ["y"])],
                        [dyn("x", ["batch", 4, 6])], [dyn("y", ["batch", 4, 4])], inits,
                        opset=18)
    assert ops(agree(tmp_path, proto3)) == ["MatMul", "BatchNormalization"]


def mha_split_nodes(x, outs, heads_dim):
    """torch MultiheadAttention's packed q/k/v split: unflatten the last dim into
    [len(outs), E], move that axis first, select each."""
    return [helper.make_node("Reshape", [x, "unflat"], ["u5"]),
            helper.make_node("Transpose", ["u5"], ["t5"], perm=[3, 1, 2, 0, 4]),
            helper.make_node("Squeeze", ["t5", "minus2"], ["sq"]),
            *[helper.make_node("Gather", ["sq", f"idx{i}"], [o], axis=0)
              for i, o in enumerate(outs)]]


def test_packed_qkv_selects_become_one_split(tmp_path):
    nodes = mha_split_nodes("x", ["q", "k", "v"], 4)
    inits = [init("unflat", np.array([1, 5, -1, 3, 4], i64)),
             init("minus2", np.array([-2], i64)),
             *[init(f"idx{i}", np.array(i, i64)) for i in range(3)]]
    proto = make_model(nodes, [dyn("x", [5, "batch", 12])],
                       [dyn(n, [5, "batch", 4]) for n in ("q", "k", "v")], inits, opset=18)
    model = agree(tmp_path, proto)
    assert ops(model) == ["Split"]


def test_slices_tiling_a_tensor_become_a_split_and_partial_ones_stay(tmp_path):
    bounds = [(0, 2), (2, 3), (3, 6)]
    nodes = [helper.make_node("Slice", ["x", f"s{i}", f"e{i}", "ax"], [f"y{i}"])
             for i in range(3)]
    inits = [init("ax", np.array([-1], i64))]
    for i, (a, b) in enumerate(bounds):
        inits += [init(f"s{i}", np.array([a], i64)), init(f"e{i}", np.array([b], i64))]
    outs = [dyn(f"y{i}", ["batch", b - a]) for i, (a, b) in enumerate(bounds)]
    relu = [helper.make_node("Relu", [f"y{i}"], [f"r{i}"]) for i in range(3)]
    relu_outs = [dyn(f"r{i}", ["batch", b - a]) for i, (a, b) in enumerate(bounds)]
    proto = make_model(nodes + relu, [dyn("x", ["batch", 6])], relu_outs, inits, opset=18)
    assert ops(agree(tmp_path, proto)) == ["Split", "Relu", "Relu", "Relu"]
    # a gap (3..6 missing): not a tiling
    gap = make_model(nodes[:2] + relu[:2], [dyn("x", ["batch", 6])], relu_outs[:2], inits,
                     opset=18)
    assert ops(agree(tmp_path, gap)).count("Slice") == 2
    # the Slice outputs themselves as graph outputs: the Split takes them over, names kept
    direct = make_model(nodes, [dyn("x", ["batch", 6])], outs, inits, opset=18)
    model = agree(tmp_path, direct)
    assert ops(model) == ["Split"]
    assert [v.name for v in model.graph.outputs] == ["y0", "y1", "y2"]


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("const_shape", [[4, 1, 1], [1, 4, 1, 1], [], [1]])
def test_per_channel_mul_and_add_after_conv_fold_into_it(tmp_path, bias, const_shape):
    conv_in = ["x", "W", "B"] if bias else ["x", "W"]
    nodes = [helper.make_node("Conv", conv_in, ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Mul", ["scale", "c"], ["m"]),
             helper.make_node("Add", ["m", "shift"], ["y"])]
    inits = [init("W", rng.standard_normal((4, 3, 3, 3)).astype(np.float32)),
             init("B", rng.standard_normal(4).astype(np.float32)),
             init("scale", rng.standard_normal(const_shape).astype(np.float32)),
             init("shift", rng.standard_normal(const_shape).astype(np.float32))]
    proto = make_model(nodes, [dyn("x", ["batch", 3, 5, 5])], [dyn("y", ["batch", 4, 5, 5])],
                       inits, opset=18)
    assert ops(agree(tmp_path, proto)) == ["Conv"]


def test_a_spatially_varying_mul_after_conv_stays(tmp_path):
    nodes = [helper.make_node("Conv", ["x", "W"], ["c"]),
             helper.make_node("Mul", ["c", "scale"], ["y"])]
    inits = [init("W", rng.standard_normal((4, 3, 1, 1)).astype(np.float32)),
             init("scale", rng.standard_normal((4, 1, 5)).astype(np.float32))]
    proto = make_model(nodes, [dyn("x", ["batch", 3, 5, 5])], [dyn("y", ["batch", 4, 5, 5])],
                       inits, opset=18)
    assert ops(agree(tmp_path, proto)) == ["Conv", "Mul"]


def test_layer_norm_chain_with_a_scale_across_other_axes_stays(tmp_path):
    inits = [t for t in PATTERN_INITS if t.name != "gamma"]
    inits.append(init("gamma", rng.standard_normal((3, 1)).astype(np.float32)))
    proto = make_model(layer_norm_nodes("x", "y"), [dyn("x", [3, 6])], [dyn("y", [3, 6])],
                       inits, opset=18)
    # the scale is not folded into a LayerNormalization (a scale-free one may take the rest)
    kept = ops(agree(tmp_path, proto))
    assert "Mul" in kept and kept.count("LayerNormalization") <= 1


def test_gelu_is_not_fused_when_the_output_opset_is_older(tmp_path):
    from modelport.convert.pipeline import convert

    proto = make_model(gelu_nodes("x", "y", "erf"), [dyn("x", ["batch", 6])],
                       [dyn("y", ["batch", 6])], PATTERN_INITS, opset=20)
    src = tmp_path / "src.onnx"
    onnx.save(proto, src)
    convert(src, tmp_path / "o20.onnx", level=2, force=True)
    assert [n.op_type for n in onnx.load(tmp_path / "o20.onnx").graph.node] == ["Gelu"]
    convert(src, tmp_path / "o18.onnx", level=2, opset=18, force=True)
    out = onnx.load(tmp_path / "o18.onnx")
    assert out.opset_import[0].version == 18 and "Erf" in [n.op_type for n in out.graph.node]
    feeds = {"x": rng.standard_normal((2, 6)).astype(np.float32)}
    assert_close(run_onnx(tmp_path / "o18.onnx", feeds)["y"], run_onnx(src, feeds)["y"],
                 rtol=1e-4, atol=1e-5)


def test_and_with_all_true_and_or_with_all_false_are_removed(tmp_path):
    nodes = [helper.make_node("Greater", ["x", "zerof"], ["g"]),
             helper.make_node("And", ["trues", "g"], ["a"]),
             helper.make_node("Or", ["a", "falses"], ["o"]),
             helper.make_node("Cast", ["o"], ["y"], to=TensorProto.FLOAT)]
    inits = [init("zerof", np.array(0, np.float32)), init("trues", np.ones(6, bool)),
             init("falses", np.zeros((1, 6), bool))]
    proto = make_model(nodes, [dyn("x", ["batch", 6])], [dyn("y", ["batch", 6])], inits,
                       opset=18)
    assert ops(agree(tmp_path, proto)) == ["Greater", "Cast"]


def test_a_transpose_of_unit_dims_is_a_reshape_and_merges(tmp_path):
    """LSTM output [seq, 1, batch, hidden] -> Transpose(0, 2, 1, 3) -> Reshape [seq, batch,
    hidden], as torch exports a one-directional LSTM layer."""
    nodes = [helper.make_node("Transpose", ["x"], ["t"], perm=[0, 2, 1, 3]),
             helper.make_node("Reshape", ["t", "tgt"], ["r"]),
             helper.make_node("Relu", ["r"], ["y"])]
    inits = [init("tgt", np.array([5, 0, 12], i64))]
    proto = make_model(nodes, [dyn("x", [5, 1, "batch", 12])], [dyn("y", [5, "batch", 12])],
                       inits, opset=18)
    assert ops(agree(tmp_path, proto)) == ["Reshape", "Relu"]
    moves_data = make_model([helper.make_node("Transpose", ["x"], ["y"], perm=[0, 2, 1, 3])],
                            [dyn("x", [5, 2, "batch", 12])], [dyn("y", [5, "batch", 2, 12])],
                            opset=18)
    assert ops(agree(tmp_path, moves_data)) == ["Transpose"]
