"""The standard-pattern rules (graph_ir/passes/patterns.py, activations.py, attention.py):
what each rewrites on a tiny graph (and at which opsets it holds back), that outputs agree
with the unoptimised graph, and a hypothesis property test over random small graphs of the
operators they touch, through the whole convert pipeline at every level.

Outputs are compared in onnxruntime. Where onnxruntime on this machine cannot run an operator
the optimised graph uses (decided at run time), that graph is run by onnx's reference
evaluator instead, and each fused operator is also checked against this file's own numpy
reading of its spec."""

from __future__ import annotations

import math
import warnings

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

i64 = np.int64
RTOL, ATOL = 1e-3, 1e-4  # the tolerance for "numerics unchanged"


def dyn(name, shape):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def optimized(proto, level=2, target_opset=None):
    model = ir.serde.deserialize_model(proto)
    report = optimize(model, level, target_opset=target_opset)
    validate(model)
    return model, report


def ops(model):
    return [n.op_type for n in model.graph]


def run_any(path, feeds):
    """onnxruntime where it has kernels for every operator of the file; else onnx's reference
    evaluator (and a warning saying so: never a silent skip). An error while running is an
    error: only a missing kernel, found when the session is built, falls back."""
    import onnxruntime as ort

    try:
        ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as exc:
        if "NOT_IMPLEMENTED" not in str(exc) and "implementation" not in str(exc):
            raise
        from onnx.reference import ReferenceEvaluator

        warnings.warn(f"onnxruntime has no kernel for an operator of {path}: "
                      f"{str(exc)[:200]}; compared through onnx.reference", stacklevel=2)
        ref = ReferenceEvaluator(onnx.load(path))
        names = [o.name for o in ref.proto_.graph.output]
        return dict(zip(names, ref.run(None, feeds)))
    return run_onnx(path, feeds)


def feeds_for(proto, batch, seed=0):
    rng = np.random.default_rng(seed)
    feeds = {}
    for i in proto.graph.input:
        shape = [batch if d.dim_param else d.dim_value for d in i.type.tensor_type.shape.dim]
        feeds[i.name] = (rng.standard_normal(shape) * 2).astype(np.float32)
    return feeds


def agree(tmp_path, proto, level=2, batches=(1, 3), target_opset=None):
    """Optimise; the outputs equal the original's at each batch size; return the model."""
    src, out = tmp_path / "src.onnx", tmp_path / f"o{level}.onnx"
    onnx.save(proto, src)
    model, _ = optimized(proto, level, target_opset)
    onnx.save(ir.serde.serialize_model(model), out)
    onnx.checker.check_model(onnx.load(out), full_check=True)
    for batch in batches:
        feeds = feeds_for(proto, batch)
        want, got = run_onnx(src, feeds), run_any(out, feeds)
        assert want.keys() == got.keys()
        for k in want:
            assert_close(got[k], want[k], rtol=RTOL, atol=ATOL, name=k)
    return model


def c(name, value):
    return init(name, np.array(value, np.float32))


# -- numpy readings of the operators' specs (independent of onnxruntime) ----------------------

def np_layer_norm(x, scale, bias, eps):
    mean = x.mean(-1, keepdims=True)
    d = x - mean
    return d / np.sqrt((d * d).mean(-1, keepdims=True) + eps) * scale + bias


def np_rms_norm(x, scale, eps):
    return x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * scale


def np_attention(q, k, v, mask=None, scale=None):
    scale = 1 / math.sqrt(q.shape[-1]) if scale is None else scale
    s = q @ np.swapaxes(k, -1, -2) * scale
    if mask is not None:
        s = s + mask
    s = np.exp(s - s.max(-1, keepdims=True))
    return (s / s.sum(-1, keepdims=True)) @ v


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


NP_ACTIVATIONS = {
    "Swish": lambda x, alpha=1.0: x * sigmoid(alpha * x),
    "HardSwish": lambda x: x * np.clip(x / 6 + 0.5, 0, 1),
    "Mish": lambda x: x * np.tanh(np.log1p(np.exp(x))),
}


# -- LayerNormalization at opset 17 -----------------------------------------------------------

