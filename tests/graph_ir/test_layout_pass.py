"""The layout pass (graph_ir/passes/layout.py): one tiny graph per rule, the Transposes that must
go, and the outputs compared with the unoptimised graph in onnxruntime on seeded inputs."""

from __future__ import annotations

import numpy as np
import onnx
import onnx_ir as ir
import pytest
from onnx import TensorProto, helper

from modelport.graph_ir import validate
from modelport.graph_ir.passes import optimize
from modelport.graph_ir.passes.layout import TransposePushPass
from tests.conftest import f32, init, make_model
from tests.oracles import assert_close, run_onnx

CF = [0, 3, 1, 2]  # NHWC -> NCHW
CL = [0, 2, 3, 1]  # NCHW -> NHWC
X = [2, 4, 5, 3]  # an NHWC input
rng = np.random.default_rng(0)


def arr(*shape):
    return rng.standard_normal(shape).astype(np.float32)


def T(src, dst, perm, name=None):
    return helper.make_node("Transpose", [src], [dst], perm=perm, name=name or f"T_{dst}")


def feeds_for(proto, seed=1):
    r = np.random.default_rng(seed)
    feeds = {}
    for vi in proto.graph.input:
        shape = [d.dim_value for d in vi.type.tensor_type.shape.dim]
        feeds[vi.name] = r.standard_normal(shape).astype(np.float32)
    return feeds


def run_pass(proto, level=None):
    """The pass alone (level None) or the whole optimiser at a level; returns (model, proto)."""
    model = ir.serde.deserialize_model(proto)
    if level is None:
        TransposePushPass()(model)
    else:
        optimize(model, level)
    validate(model)
    return model, ir.serde.serialize_model(model)


def transposes(model):
    return [n for n in model.graph if n.op_type == "Transpose"]


def ops(model):
    return [n.op_type for n in model.graph]


def assert_same_outputs(before, after, tmp_path, seed=1):
    a, b = tmp_path / "before.onnx", tmp_path / "after.onnx"
    onnx.save(before, a)
    onnx.save(after, b)
    feeds = feeds_for(before, seed)
    want, got = run_onnx(a, feeds), run_onnx(b, feeds)
    assert list(got) == list(want)  # same output names, same order
    for name in want:
        assert_close(got[name], want[name], rtol=1e-5, atol=1e-6, name=name)


def sandwich(middle, out_shape, inits=(), extra_inputs=(), opset=17, tail=CF):
    """x (NHWC) → T(CF) → Conv 1×1 → T(CL) → middle (on 'm_in') → T(CF) → Neg → y."""
    nodes = [
        T("x", "t_in", CF),
        helper.make_node("Conv", ["t_in", "w_cf"], ["nchw"], name="conv"),  # layout-sensitive
        T("nchw", "m_in", CL),
        *middle,
    ]
    if tail is not None:
        nodes.append(T("m_out", "t_out", tail))
        nodes.append(helper.make_node("Neg", ["t_out"], ["y"], name="neg"))
    else:
        nodes.append(helper.make_node("Neg", ["m_out"], ["y"], name="neg"))
    return make_model(nodes, [f32("x", X), *extra_inputs], [f32("y", out_shape)],
                      [init("w_cf", W_CF), *inits], opset=opset)


NCHW_OUT = [2, 3, 4, 5]
W_CF = arr(3, 3, 1, 1)

