"""-O2: dense layers on N-D inputs (MatMul by a constant + bias Add) run as 2-D Gemms, with one
Reshape per shared input and the Reshape back merged into the head split; a scalar Mul after
a Gemm goes into its alpha and beta (modelport/graph_ir/passes/dense.py). Outputs are checked
against onnxruntime on the original graph, at batch 1 and 3."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir
from onnx import helper

from tests.conftest import init, make_model
from tests.graph_ir.test_o2_passes import agree, dyn, ops

i64 = np.int64
rng = np.random.default_rng(7)


def w(*shape):
    return rng.standard_normal(shape).astype(np.float32)


def dense(x, out, wname, bname, bias_first=False):
    mm = f"{out}_mm"
    add = [bname, mm] if bias_first else [mm, bname]
    return [helper.make_node("MatMul", [x, wname], [mm]), helper.make_node("Add", add, [out])]


def qkv_model(batch="batch"):
    """x [batch, 5, 8] -> q, k, v projections (8 -> 6), each split into 2 heads of 3; the
    query scaled; scores and the weighted values; the heads merged; an output projection."""
    nodes = [*dense("x", "q", "wq", "bq"), *dense("x", "k", "wk", "bk", bias_first=True),
             *dense("x", "v", "wv", "bv"),
             helper.make_node("Reshape", ["q", "heads"], ["qh"]),
             helper.make_node("Reshape", ["k", "heads"], ["kh"]),
             helper.make_node("Reshape", ["v", "heads"], ["vh"]),
             helper.make_node("Mul", ["qh", "scale"], ["qs"]),
             helper.make_node("Transpose", ["qs"], ["qt"], perm=[0, 2, 1, 3]),
             helper.make_node("Transpose", ["kh"], ["kt"], perm=[0, 2, 3, 1]),
             helper.make_node("Transpose", ["vh"], ["vt"], perm=[0, 2, 1, 3]),
             helper.make_node("MatMul", ["qt", "kt"], ["s"]),
             helper.make_node("Softmax", ["s"], ["p"], axis=-1),
             helper.make_node("MatMul", ["p", "vt"], ["o"]),
             helper.make_node("Transpose", ["o"], ["ot"], perm=[0, 2, 1, 3]),
             helper.make_node("Reshape", ["ot", "merge"], ["m"]),
             *dense("m", "y", "wo", "bo")]
    inits = [init("wq", w(8, 6)), init("bq", w(6)), init("wk", w(8, 6)), init("bk", w(6)),
             init("wv", w(8, 6)), init("bv", w(6)), init("wo", w(6, 4)), init("bo", w(4)),
             init("heads", np.array([0, 0, 2, 3], i64)), init("merge", np.array([0, 0, 6], i64)),
             init("scale", np.array(0.5, np.float32))]
    return make_model(nodes, [dyn("x", [batch, 5, 8])], [dyn("y", [batch, 5, 4])], inits)


def test_attention_projections_become_gemms_without_more_nodes(tmp_path):
    proto = qkv_model()
    model = agree(tmp_path, proto)
    # 4 MatMul + 4 Add -> 4 Gemm (-4); one Reshape of x for q, k and v (+1); the head splits
    # read the Gemms and the merge of the heads takes the 2-D target (0); one Reshape back for
    # y (+1); the scale goes into the query's Gemm (-1)
    assert len(model.graph) == len(proto.graph.node) - 3
    assert sorted(ops(model)) == sorted(["Reshape", "Gemm", "Gemm", "Gemm", "Reshape", "Reshape",
                                         "Reshape", "Transpose", "Transpose", "Transpose",
                                         "MatMul", "Softmax", "MatMul", "Transpose", "Reshape",
                                         "Gemm", "Reshape"])
    gemms = [n for n in model.graph if n.op_type == "Gemm"]
    assert len({id(g.inputs[0]) for g in gemms[:3]}) == 1  # one shared 2-D view of x
    alphas = sorted(g.attributes.get_float("alpha", 1.0) for g in gemms)
    assert alphas == [0.5, 1.0, 1.0, 1.0]
    targets = {tuple(n.inputs[1].const_value.numpy()) for n in model.graph
               if n.op_type == "Reshape"}
    assert targets == {(-1, 8), (-1, 5, 2, 3), (-1, 6), (-1, 5, 4)}


def test_static_batch_and_the_output_name(tmp_path):
    model = agree(tmp_path, qkv_model(batch=2), batches=(2,))
    assert ops(model).count("Gemm") == 4
    assert [v.name for v in model.graph.outputs] == ["y"]


def test_consecutive_dense_layers_stay_2d_between_them(tmp_path):
    nodes = [*dense("x", "h", "w1", "b1"), *dense("h", "y", "w2", "b2")]
    inits = [init("w1", w(8, 16)), init("b1", w(1, 1, 16)), init("w2", w(16, 3)),
             init("b2", w(3))]
    proto = make_model(nodes, [dyn("x", ["batch", 5, 8])], [dyn("y", ["batch", 5, 3])], inits)
    model = agree(tmp_path, proto)
    assert ops(model) == ["Reshape", "Gemm", "Gemm", "Reshape"]
    # the [1, 1, 16] bias became a [16] one (Gemm takes a bias of rank 2 at most)
    assert model.graph.node(1).inputs[2].const_value.shape == ir.Shape([16])


def test_an_activation_between_dense_layers_runs_on_the_2d_view(tmp_path):
    # a transformer's feed-forward block: x -> dense -> Relu -> dense -> + x; and a second
    # block where the activation's result is also read by another operator
    nodes = [*dense("x", "h", "w1", "b1"), helper.make_node("Relu", ["h"], ["a"]),
             *dense("a", "f", "w2", "b2"), helper.make_node("Add", ["x", "f"], ["y"]),
             *dense("y", "h2", "w1", "b1"),
             helper.make_node("Clip", ["h2", "lo", "hi"], ["a2"]),
             *dense("a2", "f2", "w2", "b2"), helper.make_node("Add", ["a2", "f2"], ["z"])]
    inits = [init("w1", w(8, 8)), init("b1", w(8)), init("w2", w(8, 8)), init("b2", w(8)),
             init("lo", np.array(-0.5, np.float32)), init("hi", np.array(0.5, np.float32))]
    proto = make_model(nodes, [dyn("x", ["batch", 5, 8])], [dyn("z", ["batch", 5, 8])], inits)
    model = agree(tmp_path, proto)
    # first block: Reshape, Gemm, Relu, Gemm, Reshape back (the same count as before); the
    # second: Clip's result is read by the residual Add too, so it would need a Reshape back of
    # its own: both layers stay
    assert ops(model) == ["Reshape", "Gemm", "Relu", "Gemm", "Reshape", "Add",
                          "MatMul", "Add", "Clip", "MatMul", "Add", "Add"]


def test_rank4_input_with_a_dynamic_batch(tmp_path):
    nodes = [*dense("x", "h", "w1", "b1"), *dense("h", "y", "w2", "b2")]
    inits = [init("w1", w(8, 4)), init("b1", w(4)), init("w2", w(4, 2)), init("b2", w(2))]
    proto = make_model(nodes, [dyn("x", ["batch", 3, 5, 8])], [dyn("y", ["batch", 3, 5, 2])],
                       inits)
    model = agree(tmp_path, proto)
    assert ops(model) == ["Reshape", "Gemm", "Gemm", "Reshape"]
    assert list(model.graph.node(3).inputs[1].const_value.numpy()) == [-1, 3, 5, 2]


def test_what_must_stay_as_it_is(tmp_path):
    # a lone dense layer from an input to an output: two Reshapes would add a node
    lone = make_model(dense("x", "y", "w1", "b1"), [dyn("x", ["batch", 5, 8])],
                      [dyn("y", ["batch", 5, 4])], [init("w1", w(8, 4)), init("b1", w(4))])
    assert ops(agree(tmp_path, lone)) == ["MatMul", "Add"]
    # a weight that is not a constant
    two = [*dense("x", "h", "wx", "b1"), *dense("h", "y", "w2", "b2")]
    var_w = make_model(two, [dyn("x", ["batch", 5, 8]), dyn("wx", [8, 4])],
                       [dyn("y", ["batch", 5, 2])], [init("b1", w(4)), init("w2", w(4, 2)),
                                                     init("b2", w(2))])
    assert ops(agree(tmp_path, var_w)) == ["MatMul", "Add", "MatMul", "Add"]
    # a bias that varies along another axis than the last one
    per_pos = make_model(two, [dyn("x", ["batch", 5, 8])], [dyn("y", ["batch", 5, 2])],
                         [init("wx", w(8, 4)), init("b1", w(5, 4)), init("w2", w(4, 2)),
                          init("b2", w(2))])
    assert ops(agree(tmp_path, per_pos)).count("Gemm") == 0
    # two dynamic leading dims: the shape back has no constant spelling
    two_dyn = make_model(two, [dyn("x", ["batch", "seq", 8])], [dyn("y", ["batch", "seq", 2])],
                         [init("wx", w(8, 4)), init("b1", w(4)), init("w2", w(4, 2)),
                          init("b2", w(2))])
    assert ops(agree(tmp_path, two_dyn, batches=(1, 3))) == ["MatMul", "Add", "MatMul", "Add"]


def test_a_rank2_dense_layer_is_onnxscripts_gemm_without_reshapes(tmp_path):
    proto = make_model(dense("x", "y", "w1", "b1"), [dyn("x", ["batch", 8])],
                       [dyn("y", ["batch", 4])], [init("w1", w(8, 4)), init("b1", w(4))])
    assert ops(agree(tmp_path, proto)) == ["Gemm"]


def test_a_head_split_with_minus_one_is_retargeted(tmp_path):
    # Reshape(q, [0, 0, 2, -1]) on [batch, 5, 6]: from the 2-D view, [-1, 5, 2, 3]
    nodes = [*dense("x", "q", "wq", "bq"), *dense("x", "k", "wk", "bk"),
             helper.make_node("Reshape", ["q", "split"], ["qh"]),
             helper.make_node("Reshape", ["k", "split"], ["kh"]),
             helper.make_node("Add", ["qh", "kh"], ["y"])]
    inits = [init("wq", w(8, 6)), init("bq", w(6)), init("wk", w(8, 6)), init("bk", w(6)),
             init("split", np.array([0, 0, 2, -1], i64))]
    proto = make_model(nodes, [dyn("x", ["batch", 5, 8])], [dyn("y", ["batch", 5, 2, 3])],
                       inits)
    model = agree(tmp_path, proto)
    assert sorted(ops(model)) == ["Add", "Gemm", "Gemm", "Reshape", "Reshape", "Reshape"]
    targets = sorted(list(n.inputs[1].const_value.numpy()) for n in model.graph
                     if n.op_type == "Reshape")
    assert targets == [[-1, 5, 2, 3], [-1, 5, 2, 3], [-1, 8]]


def test_a_split_that_2d_constants_cannot_spell_stays(tmp_path):
    # [batch, seq, 6] split into [batch, seq, 2, 3]: from the 2-D view both batch and seq
    # would be unknown, and so would they in a Reshape back: the layers stay
    nodes = [*dense("x", "q", "wq", "bq"), *dense("x", "k", "wk", "bk"),
             helper.make_node("Reshape", ["q", "split"], ["qh"]),
             helper.make_node("Reshape", ["k", "split"], ["kh"]),
             helper.make_node("Add", ["qh", "kh"], ["y"])]
    inits = [init("wq", w(8, 6)), init("bq", w(6)), init("wk", w(8, 6)), init("bk", w(6)),
             init("split", np.array([0, 0, 2, 3], i64))]
    proto = make_model(nodes, [dyn("x", ["batch", "seq", 8])],
                       [dyn("y", ["batch", "seq", 2, 3])], inits)
    model = agree(tmp_path, proto)
    assert ops(model).count("Gemm") == 0
    assert len(model.graph) == len(proto.graph.node)


def test_a_scalar_mul_goes_into_gemm_only_where_nothing_else_reads_it(tmp_path):
    nodes = [helper.make_node("Gemm", ["x", "w1", "b1"], ["g"], alpha=2.0),
             helper.make_node("Reshape", ["g", "split"], ["r"]),
             helper.make_node("Mul", ["r", "s"], ["y"]),
             helper.make_node("Gemm", ["x", "w2", "b2"], ["g2"]),
             helper.make_node("Mul", ["g2", "s"], ["z"]),
             helper.make_node("Relu", ["g2"], ["u"]),
             helper.make_node("Gemm", ["x", "w2", "b2"], ["g3"], transB=0),
             helper.make_node("Mul", ["g3", "vec"], ["t"])]
    inits = [init("w1", w(8, 6)), init("b1", w(6)), init("w2", w(8, 6)), init("b2", w(6)),
             init("split", np.array([0, 2, 3], i64)), init("s", np.array([0.25], np.float32)),
             init("vec", w(6))]
    proto = make_model(nodes, [dyn("x", ["batch", 8])],
                       [dyn("y", ["batch", 2, 3]), dyn("z", ["batch", 6]), dyn("u", ["batch", 6]),
                        dyn("t", ["batch", 6])], inits)
    model = agree(tmp_path, proto)
    # the first Mul is folded (alpha 2 * 0.25, beta 0.25); g2 has another reader, the last
    # Mul is by a vector: both stay
    assert ops(model).count("Mul") == 2
    first = [n for n in model.graph if n.op_type == "Gemm"
             and n.attributes.get_float("alpha", 1.0) != 1.0]
    assert len(first) == 1
    assert first[0].attributes.get_float("alpha") == 0.5
    assert first[0].attributes.get_float("beta") == 0.25
    assert [v.name for v in model.graph.outputs] == ["y", "z", "u", "t"]


def test_the_rewrite_waits_for_the_other_passes(tmp_path):
    # torch's packed q/k/v (seq-first) after a dense layer: Reshape -> Unsqueeze -> Transpose
    # -> Squeeze -> Gather, which the shape pass makes one Split of the dense layer's output.
    # Rewritten first, the dense layer would hide that pattern; it runs as a closing pass
    # (after the fixed point), where it leaves the layer alone: a Reshape back for the Split
    # would cost a node.
    nodes = [*dense("x", "qkv", "w1", "b1"),
             helper.make_node("Reshape", ["qkv", "packed"], ["r"], allowzero=1),
             helper.make_node("Unsqueeze", ["r", "ax0"], ["u"]),
             helper.make_node("Transpose", ["u"], ["t"], perm=[3, 1, 2, 0, 4]),
             helper.make_node("Squeeze", ["t", "ax"], ["sq"]),
             *[helper.make_node("Gather", ["sq", f"i{i}"], [f"p{i}"], axis=0) for i in range(3)],
             helper.make_node("Mul", ["p0", "p1"], ["m"]),
             helper.make_node("Add", ["m", "p2"], ["y"])]
    inits = [init("w1", w(8, 6)), init("b1", w(6)),
             init("packed", np.array([5, -1, 3, 2], i64)), init("ax0", np.array([0], i64)),
             init("ax", np.array([-2], i64)), *[init(f"i{i}", np.array(i, i64)) for i in range(3)]]
    proto = make_model(nodes, [dyn("x", [5, "batch", 8])], [dyn("y", [5, "batch", 2])], inits,
                       opset=18)
    proto.graph.value_info.extend([  # as torch.onnx writes them
        dyn("qkv", [5, "batch", 6]), dyn("r", [5, "batch", 3, 2]), dyn("u", [1, 5, "batch", 3, 2]),
        dyn("t", [3, 5, "batch", 1, 2]), dyn("sq", [3, 5, "batch", 2]),
        *[dyn(f"p{i}", [5, "batch", 2]) for i in range(3)]])
    model = agree(tmp_path, proto)
    assert ops(model) == ["MatMul", "Add", "Split", "Mul", "Add"]