def layer_norm_17_nodes(x, y, axis=-1, square="pow"):
    """The chain with ReduceMean's opset-17 ``axes`` attribute."""
    sq = (helper.make_node("Pow", ["d", "two"], ["d2"]) if square == "pow"
          else helper.make_node("Mul", ["d", "d"], ["d2"]))
    return [helper.make_node("ReduceMean", [x], ["m"], axes=[axis]),
            helper.make_node("Sub", [x, "m"], ["d"]), sq,
            helper.make_node("ReduceMean", ["d2"], ["v"], axes=[axis], keepdims=1),
            helper.make_node("Add", ["v", "eps"], ["ve"]),
            helper.make_node("Sqrt", ["ve"], ["sd"]),
            helper.make_node("Div", ["d", "sd"], ["n"]),
            helper.make_node("Mul", ["n", "gamma"], ["ns"]),
            helper.make_node("Add", ["ns", "beta"], [y])]


def norm_inits(d=6, seed=1):
    rng = np.random.default_rng(seed)
    return [c("two", 2.0), c("eps", 1e-5), c("half", -0.5),
            init("gamma", rng.standard_normal(d).astype(np.float32)),
            init("beta", rng.standard_normal(d).astype(np.float32))]


@pytest.mark.parametrize("axis", [-1, 2])
@pytest.mark.parametrize("square", ["pow", "mul"])
def test_layer_norm_chain_at_opset_17_becomes_layer_normalization(tmp_path, axis, square):
    proto = make_model(layer_norm_17_nodes("x", "y", axis, square), [dyn("x", ["batch", 4, 6])],
                       [dyn("y", ["batch", 4, 6])], norm_inits(), opset=17)
    model = agree(tmp_path, proto)
    assert ops(model) == ["LayerNormalization"]
    assert model.opset_imports[""] == 17
    ln = next(iter(model.graph))
    assert ln.attributes.get_float("epsilon") == pytest.approx(1e-5)
    # against the spec's formula too
    feeds = feeds_for(proto, 2)
    p = {t.name: onnx.numpy_helper.to_array(t) for t in proto.graph.initializer}
    onnx.save(ir.serde.serialize_model(model), tmp_path / "ln.onnx")
    assert_close(run_any(tmp_path / "ln.onnx", feeds)["y"],
                 np_layer_norm(feeds["x"], p["gamma"], p["beta"], 1e-5), RTOL, ATOL)
    assert "LayerNormalization" not in ops(optimized(proto, 1)[0])  # -O2 only


@pytest.mark.parametrize("bias", [True, False])
def test_layer_norm_chain_without_scale_becomes_layer_normalization(tmp_path, bias):
    chain = [n for n in layer_norm_17_nodes("x", "y") if n.output[0] != "ns"]
    chain[-1].input[0] = "n"  # + beta straight after the division
    if not bias:
        chain = chain[:-1]
        chain[-1].output[0] = "y"
    proto = make_model(chain, [dyn("x", ["batch", 4, 6])], [dyn("y", ["batch", 4, 6])],
                       norm_inits(), opset=17)
    model = agree(tmp_path, proto)
    assert [o for o in ops(model) if o != "Constant"] == ["LayerNormalization"]
    ln = next(n for n in model.graph if n.op_type == "LayerNormalization")
    assert len([v for v in ln.inputs if v is not None]) == (3 if bias else 2)


def test_opset_17_reduce_means_that_no_rule_takes_keep_their_attribute_form(tmp_path):
    nodes = [helper.make_node("ReduceMean", ["x"], ["m"], axes=[-1]),
             helper.make_node("Sub", ["x", "m"], ["d"]),
             helper.make_node("Abs", ["d"], ["a"]),
             helper.make_node("Sqrt", ["a"], ["s"]),  # the chain's ops, not its shape
             helper.make_node("ReduceMean", ["s"], ["y"], axes=[1], keepdims=0)]
    proto = make_model(nodes, [dyn("x", ["batch", 6])], [dyn("y", ["batch"])], [],
                       opset=17)
    model = agree(tmp_path, proto)
    means = [n for n in model.graph if n.op_type == "ReduceMean"]
    assert len(means) == 2 and all(len(n.inputs) == 1 for n in means)
    assert [list(n.attributes["axes"].as_ints()) for n in means] == [[-1], [-1]]
    assert not model.graph.initializers


def test_layer_norm_chain_over_a_middle_axis_stays(tmp_path):
    proto = make_model(layer_norm_17_nodes("x", "y", 1), [dyn("x", ["batch", 4, 6])],
                       [dyn("y", ["batch", 4, 6])], norm_inits(), opset=17)
    assert "LayerNormalization" not in ops(agree(tmp_path, proto))


# -- RMSNormalization -------------------------------------------------------------------------