CASES = {
    "relu": ([helper.make_node("Relu", ["m_in"], ["m_out"])], NCHW_OUT, []),
    "sigmoid_tanh": ([helper.make_node("Sigmoid", ["m_in"], ["s"]),
                      helper.make_node("Tanh", ["s"], ["m_out"])], NCHW_OUT, []),
    "leaky_relu": ([helper.make_node("LeakyRelu", ["m_in"], ["m_out"], alpha=0.2)],
                   NCHW_OUT, []),
    "clip": ([helper.make_node("Clip", ["m_in", "lo", "hi"], ["m_out"])], NCHW_OUT,
             [init("lo", np.float32(-0.5)), init("hi", np.float32(0.5))]),
    "add_channel_constant": ([helper.make_node("Add", ["m_in", "bias"], ["m_out"])], NCHW_OUT,
                             [init("bias", arr(3))]),
    "mul_full_constant": ([helper.make_node("Mul", ["m_in", "scale"], ["m_out"])], NCHW_OUT,
                          [init("scale", arr(1, 4, 5, 3))]),
    "sub_rank2_constant": ([helper.make_node("Sub", ["m_in", "c"], ["m_out"])], NCHW_OUT,
                           [init("c", arr(5, 3))]),
    "div_scalar": ([helper.make_node("Div", ["m_in", "two"], ["m_out"])], NCHW_OUT,
                   [init("two", np.float32(2.0))]),
    "concat_last_axis": ([helper.make_node("Concat", ["m_in", "m_in"], ["m_out"], axis=-1)],
                         [2, 6, 4, 5], []),
    "pad": ([helper.make_node("Pad", ["m_in", "pads"], ["m_out"])], [2, 3, 7, 8],
            [init("pads", np.array([0, 1, 2, 0, 0, 2, 1, 0], np.int64))]),
    "reduce_keepdims": ([helper.make_node("ReduceMean", ["m_in"], ["m_out"], axes=[1, 2])],
                        [2, 3, 1, 1], []),
    "softmax_channels": ([helper.make_node("Softmax", ["m_in"], ["m_out"], axis=3)],
                         NCHW_OUT, []),
    "slice_channels": ([helper.make_node("Slice", ["m_in", "st", "en", "ax"], ["m_out"])],
                       [2, 2, 4, 5], [init("st", np.array([1], np.int64)),
                                      init("en", np.array([3], np.int64)),
                                      init("ax", np.array([-1], np.int64))]),
    "resize_scales": ([helper.make_node("Resize", ["m_in", "", "sc"], ["m_out"], mode="nearest")],
                      [2, 3, 8, 10], [init("sc", np.array([1, 2, 2, 1], np.float32))]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_pushed_through_and_cancelled(case, tmp_path):
    middle, out_shape, inits = CASES[case]
    proto = sandwich(middle, out_shape, inits)
    model, after = run_pass(proto)
    # Only the input Transpose remains: the one the interface needs.
    assert [t.inputs[0].name for t in transposes(model)] == ["x"]
    assert_same_outputs(proto, after, tmp_path)


def test_reduce_opset18_axes_input_and_keepdims_0(tmp_path):
    middle = [helper.make_node("ReduceSum", ["m_in", "axes"], ["m_out"], keepdims=0)]
    # NHWC reduced over H, W: (N, C) needs no Transpose at all.
    proto = sandwich(middle, [2, 3], [init("axes", np.array([1, 2], np.int64))], opset=18,
                     tail=None)
    model, after = run_pass(proto)
    assert len(transposes(model)) == 1
    assert_same_outputs(proto, after, tmp_path)


def test_argmax_keepdims_0_keeps_a_smaller_transpose(tmp_path):
    middle = [helper.make_node("ArgMax", ["m_in"], ["a"], axis=1, keepdims=0),
              helper.make_node("Cast", ["a"], ["m_out"], to=TensorProto.FLOAT)]
    proto = sandwich(middle, [2, 5, 3], tail=None)  # NHWC without H: (N, W, C)
    model, after = run_pass(proto)
    assert len(transposes(model)) == 2  # count kept: the transpose moved past ArgMax
    perms = [list(t.attributes["perm"].as_ints()) for t in transposes(model)]
    assert [0, 2, 1] in perms
    assert_same_outputs(proto, after, tmp_path)


def test_split_outputs_each_cancel(tmp_path):
    nodes = [
        T("x", "t_in", CF),
        helper.make_node("Conv", ["t_in", "w_cf"], ["nchw"]),
        T("nchw", "m_in", CL),
        helper.make_node("Split", ["m_in", "sizes"], ["a", "b"], axis=3),
        T("a", "ta", CF), T("b", "tb", CF),
        helper.make_node("Add", ["ta", "one"], ["y1"]),
        helper.make_node("Sub", ["tb", "one"], ["y2"]),
    ]
    proto = make_model(nodes, [f32("x", X)], [f32("y1", [2, 1, 4, 5]), f32("y2", [2, 2, 4, 5])],
                       [init("sizes", np.array([1, 2], np.int64)), init("one", np.float32(1)),
                        init("w_cf", W_CF)])
    model, after = run_pass(proto)
    assert len(transposes(model)) == 1
    split = next(n for n in model.graph if n.op_type == "Split")
    assert split.attributes["axis"].as_int() == 1
    assert_same_outputs(proto, after, tmp_path)


def test_squeeze_and_unsqueeze(tmp_path):
    nodes = [
        T("x", "t_in", [0, 3, 1, 2]),  # (2,4,1,3) -> (2,3,4,1)
        helper.make_node("Relu", ["t_in"], ["nchw"]),
        T("nchw", "m_in", CL),  # back to (2,4,1,3)
        helper.make_node("Squeeze", ["m_in", "sq"], ["s"]),  # (2,4,3)
        helper.make_node("Unsqueeze", ["s", "sq"], ["u"]),  # (2,4,1,3)
        T("u", "t_out", CF),
        helper.make_node("Neg", ["t_out"], ["y"]),
    ]
    proto = make_model(nodes, [f32("x", [2, 4, 1, 3])], [f32("y", [2, 3, 4, 1])],
                       [init("sq", np.array([2], np.int64))])
    model, after = run_pass(proto)
    assert len(transposes(model)) == 1
    assert_same_outputs(proto, after, tmp_path)


def test_two_transposed_operands_with_one_perm():
    nodes = [
        T("x", "a", CF), T("z", "b", CF),
        helper.make_node("Mul", ["a", "b"], ["m"]),
        helper.make_node("Relu", ["m"], ["r"]),
        T("r", "y", CL),
    ]
    proto = make_model(nodes, [f32("x", X), f32("z", X)], [f32("y", X)])
    model, _ = run_pass(proto)
    assert ops(model) == ["Mul", "Relu"]
    assert model.graph.outputs[0].name == "y"


def test_two_transposed_operands_numerics(tmp_path):
    nodes = [
        T("x", "a", CF), T("z", "b", CF),
        helper.make_node("Mul", ["a", "b"], ["m"]),
        helper.make_node("Relu", ["m"], ["r"]),
        T("r", "y", CL),
    ]
    proto = make_model(nodes, [f32("x", X), f32("z", X)], [f32("y", X)])
    _, after = run_pass(proto)
    assert_same_outputs(proto, after, tmp_path)


def test_consecutive_transposes_merge_and_inverse_pairs_vanish(tmp_path):
    nodes = [
        helper.make_node("Relu", ["x"], ["r"]),
        T("r", "a", [1, 0, 2, 3]), T("a", "b", [0, 2, 1, 3]), T("b", "c", [3, 2, 1, 0]),
        helper.make_node("Sigmoid", ["c"], ["s"]),
        T("s", "d", [2, 3, 1, 0]), T("d", "e", [0, 1, 3, 2]),
        helper.make_node("Neg", ["e"], ["y"]),
    ]
    proto = make_model(nodes, [f32("x", X)], [f32("y", [2, 4, 3, 5])])
    model, after = run_pass(proto)
    assert len(transposes(model)) == 1
    assert_same_outputs(proto, after, tmp_path)


def test_graph_output_keeps_its_name_and_shape(tmp_path):
    nodes = [helper.make_node("Relu", ["x"], ["r"]), T("r", "t", CF),
             helper.make_node("Sigmoid", ["t"], ["y"])]
    proto = make_model(nodes, [f32("x", X)], [f32("y", [2, 3, 4, 5])])
    model, after = run_pass(proto)
    # Count-neutral: the Transpose moved to the output, whose name, shape and type are kept.
    assert ops(model) == ["Relu", "Sigmoid", "Transpose"]
    out = model.graph.outputs[0]
    assert out.name == "y" and list(out.shape) == [2, 3, 4, 5]
    assert model.graph.inputs[0].name == "x" and list(model.graph.inputs[0].shape) == X
    assert_same_outputs(proto, after, tmp_path)


def test_a_transpose_on_the_graph_input_stays_there():
    nodes = [T("x", "t", CF), helper.make_node("Relu", ["t"], ["y"])]
    proto = make_model(nodes, [f32("x", X)], [f32("y", [2, 3, 4, 5])])
    model, _ = run_pass(proto)
    assert ops(model) == ["Transpose", "Relu"]


def test_pulled_up_to_the_input_so_that_pad_fuses_into_conv(tmp_path):
    # Normalisation and padding in NHWC before the first Conv, as channels-last models start.
    nodes = [
        helper.make_node("Sub", ["x", "mean"], ["s"]),
        helper.make_node("Div", ["s", "std"], ["n"]),
        helper.make_node("Pad", ["n", "pads"], ["p"]),
        T("p", "p_cf", CF),
        helper.make_node("Conv", ["p_cf", "w"], ["y"]),
    ]
    inits = [init("mean", arr(3)), init("std", np.abs(arr(3)) + 0.5),
             init("pads", np.array([0, 1, 1, 0, 0, 1, 1, 0], np.int64)), init("w", arr(4, 3, 3, 3))]
    proto = make_model(nodes, [f32("x", X)], [f32("y", [2, 4, 4, 5])], inits)
    model, _ = run_pass(proto)
    assert ops(model) == ["Transpose", "Sub", "Div", "Pad", "Conv"]
    assert model.graph.node(0).inputs[0].name == "x"
    model, after = run_pass(proto, level=1)
    assert ops(model) == ["Transpose", "Sub", "Div", "Conv"]  # onnxscript absorbed the Pad
    assert_same_outputs(proto, after, tmp_path)


def test_swish_consumers_pushed_together(tmp_path):
    # y = T(conv) feeds both Sigmoid and Mul(y, Sigmoid(y)): pushed into both at once.
    nodes = [
        T("x", "t_in", CF),
        helper.make_node("Conv", ["t_in", "w_cf"], ["c"]),
        T("c", "c_cl", CL),
        helper.make_node("Sigmoid", ["c_cl"], ["sig"]),
        helper.make_node("Mul", ["c_cl", "sig"], ["swish"]),
        T("swish", "s_cf", CF),
        helper.make_node("Conv", ["s_cf", "w_cf"], ["y"]),
    ]
    proto = make_model(nodes, [f32("x", X)], [f32("y", [2, 3, 4, 5])], [init("w_cf", W_CF)])
    model, after = run_pass(proto)
    assert ops(model) == ["Transpose", "Conv", "Sigmoid", "Mul", "Conv"]
    assert_same_outputs(proto, after, tmp_path)


def test_transpose_of_a_reshape_moving_size_1_axes_goes(tmp_path):
    # Squeeze-excite as channels-last importers write it: (N,C,1,1) → Reshape (N,1,1,C) →
    # Transpose back to (N,C,1,1): the pair is the original value.
    nodes = [
        helper.make_node("ReduceMean", ["x"], ["g"], axes=[2, 3]),
        helper.make_node("Sigmoid", ["g"], ["s"]),
        helper.make_node("Reshape", ["s", "shape"], ["r"]),
        T("r", "r_cf", CF),
        helper.make_node("Mul", ["x", "r_cf"], ["y"]),
    ]
    proto = make_model(nodes, [f32("x", [2, 3, 4, 5])], [f32("y", [2, 3, 4, 5])],
                       [init("shape", np.array([-1, 1, 1, 3], np.int64))])
    # Without a known shape of s the Transpose becomes a Reshape (count of nodes kept)...
    model, _ = run_pass(proto)
    assert ops(model) == ["ReduceMean", "Sigmoid", "Reshape", "Mul"]
    # ...and with it (the shape of s as importers record it) the pair goes.
    proto.graph.value_info.append(f32("s", [2, 3, 1, 1]))
    model, after = run_pass(proto)
    assert ops(model) == ["ReduceMean", "Sigmoid", "Mul"]
    assert_same_outputs(proto, after, tmp_path)


def test_identity_before_a_graph_output(tmp_path):
    nodes = [helper.make_node("Relu", ["x"], ["r"]), T("r", "a", CF), T("a", "y", CL)]
    proto = make_model(nodes, [f32("x", X)], [f32("y", X)])
    model, after = run_pass(proto)
    assert ops(model) == ["Relu"] and model.graph.outputs[0].name == "y"
    assert_same_outputs(proto, after, tmp_path)


def test_no_push_that_adds_transposes(tmp_path):
    # Add of a transposed value and a plain input, used by a non-Transpose consumer: pushing
    # would need a Transpose on z and another after the Add.
    nodes = [T("x", "a", CF), helper.make_node("Add", ["a", "z"], ["s"]),
             helper.make_node("Relu", ["s"], ["y"])]
    proto = make_model(nodes, [f32("x", X), f32("z", [2, 3, 4, 5])], [f32("y", [2, 3, 4, 5])])
    model, _ = run_pass(proto)
    assert ops(model) == ["Transpose", "Add", "Relu"]


def test_inverse_operand_inserted_only_when_the_count_drops(tmp_path):
    # Add(T(x), z) followed by the inverse Transpose: one Transpose (on z) replaces two.
    nodes = [T("x", "a", CF), helper.make_node("Add", ["a", "z"], ["s"]), T("s", "y", CL)]
    proto = make_model(nodes, [f32("x", X), f32("z", [2, 3, 4, 5])], [f32("y", X)])
    model, after = run_pass(proto)
    assert ops(model) == ["Transpose", "Add"]
    assert model.graph.node(0).inputs[0].name == "z"
    assert_same_outputs(proto, after, tmp_path)


def test_shared_transpose_pushed_into_the_consumers_that_pay(tmp_path):
    # t feeds a Relu (whose result goes back to NCHW) and a Reshape (layout-sensitive):
    # the Relu gets the NCHW value, the Transpose stays for the Reshape.
    nodes = [
        T("x", "t", CF),
        helper.make_node("Relu", ["t"], ["r"]),
        T("r", "y1", CL),
        helper.make_node("Reshape", ["t", "shape"], ["y2"]),
    ]
    proto = make_model(nodes, [f32("x", X)], [f32("y1", X), f32("y2", [2, 60])],
                       [init("shape", np.array([2, 60], np.int64))])
    model, after = run_pass(proto)
    assert ops(model) == ["Transpose", "Relu", "Reshape"]
    assert [o.name for o in model.graph.outputs] == ["y1", "y2"]
    assert_same_outputs(proto, after, tmp_path)


def test_shared_constant_operand_is_not_modified_in_place(tmp_path):
    nodes = [
        T("x", "t", CF), helper.make_node("Relu", ["t"], ["nchw"]),
        T("nchw", "m", CL),
        helper.make_node("Add", ["m", "bias"], ["a"]),
        T("a", "y1", CF),
        helper.make_node("Add", ["x", "bias"], ["y2"]),  # NHWC use of the same constant
    ]
    proto = make_model(nodes, [f32("x", X)], [f32("y1", [2, 3, 4, 5]), f32("y2", X)],
                       [init("bias", arr(3))])
    model, after = run_pass(proto)
    assert len(transposes(model)) == 1
    assert_same_outputs(proto, after, tmp_path)


def test_nchw_cnn_from_a_channels_last_importer_at_o1(tmp_path):
    """What a TensorFlow-style importer emits: a Transpose pair around each Conv and pooling,
    a BatchNormalization as Mul/Add by per-channel constants, a residual Add, and a
    channels-last Concat and Pad. -O1 leaves the input Transpose only."""
    w1, w2, w3 = arr(6, 3, 3, 3), arr(6, 6, 3, 3), arr(4, 12, 1, 1)
    nodes = [
        T("x", "x_cf", CF),
        helper.make_node("Conv", ["x_cf", "w1"], ["c1"], pads=[1, 1, 1, 1]),
        T("c1", "c1_cl", CL),
        helper.make_node("Mul", ["c1_cl", "bn_s"], ["bn_m"]),
        helper.make_node("Add", ["bn_m", "bn_b"], ["bn"]),
        helper.make_node("Relu", ["bn"], ["r1"]),
        T("r1", "r1_cf", CF),
        helper.make_node("Conv", ["r1_cf", "w2"], ["c2"], pads=[1, 1, 1, 1]),
        T("c2", "c2_cl", CL),
        helper.make_node("Add", ["c2_cl", "r1"], ["res"]),
        helper.make_node("Concat", ["res", "r1"], ["cat"], axis=3),
        helper.make_node("Pad", ["cat", "pads"], ["pad"]),
        T("pad", "pad_cf", CF),
        helper.make_node("MaxPool", ["pad_cf"], ["pool"], kernel_shape=[2, 2], strides=[2, 2]),
        T("pool", "pool_cl", CL),
        T("pool_cl", "pool_cf", CF),
        helper.make_node("Conv", ["pool_cf", "w3"], ["c3"]),
        T("c3", "c3_cl", CL),
        helper.make_node("Clip", ["c3_cl", "lo", "hi"], ["clip"]),
        helper.make_node("ReduceMean", ["clip"], ["y"], axes=[1, 2], keepdims=0),
    ]
    inits = [init("w1", w1), init("w2", w2), init("w3", w3), init("bn_s", arr(6)),
             init("bn_b", arr(6)), init("lo", np.float32(0)), init("hi", np.float32(6)),
             init("pads", np.array([0, 1, 1, 0, 0, 1, 1, 0], np.int64))]
    proto = make_model(nodes, [f32("x", [1, 8, 8, 3])], [f32("y", [1, 4])], inits)
    model, after = run_pass(proto, level=1)
    assert [t.inputs[0].name for t in transposes(model)] == ["x"]
    assert_same_outputs(proto, after, tmp_path)


def test_o0_keeps_the_transposes():
    middle, out_shape, inits = CASES["relu"]
    proto = sandwich(middle, out_shape, inits)
    model, _ = run_pass(proto, level=0)
    assert len(transposes(model)) == 3


def test_large_constant_operand_stays_lazy(tmp_path):
    # A constant of more than SMALL_TENSOR_ELEMENTS is permuted when the exporter reads it,
    # not during the pass (importers' weights are read once).
    big = arr(8, 8, 20)  # 1280 elements
    nodes = [
        T("x", "t", CF), helper.make_node("Conv", ["t", "w"], ["c"]), T("c", "c_cl", CL),
        helper.make_node("Mul", ["c_cl", "big"], ["m"]), T("m", "m_cf", CF),
        helper.make_node("Conv", ["m_cf", "w2"], ["y"]),
    ]
    proto = make_model(nodes, [f32("x", [1, 8, 8, 3])], [f32("y", [1, 2, 8, 8])],
                       [init("w", arr(20, 3, 1, 1)), init("big", big), init("w2", arr(2, 20, 1, 1))])
    model = ir.serde.deserialize_model(proto)
    TransposePushPass()(model)
    mul = next(n for n in model.graph if n.op_type == "Mul")
    assert isinstance(mul.inputs[1].const_value, ir.LazyTensor)
    assert list(mul.inputs[1].shape) == [20, 8, 8]
    assert len(transposes(model)) == 1
    assert_same_outputs(proto, ir.serde.serialize_model(model), tmp_path)


def test_consumer_inside_a_subgraph_is_left_alone(tmp_path):
    then = helper.make_graph([helper.make_node("Relu", ["t"], ["r"])], "then", [],
                             [f32("r", [2, 3, 4, 5])])
    other = helper.make_graph([helper.make_node("Neg", ["t"], ["n"])], "else", [],
                              [f32("n", [2, 3, 4, 5])])
    nodes = [
        T("x", "t", CF),
        helper.make_node("If", ["cond"], ["y"], then_branch=then, else_branch=other),
    ]
    proto = make_model(nodes, [f32("x", X), helper.make_tensor_value_info("cond", TensorProto.BOOL, [])],
                       [f32("y", [2, 3, 4, 5])])
    model, after = run_pass(proto)
    assert ops(model) == ["Transpose", "If"]
    a, b = tmp_path / "a.onnx", tmp_path / "b.onnx"
    onnx.save(proto, a)
    onnx.save(after, b)
    x = np.random.default_rng(3).standard_normal(X).astype(np.float32)
    for cond in (True, False):
        feeds = {"x": x, "cond": np.array(cond)}
        assert_close(run_onnx(b, feeds)["y"], run_onnx(a, feeds)["y"])


def test_partial_push_is_planned_on_its_own(tmp_path):
    # Found by the property test: v0 feeds Relu and two Adds that feed each other; pushing
    # the Transpose into the last Add alone must not assume the first one moved too.
    p = [0, 2, 1]
    nodes = [
        T("x", "v0", p), helper.make_node("Relu", ["v0"], ["v1"]),
        helper.make_node("Softmax", ["v1"], ["v2"], axis=0),
        helper.make_node("Clip", ["v2", "lo", "hi"], ["v3"]),
        helper.make_node("Add", ["v3", "v0"], ["v4"]),
        helper.make_node("Add", ["v4", "v0"], ["v5"]),
        T("v5", "y", p),
    ]
    proto = make_model(nodes, [f32("x", [4, 4, 4])], [f32("y", [4, 4, 4])],
                       [init("lo", np.float32(-0.3)), init("hi", np.float32(0.6))])
    for level in (None, 1):
        _, after = run_pass(proto, level)
        assert_same_outputs(proto, after, tmp_path)


def test_onnx_input_converted_with_the_default_level(tmp_path):
    """An ONNX file from another exporter goes through the pass too (modelport convert, -O1)."""
    from modelport.convert.pipeline import convert

    middle, out_shape, inits = CASES["add_channel_constant"]
    proto = sandwich(middle, out_shape, inits)
    src, dst = tmp_path / "tf_style.onnx", tmp_path / "converted.onnx"
    onnx.save(proto, src)
    convert(src, dst)
    converted = onnx.load(dst)
    assert [n.op_type for n in converted.graph.node].count("Transpose") == 1
    assert_same_outputs(proto, converted, tmp_path)


def test_reshapes_that_move_size_1_axes_cancel_like_transposes(tmp_path):
    # Squeeze-excite as the Keras importer writes it per layer: (N,C,1,1) → Reshape (N,1,1,C)
    # → Relu → Reshape (N,C,1,1): the two Reshapes are inverse Transposes in disguise.
    nodes = [
        helper.make_node("ReduceMean", ["x"], ["g"], axes=[2, 3]),
        helper.make_node("Reshape", ["g", "to_cl"], ["g_cl"]),
        helper.make_node("Relu", ["g_cl"], ["r"]),
        helper.make_node("Reshape", ["r", "to_cf"], ["r_cf"]),
        helper.make_node("Mul", ["x", "r_cf"], ["y"]),
    ]
    proto = make_model(nodes, [f32("x", [2, 3, 4, 5])], [f32("y", [2, 3, 4, 5])],
                       [init("to_cl", np.array([-1, 1, 1, 3], np.int64)),
                        init("to_cf", np.array([-1, 3, 1, 1], np.int64))])
    for name, shape in (("g", [2, 3, 1, 1]), ("g_cl", [2, 1, 1, 3]), ("r", [2, 1, 1, 3]),
                        ("r_cf", [2, 3, 1, 1])):
        proto.graph.value_info.append(f32(name, shape))
    model, after = run_pass(proto)
    assert ops(model) == ["ReduceMean", "Relu", "Mul"]
    assert_same_outputs(proto, after, tmp_path)


def test_a_lone_transpose_of_size_1_axes_becomes_a_reshape(tmp_path):
    nodes = [helper.make_node("ReduceMean", ["x"], ["g"], axes=[1, 2]), T("g", "t", CF),
             helper.make_node("Conv", ["t", "w"], ["y"])]
    proto = make_model(nodes, [f32("x", X)], [f32("y", [2, 4, 1, 1])], [init("w", arr(4, 3, 1, 1))])
    proto.graph.value_info.append(f32("g", [2, 1, 1, 3]))
    model, after = run_pass(proto)
    assert ops(model) == ["ReduceMean", "Reshape", "Conv"]
    assert_same_outputs(proto, after, tmp_path)


def test_new_nodes_never_take_a_name_already_used():
    # The pass runs once per pass-manager round: node names made by an earlier run (or by
    # anyone) are taken, even where no value has that name.
    nodes = [helper.make_node("Relu", [f"r{i}" if i else "x"], [f"r{i + 1}"],
                              name=f"Transpose_nchw{i + 1}") for i in range(8)]
    nodes += [T("r8", "t", CF, name="T"), helper.make_node("Sigmoid", ["t"], ["y"])]
    proto = make_model(nodes, [f32("x", X)], [f32("y", [2, 3, 4, 5])])
    model, _ = run_pass(proto)  # validate() checks that node names are unique
    assert ops(model)[-2:] == ["Sigmoid", "Transpose"]
