import numpy as np
import onnx_ir as ir
import pytest

from modelport.graph_ir import (
    SOURCE_KEY,
    GraphBuilder,
    GraphInvariantError,
    get_source,
    layer_outputs,
    lazy_tensor,
    validate,
)


def build_conv(read):
    b = GraphBuilder("conv")
    x = b.input("x", np.float32, [1, 4, 8, 8])
    with b.layer("conv1"):
        w = b.initializer("conv1.weight", lazy_tensor(read, np.float32, (64, 4, 3, 3)))
        y = b.op("Conv", x, w, pads=[1, 1, 1, 1])
    with b.layer("act"):
        z = b.op("Relu", y)
    b.output(z, "out")
    return b.build()


def test_builder_records_source_layers_and_unique_names():
    model = build_conv(lambda: np.ones((64, 4, 3, 3), np.float32))
    validate(model)
    nodes = list(model.graph)
    assert [get_source(n) for n in nodes] == ["conv1", "act"]
    assert all(SOURCE_KEY in n.metadata_props for n in nodes)
    assert [v.name for v in model.graph.outputs] == ["out"]
    assert {k: [v.name for v in vs] for k, vs in layer_outputs(model.graph).items()} == {
        "conv1": ["conv1/Conv"], "act": ["out"]}
    b = GraphBuilder()
    names = {b.unique_name("a"), b.unique_name("a"), b.unique_name("a")}
    assert names == {"a", "a_1", "a_2"}


def test_validate_reports_every_broken_invariant():
    x = ir.Value(name="x", type=ir.TensorType(ir.DataType.FLOAT), shape=ir.Shape([2]))
    a = ir.Node("", "Relu", [x], outputs=[ir.Value(name="a")])
    b = ir.Node("", "Relu", [a.outputs[0]], outputs=[ir.Value(name="a")])  # duplicate name
    later = ir.Value(name="later")
    c = ir.Node("", "Add", [x, later], outputs=[ir.Value(name="c")])  # use before def
    d = ir.Node("", "Relu", [x], outputs=[later])
    orphan = ir.Value(name="orphan", type=ir.TensorType(ir.DataType.FLOAT))
    graph = ir.Graph([x], [c.outputs[0], orphan], nodes=[a, b, c, d], opset_imports={"": 17})
    with pytest.raises(GraphInvariantError) as err:
        validate(ir.Model(graph, ir_version=8))
    text = str(err.value)
    assert "'a' used twice" in text
    assert "used before it is produced" in text
    assert "graph output 'orphan' is not produced" in text


def test_lazy_weight_is_read_once_and_only_at_export(tmp_path):
    # Weights over 1024 elements: smaller ones may also be looked at by folding and dedup.
    import modelport
    from modelport.graph_ir.passes import optimize

    reads = []
    weight = np.random.default_rng(0).standard_normal((64, 4, 3, 3)).astype(np.float32)

    def read():
        reads.append(1)
        return weight

    model = build_conv(read)
    optimize(model, level=1)
    assert reads == []  # building and optimising never touched the bytes
    modelport.save(model, tmp_path / "m.onnx")
    assert reads == [1]
    import onnx

    saved = onnx.load(tmp_path / "m.onnx")
    got = {t.name: onnx.numpy_helper.to_array(t) for t in saved.graph.initializer}
    np.testing.assert_array_equal(got["conv1.weight"], weight)