def rms_nodes(x, y, square="pow", norm="reciprocal", scale_first=False):
    sq = (helper.make_node("Pow", [x, "two"], ["x2"]) if square == "pow"
          else helper.make_node("Mul", [x, x], ["x2"]))
    nodes = [sq, helper.make_node("ReduceMean", ["x2", "axes"], ["ms"], keepdims=1),
             helper.make_node("Add", ["ms", "eps"], ["mse"])]
    if norm == "reciprocal":
        nodes += [helper.make_node("Sqrt", ["mse"], ["r"]),
                  helper.make_node("Reciprocal", ["r"], ["ir"]),
                  helper.make_node("Mul", [x, "ir"], ["n"])]
    elif norm == "div":
        nodes += [helper.make_node("Sqrt", ["mse"], ["r"]),
                  helper.make_node("Div", [x, "r"], ["n"])]
    else:  # rsqrt as Pow(-0.5)
        nodes += [helper.make_node("Pow", ["mse", "half"], ["ir"]),
                  helper.make_node("Mul", ["ir", x], ["n"])]
    nodes.append(helper.make_node("Mul", ["gamma", "n"] if scale_first else ["n", "gamma"],
                                  [y]))
    return nodes


def rms_inits(axes=(-1,)):
    return [*norm_inits(), init("axes", np.array(axes, i64))]


@pytest.mark.parametrize("square,norm,scale_first", [
    ("pow", "reciprocal", False), ("mul", "reciprocal", True), ("pow", "div", False),
    ("mul", "div", True), ("mul", "rsqrt", False)])
def test_rms_norm_chain_becomes_opset23_rms_normalization(tmp_path, square, norm, scale_first):
    proto = make_model(rms_nodes("x", "y", square, norm, scale_first),
                       [dyn("x", ["batch", 4, 6])], [dyn("y", ["batch", 4, 6])], rms_inits(),
                       opset=23)
    model = agree(tmp_path, proto)
    assert ops(model) == ["RMSNormalization"]
    feeds = feeds_for(proto, 2)
    gamma = onnx.numpy_helper.to_array(next(t for t in proto.graph.initializer
                                            if t.name == "gamma"))
    onnx.save(ir.serde.serialize_model(model), tmp_path / "rms.onnx")
    assert_close(run_any(tmp_path / "rms.onnx", feeds)["y"], np_rms_norm(feeds["x"], gamma,
                                                                          1e-5), RTOL, ATOL)


def test_rms_norm_chain_stays_below_opset_23(tmp_path):
    nodes = rms_nodes("x", "y", "mul", "div")
    proto22 = make_model(nodes, [dyn("x", ["batch", 6])], [dyn("y", ["batch", 6])],
                         rms_inits(), opset=22)
    assert "RMSNormalization" not in ops(agree(tmp_path, proto22))
    proto23 = make_model(nodes, [dyn("x", ["batch", 6])], [dyn("y", ["batch", 6])],
                         rms_inits(), opset=23)
    assert "RMSNormalization" not in ops(agree(tmp_path, proto23, target_opset=22))
    # a positive last axis is the last axis
    pos = make_model(nodes, [dyn("x", ["batch", 6])], [dyn("y", ["batch", 6])],
                     rms_inits((1,)), opset=23)
    assert ops(agree(tmp_path, pos)) == ["RMSNormalization"]


# -- activations ------------------------------------------------------------------------------

def silu_nodes(x, y, beta=False):
    if beta:
        return [helper.make_node("Mul", ["beta_s", x], ["bx"]),
                helper.make_node("Sigmoid", ["bx"], ["s"]),
                helper.make_node("Mul", ["s", x], [y])]
    return [helper.make_node("Sigmoid", [x], ["s"]), helper.make_node("Mul", [x, "s"], [y])]


def hardswish_nodes(x, y, form):
    """x * relu6(x + 3) / 6 in the spellings the importers and exporters write."""
    a = helper.make_node("Add", [x, "three"], ["a"])
    relu6 = {"clip": [helper.make_node("Clip", ["a", "zero", "six"], ["r"])],
             "minmax": [helper.make_node("Max", ["a", "zero"], ["r0"]),
                        helper.make_node("Min", ["r0", "six"], ["r"])],
             "relu_min": [helper.make_node("Relu", ["a"], ["r0"]),
                          helper.make_node("Min", ["six", "r0"], ["r"])]}
    if form.endswith("_div"):  # onnxscript's own spelling
        return [a, *relu6[form[:-4]], helper.make_node("Mul", ["r", x], ["m"]),
                helper.make_node("Div", ["m", "six"], [y])]
    kind, order = form.split("/")
    if order == "outer":  # (x * relu6) * (1/6)
        tail = [helper.make_node("Mul", [x, "r"], ["m"]),
                helper.make_node("Mul", ["m", "sixth"], [y])]
    elif order == "sigmoid":  # x * (relu6 * (1/6))  (Keras' hard_sigmoid, then hard_swish)
        tail = [helper.make_node("Mul", ["r", "sixth"], ["hs"]),
                helper.make_node("Mul", [x, "hs"], [y])]
    else:  # (x * (1/6)) * relu6
        tail = [helper.make_node("Mul", ["sixth", x], ["m"]),
                helper.make_node("Mul", ["r", "m"], [y])]
    return [a, *relu6[kind], *tail]


