"""Pass manager levels: what -O1 must do (Conv+BN, Pad+Conv, identities, dead nodes) and that
outputs agree with the unoptimised model."""

import numpy as np
import onnx
import onnx_ir as ir
import pytest
from onnx import helper

from modelport.graph_ir.passes import optimize
from tests.conftest import f32, init, make_model
from tests.oracles import assert_close, run_onnx

rng = np.random.default_rng(0)


def conv_bn_pad_model():
    inits = [
        init("W", rng.standard_normal((8, 3, 3, 3)).astype(np.float32)),
        init("s", rng.random(8).astype(np.float32) + 0.5),
        init("b", rng.standard_normal(8).astype(np.float32)),
        init("m", rng.standard_normal(8).astype(np.float32)),
        init("v", rng.random(8).astype(np.float32) + 0.5),
        init("pads", np.array([0, 0, 1, 2, 0, 0, 1, 2], np.int64)),
    ]
    nodes = [
        helper.make_node("Pad", ["x", "pads"], ["xp"], name="pad"),
        helper.make_node("Conv", ["xp", "W"], ["c"], name="conv"),
        helper.make_node("BatchNormalization", ["c", "s", "b", "m", "v"], ["bn"], name="bn"),
        helper.make_node("Identity", ["bn"], ["id"], name="id"),
        helper.make_node("Relu", ["id"], ["y"], name="relu"),
        helper.make_node("Sigmoid", ["c"], ["unused"], name="dead"),
    ]
    return make_model(nodes, [f32("x", [1, 3, 10, 10])], [f32("y", [1, 8, 10, 12])], inits)


def matmul_add_model():
    inits = [init("W", rng.standard_normal((6, 5)).astype(np.float32)),
             init("B", rng.standard_normal(5).astype(np.float32))]
    nodes = [helper.make_node("MatMul", ["x", "W"], ["mm"]),
             helper.make_node("Add", ["mm", "B"], ["y"])]
    return make_model(nodes, [f32("x", [3, 6])], [f32("y", [3, 5])], inits)


def optimized(proto, level):
    model = ir.serde.deserialize_model(proto)
    optimize(model, level)
    return model


def ops(model):
    return [n.op_type for n in model.graph]


def test_o1_fuses_conv_bn_absorbs_pad_and_removes_identity_and_dead_nodes():
    model = optimized(conv_bn_pad_model(), 1)
    assert ops(model) == ["Conv", "Relu"]
    conv = next(iter(model.graph))
    assert list(conv.attributes["pads"].value) == [1, 2, 1, 2]


def test_o0_changes_nothing():
    proto = conv_bn_pad_model()
    assert ops(optimized(proto, 0)) == [n.op_type for n in proto.graph.node]


def test_o2_turns_matmul_add_into_gemm_and_o1_does_not():
    assert ops(optimized(matmul_add_model(), 1)) == ["MatMul", "Add"]
    assert ops(optimized(matmul_add_model(), 2)) == ["Gemm"]


@pytest.mark.parametrize("build", [conv_bn_pad_model, matmul_add_model])
@pytest.mark.parametrize("level", [1, 2])
def test_optimised_outputs_agree_with_the_original(tmp_path, build, level):
    proto = build()
    src = tmp_path / "src.onnx"
    onnx.save(proto, src)
    model = optimized(proto, level)
    out = tmp_path / "opt.onnx"
    onnx.save(ir.serde.serialize_model(model), out)
    shape = [d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim]
    feeds = {"x": rng.standard_normal(shape).astype(np.float32)}
    want = run_onnx(src, feeds)["y"]
    got = run_onnx(out, feeds)["y"]
    assert_close(got, want, rtol=1e-4, atol=1e-5)


def test_old_opset_models_keep_their_operator_forms():
    # onnxscript's rules emit opset-13 forms; an opset-11 graph must not receive them.
    nodes = [helper.make_node("Unsqueeze", ["x"], ["u"], axes=[0]),
             helper.make_node("Squeeze", ["u"], ["y"], axes=[0])]
    proto = make_model(nodes, [f32("x", [2, 3])], [f32("y", [2, 3])], opset=11)
    model = optimized(proto, 1)
    onnx.checker.check_model(ir.serde.serialize_model(model), full_check=True)


def test_rules_naming_absent_operators_are_not_tried():
    from onnxscript import rewriter

    from modelport.graph_ir.passes.fusions import _may_match

    by_name = {r.name: r for r in rewriter._DEFAULT_REWRITE_RULES if r.name}
    present = {("", "Conv"), ("", "BatchNormalization"), ("", "Relu")}
    assert _may_match(by_name["FuseBatchNormIntoConv"], present)
    assert not _may_match(by_name["FuseConvPad"], present)  # no Pad in the graph
    assert not _may_match(by_name["TransposeTranspose"], present)