def mish_nodes(x, y, form):
    if form == "softplus":
        inner = [helper.make_node("Softplus", [x], ["sp"])]
    else:
        inner = [helper.make_node("Exp", [x], ["e"]),
                 helper.make_node("Add", ["onef", "e"], ["e1"]),
                 helper.make_node("Log", ["e1"], ["sp"])]
    return [*inner, helper.make_node("Tanh", ["sp"], ["t"]),
            helper.make_node("Mul", ["t", x], [y])]


ACT_INITS = [c("three", 3.0), c("zero", 0.0), c("six", 6.0), c("sixth", 1 / 6),
             c("onef", 1.0), c("beta_s", 1.702)]


def act_model(nodes, opset):
    return make_model(nodes, [dyn("x", ["batch", 3, 5])], [dyn("y", ["batch", 3, 5])],
                      ACT_INITS, opset=opset)


def check_against_spec(tmp_path, model, proto, op, **attrs):
    onnx.save(ir.serde.serialize_model(model), tmp_path / "act.onnx")
    feeds = feeds_for(proto, 2, seed=5)
    assert_close(run_any(tmp_path / "act.onnx", feeds)["y"],
                 NP_ACTIVATIONS[op](feeds["x"], **attrs), RTOL, ATOL, name=op)


@pytest.mark.parametrize("beta", [False, True])
def test_silu_becomes_opset24_swish_and_stays_below(tmp_path, beta):
    model = agree(tmp_path, act_model(silu_nodes("x", "y", beta), 24))
    assert ops(model) == ["Swish"]
    alpha = next(iter(model.graph)).attributes.get_float("alpha", 1.0)
    assert alpha == pytest.approx(1.702 if beta else 1.0)
    check_against_spec(tmp_path, model, act_model([], 24), "Swish", alpha=alpha)
    # no Swish before opset 24: x * Sigmoid(x) is the canonical form there
    assert "Sigmoid" in ops(agree(tmp_path, act_model(silu_nodes("x", "y", beta), 23)))
    assert "Sigmoid" in ops(agree(tmp_path, act_model(silu_nodes("x", "y", beta), 24),
                                  target_opset=23))
    # nor above 24, where onnxruntime (1.32) has no Swish kernel
    assert "Sigmoid" in ops(agree(tmp_path, act_model(silu_nodes("x", "y", beta), 25)))


@pytest.mark.parametrize("form", ["clip_div", "minmax_div", "relu_min_div", "clip/outer",
                                  "clip/sigmoid", "clip/sixth_x", "minmax/outer",
                                  "relu_min/sigmoid", "relu_min/sixth_x"])
def test_hardswish_spellings_become_hardswish(tmp_path, form):
    model = agree(tmp_path, act_model(hardswish_nodes("x", "y", form), 18))
    assert ops(model) == ["HardSwish"]
    check_against_spec(tmp_path, model, act_model([], 18), "HardSwish")


def test_hard_sigmoid_by_multiplication_and_relu6_as_min_relu(tmp_path):
    nodes = [helper.make_node("Add", ["x", "three"], ["a"]),
             helper.make_node("Relu", ["a"], ["r0"]),
             helper.make_node("Min", ["r0", "six"], ["r"]),
             helper.make_node("Mul", ["r", "sixth"], ["y"])]
    model = agree(tmp_path, act_model(nodes, 18))
    assert ops(model) == ["HardSigmoid"]
    relu6 = agree(tmp_path, act_model([helper.make_node("Relu", ["x"], ["r0"]),
                                       helper.make_node("Min", ["r0", "six"], ["y"])], 18))
    assert ops(relu6) == ["Clip"]
    # Clip's bounds are inputs from opset 11 on, and the rules write opset-13 forms
    old = agree(tmp_path, act_model([helper.make_node("Relu", ["x"], ["r0"]),
                                     helper.make_node("Min", ["r0", "six"], ["y"])], 12))
    assert ops(old) == ["Relu", "Min"]


@pytest.mark.parametrize("form", ["clip_div", "clip/sigmoid"])
def test_hardswish_is_not_made_below_opset_14(tmp_path, form):
    """Neither for a graph at opset 13 nor for one written at --opset 13 (onnxscript's own
    HardSwish rules do not look at the opset: they run where it is checked)."""
    from modelport.convert.pipeline import convert

    proto = act_model(hardswish_nodes("x", "y", form), 13)
    src, out = tmp_path / "src.onnx", tmp_path / "out.onnx"
    onnx.save(proto, src)
    convert(src, out, level=2, force=True)
    written = onnx.load(out)
    assert written.opset_import[0].version == 13
    assert "HardSwish" not in [n.op_type for n in written.graph.node]
    feeds = feeds_for(proto, 2)
    assert_close(run_onnx(out, feeds)["y"], run_onnx(src, feeds)["y"], RTOL, ATOL)
    # (onnx's converter cannot take Add/Mul from 18 down to 13: the pass alone, told the target)
    newer = optimized(act_model(hardswish_nodes("x", "y", form), 18), 2, target_opset=13)[0]
    assert "HardSwish" not in ops(newer)


@pytest.mark.parametrize("op,k", [("Mul", 1 / 6), ("Div", 6.0), ("Mul", 0.2)])
def test_a_clip_from_zero_scaled_to_one_is_a_hard_sigmoid(tmp_path, op, k):
    """The squeeze-excite gate once its + 3 went into the Conv before it."""
    nodes = [helper.make_node("Clip", ["x", "zero", "six"], ["r"]),
             helper.make_node(op, ["r", "k"], ["y"])]
    proto = make_model(nodes, [dyn("x", ["batch", 3, 5])], [dyn("y", ["batch", 3, 5])],
                       [*ACT_INITS, c("k", k)], opset=18)
    model = agree(tmp_path, proto)
    assert ops(model) == (["Clip", "Mul"] if k == 0.2 else ["HardSigmoid"])  # 0.2 * 6 != 1


@pytest.mark.parametrize("chain", ["hardswish", "hardsigmoid", "gelu"])
def test_double_chains_stay_where_onnxruntime_has_no_double_kernel(tmp_path, chain):
    from tests.graph_ir.test_o2_passes import gelu_nodes

    nodes = {"hardswish": hardswish_nodes("x", "y", "clip/outer"),
             "hardsigmoid": [helper.make_node("Clip", ["x", "zero", "six"], ["r"]),
                             helper.make_node("Mul", ["r", "sixth"], ["y"])],
             "gelu": gelu_nodes("x", "y", "tanh")}[chain]  # (no double Erf kernel either)
    consts = {"three": 3.0, "zero": 0.0, "six": 6.0, "sixth": 1 / 6, "onef": 1.0,
              "half": 0.5, "three_f": 3.0, "c044": 0.044715, "c_s2pi": math.sqrt(2 / math.pi)}
    d = TensorProto.DOUBLE
    proto = make_model(nodes, [helper.make_tensor_value_info("x", d, ["batch", 3])],
                       [helper.make_tensor_value_info("y", d, ["batch", 3])],
                       [init(k, np.array(v, np.float64)) for k, v in consts.items()], opset=20)
    model, _ = optimized(proto)
    assert not {"HardSwish", "HardSigmoid", "Gelu"} & set(ops(model))
    onnx.save(ir.serde.serialize_model(model), tmp_path / "d.onnx")
    x = np.random.default_rng(2).standard_normal((2, 3)) * 4
    onnx.save(proto, tmp_path / "src.onnx")
    assert_close(run_onnx(tmp_path / "d.onnx", {"x": x})["y"],
                 run_onnx(tmp_path / "src.onnx", {"x": x})["y"], RTOL, ATOL)


def test_relu6_with_other_constants_is_not_hardswish(tmp_path):
    proto = act_model(hardswish_nodes("x", "y", "clip/outer"), 18)
    for t in proto.graph.initializer:
        if t.name == "three":
            t.CopyFrom(onnx.numpy_helper.from_array(np.array(2.5, np.float32), "three"))
    assert "HardSwish" not in ops(agree(tmp_path, proto))


@pytest.mark.parametrize("form", ["softplus", "log_exp"])
def test_mish_becomes_opset18_mish_and_stays_below(tmp_path, form):
    model = agree(tmp_path, act_model(mish_nodes("x", "y", form), 18))
    assert ops(model) == ["Mish"]
    check_against_spec(tmp_path, model, act_model([], 18), "Mish")
    assert "Tanh" in ops(agree(tmp_path, act_model(mish_nodes("x", "y", form), 17)))


# -- attention --------------------------------------------------------------------------------

def attention_nodes(q, k, v, y, mask=False, scale="mul", where=False):
    nodes = [helper.make_node("Transpose", [k], ["kt"], perm=[0, 1, 3, 2]),
             helper.make_node("MatMul", [q, "kt"], ["s0"])]
    if scale == "mul":
        nodes.append(helper.make_node("Mul", ["s0", "qk_scale"], ["s1"]))
    elif scale == "div":
        nodes.append(helper.make_node("Div", ["s0", "qk_div"], ["s1"]))
    else:
        nodes.append(helper.make_node("Identity", ["s0"], ["s1"]))
    if mask:
        nodes.append(helper.make_node("Add", ["s1", "mask"], ["s2"]))
    else:
        nodes.append(helper.make_node("Identity", ["s1"], ["s2"]))
    nodes.append(helper.make_node("Softmax", ["s2"], ["w0"], axis=-1))
    if where:
        nodes += [helper.make_node("IsNaN", ["w0"], ["nan"]),
                  helper.make_node("Where", ["nan", "zerof", "w0"], ["w"])]
    else:
        nodes.append(helper.make_node("Identity", ["w0"], ["w"]))
    nodes.append(helper.make_node("MatMul", ["w", v], [y]))
    return nodes


def attention_model(opset, mask=False, scale="mul", where=False, heads=2, seq=5, dim=4,
                    mask_shape=None):
    shape = ["batch", heads, seq, dim]
    inputs = [dyn("q", shape), dyn("k", shape), dyn("v", shape)]
    if mask:
        inputs.append(dyn("mask", mask_shape or ["batch", 1, seq, seq]))
    return make_model(attention_nodes("q", "k", "v", "y", mask, scale, where), inputs,
                      [dyn("y", shape)],
                      [c("qk_scale", 0.3), c("qk_div", 2.0), c("zerof", 0.0)], opset=opset)


@pytest.mark.parametrize("mask,scale,where", [(False, "mul", False), (True, "div", True),
                                              (True, "none", False), (False, "div", True)])
def test_attention_block_becomes_opset23_attention(tmp_path, mask, scale, where):
    proto = attention_model(23, mask, scale, where)
    model = agree(tmp_path, proto)
    assert ops(model) == ["Attention"]
    node = next(iter(model.graph))
    want = {"mul": 0.3, "div": 0.5, "none": 1.0}[scale]
    assert node.attributes.get_float("scale", 0.5) == pytest.approx(want)
    feeds = feeds_for(proto, 2)
    onnx.save(ir.serde.serialize_model(model), tmp_path / "att.onnx")
    assert_close(run_any(tmp_path / "att.onnx", feeds)["y"],
                 np_attention(feeds["q"], feeds["k"], feeds["v"], feeds.get("mask"), want),
                 RTOL, ATOL)


def test_attention_block_stays_intact_below_opset_23(tmp_path):
    kept = ops(agree(tmp_path, attention_model(20, mask=True)))
    assert "Attention" not in kept and {"MatMul", "Softmax", "Transpose"} <= set(kept)
    assert "Attention" not in ops(agree(tmp_path, attention_model(23), target_opset=22))


def test_attention_with_the_key_in_bshd_order_gets_a_transpose(tmp_path):
    """K as [B, S, H, d], transposed straight to [B, H, d, S] for the product."""
    nodes = attention_nodes("q", "k", "v", "y", scale="none")
    nodes[0] = helper.make_node("Transpose", ["k"], ["kt"], perm=[0, 2, 3, 1])
    proto = make_model(nodes, [dyn("q", ["batch", 2, 5, 4]), dyn("k", ["batch", 5, 2, 4]),
                               dyn("v", ["batch", 2, 5, 4])], [dyn("y", ["batch", 2, 5, 4])],
                       [c("zerof", 0.0)], opset=23)
    model = agree(tmp_path, proto)
    assert ops(model) == ["Transpose", "Attention"]
    feeds = feeds_for(proto, 2)
    onnx.save(ir.serde.serialize_model(model), tmp_path / "att.onnx")
    assert_close(run_any(tmp_path / "att.onnx", feeds)["y"],
                 np_attention(feeds["q"], feeds["k"].transpose(0, 2, 1, 3), feeds["v"],
                              scale=1.0), RTOL, ATOL)


def test_attention_with_a_mask_that_broadcasts_over_queries_stays(tmp_path):
    """[B, 1, 1, L] (BERT's padding mask): the spec allows it, onnxruntime refuses it."""
    proto = attention_model(23, mask=True, mask_shape=["batch", 1, 1, 5])
    assert "Attention" not in ops(agree(tmp_path, proto))
    square = attention_model(23, mask=True, mask_shape=[5, 5])
    assert ops(agree(tmp_path, square)) == ["Attention"]
    # dims of unknown size prove nothing
    unknown = attention_model(23, mask=True, mask_shape=["batch", 1, "", ""])
    for d in unknown.graph.input[3].type.tensor_type.shape.dim[2:]:
        d.Clear()
    assert "Attention" not in ops(optimized(unknown)[0])


def test_attention_with_the_default_scale_leaves_it_out(tmp_path):
    proto = attention_model(23, scale="div")
    for t in proto.graph.initializer:  # 1/sqrt(head_dim 4) = 0.5, i.e. divide by 2
        assert t.name != "qk_div" or onnx.numpy_helper.to_array(t) == 2.0
    node = next(iter(agree(tmp_path, proto).graph))
    assert "scale" not in node.attributes


def test_gelu_with_a_two_input_sum_becomes_gelu(tmp_path):
    """ONNX's own Gelu function body: Sum(1, Erf(x / sqrt 2)) * (0.5 * x)."""
    nodes = [helper.make_node("Div", ["x", "sqrt2"], ["g1"]),
             helper.make_node("Erf", ["g1"], ["g2"]),
             helper.make_node("Sum", ["onef", "g2"], ["g3"]),
             helper.make_node("Mul", ["half", "x"], ["g4"]),
             helper.make_node("Mul", ["g4", "g3"], ["y"])]
    proto = make_model(nodes, [dyn("x", ["batch", 3, 5])], [dyn("y", ["batch", 3, 5])],
                       [*ACT_INITS, c("sqrt2", math.sqrt(2)), c("half", 0.5)], opset=20)
    assert ops(agree(tmp_path, proto)) == ["Gelu"]


# -- the pass at the target opset -------------------------------------------------------------

def test_fusions_hold_back_for_an_older_output_opset(tmp_path):
    from modelport.convert.pipeline import convert

    proto = act_model(mish_nodes("x", "y", "softplus"), 18)
    src = tmp_path / "src.onnx"
    onnx.save(proto, src)
    convert(src, tmp_path / "o17.onnx", level=2, opset=17, force=True)
    out = onnx.load(tmp_path / "o17.onnx")
    assert out.opset_import[0].version == 17
    assert "Mish" not in [n.op_type for n in out.graph.node]
    feeds = feeds_for(proto, 2)
    assert_close(run_onnx(tmp_path / "o17.onnx", feeds)["y"], run_onnx(src, feeds)["y"],
                 RTOL, ATOL)


# -- property test ----------------------------------------------------------------------------

STEPS = ["ln17", "rms", "silu", "silu_beta", "hardswish", "mish", "relu", "attention", "attention"]


@st.composite
def pattern_graphs(draw):
    """A chain over x [batch, 2, 4, 6] of the spelled-out patterns (and near misses: the
    constants perturbed) at a drawn opset."""
    opset = draw(st.sampled_from([17, 18, 20, 23, 24]))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    consts, nodes = [], []
    counter = [0]
    cur = "x"

    def fresh(p="v"):
        counter[0] += 1
        return f"{p}{counter[0]}"

    def const(value, dtype=np.float32):
        name = fresh("c")
        consts.append(init(name, np.asarray(value, dtype)))
        return name

    def splice(chain, x_name, constants):
        """Rename a chain's inputs x/consts and its intermediate values to fresh names."""
        names = {x_name: cur, **constants}
        out = None
        for n in chain:
            for i, v in enumerate(n.input):
                n.input[i] = names.get(v, v)
            for i, v in enumerate(n.output):
                names[v] = out = fresh()
                n.output[i] = out
            nodes.append(n)
        return out

    near = draw(st.booleans())  # perturb the chain's constants so it must not be fused
    bump = 1.25 if near else 1.0
    for step in draw(st.lists(st.sampled_from(STEPS), min_size=1, max_size=4)):
        if step == "ln17" or step == "rms":
            gamma = const(rng.standard_normal(6))
            names = {"two": const(2.0), "eps": const(1e-5), "half": const(-0.5),
                     "gamma": gamma, "beta": const(rng.standard_normal(6))}
            if step == "ln17":
                if opset < 18:
                    chain = layer_norm_17_nodes("X", "Y", -1, draw(st.sampled_from(["pow",
                                                                                   "mul"])))
                else:  # the same chain in the opset-18 form
                    chain = layer_norm_17_nodes("X", "Y", -1, "pow")
                    for n in chain:
                        if n.op_type == "ReduceMean":
                            del n.attribute[:]
                            n.input.append("axes")
                            n.attribute.append(helper.make_attribute("keepdims", 1))
                    names["axes"] = const([-1], i64)
                if draw(st.booleans()):  # without the scale
                    chain = [n for n in chain if n.output[0] != "ns"]
                    chain[-1].input[0] = "n"
            else:
                if opset < 18:
                    continue
                chain = rms_nodes("X", "Y", draw(st.sampled_from(["pow", "mul"])),
                                  draw(st.sampled_from(["reciprocal", "div", "rsqrt"])),
                                  draw(st.booleans()))
                names["axes"] = const([draw(st.sampled_from([-1, 3]))], i64)
            cur = splice(chain, "X", names)
        elif step in ("silu", "silu_beta"):
            cur = splice(silu_nodes("X", "Y", step == "silu_beta"), "X",
                         {"beta_s": const(1.702)})
        elif step == "hardswish":
            form = draw(st.sampled_from(["clip_div", "minmax/outer", "relu_min/sigmoid",
                                         "clip/sixth_x"]))
            cur = splice(hardswish_nodes("X", "Y", form), "X",
                         {"three": const(3.0 * bump), "zero": const(0.0), "six": const(6.0),
                          "sixth": const(1 / 6)})
        elif step == "mish":
            cur = splice(mish_nodes("X", "Y", draw(st.sampled_from(["softplus", "log_exp"]))),
                         "X", {"onef": const(bump)})
        elif step == "attention":
            # x [b, 2, 4, 6] as q; k, v = x times constant [6, 6] projections
            k, v = fresh(), fresh()
            nodes += [helper.make_node("MatMul", [cur, const(rng.standard_normal((6, 6)))],
                                       [k]),
                      helper.make_node("MatMul", [cur, const(rng.standard_normal((6, 6)))],
                                       [v])]
            chain = attention_nodes("Q", "K", "V", "Y", False,
                                    draw(st.sampled_from(["mul", "div", "none"])),
                                    draw(st.booleans()))
            names = {"Q": cur, "K": k, "V": v, "qk_scale": const(0.3), "qk_div": const(2.0),
                     "zerof": const(0.0)}
            cur = splice(chain, "Q", names)
        else:
            out = fresh()
            nodes.append(helper.make_node("Relu", [cur], [out]))
            cur = out
    nodes.append(helper.make_node("Identity", [cur], ["y"]))
    return make_model(nodes, [dyn("x", ["batch", 2, 4, 6])], [dyn("y", ["batch", 2, 4, 6])],
                      consts, opset=opset)


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(proto=pattern_graphs())
def test_random_pattern_graphs_keep_their_outputs_through_the_pipeline(tmp_path, proto):
    from modelport.convert.pipeline import convert

    src = tmp_path / "src.onnx"
    onnx.save(proto, src)
    feeds = feeds_for(proto, 3, seed=7)
    want = run_onnx(src, feeds)["y"]
    for level in (0, 1, 2):
        out = tmp_path / f"o{level}.onnx"
        convert(src, out, level=level, force=True)
        assert_close(run_any(out, feeds)["y"], want, rtol=RTOL, atol=ATOL, name=f"-O{level}")


def test_raising_the_opset_lets_the_newer_operators_be_recognised(tmp_path):
    """A file at opset 18 converted with --opset 23: the graph goes up before the passes run,
    so the RMS chain becomes RMSNormalization and the attention block Attention; the outputs
    still match the original's."""
    from modelport.convert.pipeline import convert

    rms = make_model(rms_nodes("x", "y", "mul", "div"), [dyn("x", ["batch", 4, 6])],
                     [dyn("y", ["batch", 4, 6])], rms_inits(), opset=18)
    for name, proto, op in [("rms", rms, "RMSNormalization"),
                            ("att", attention_model(18), "Attention")]:
        src, out = tmp_path / f"{name}.onnx", tmp_path / f"{name}-23.onnx"
        onnx.save(proto, src)
        convert(str(src), str(out), level=2, opset=23)
        written = onnx.load(out)
        assert written.opset_import[0].version == 23
        assert op in [n.op_type for n in written.graph.node]
        for batch in (1, 3):
            feeds = feeds_for(proto, batch)
            want, got = run_onnx(src, feeds), run_any(out, feeds)
            for k in want:
                assert_close(got[k], want[k], rtol=RTOL, atol=ATOL, name=k)
        # without --opset the file keeps its opset and its chain
        convert(str(src), str(out), level=2, force=True)
        assert op not in [n.op_type for n in onnx.load(out).graph.node]
