"""Large constants of a memory-mapped binary GraphDef are read from the file itself
(modelport/importers/tensorflow/regions.py): the byte ranges the wire-format walk finds must
be exactly what the protobuf parser puts in ``tensor_content``, under the parser's rules for
repeated fields, map entries and the AttrValue oneof; and a graph converted that way must
still match TensorFlow."""

from __future__ import annotations

import numpy as np

from modelport.importers.tensorflow import regions, source
from modelport.importers.tensorflow._pb import modelport_tf_pb2 as pb
from modelport.protowire import encode_field
from tests.importers.tensorflow.models import graph_with_const
from tests.oracles import assert_close, run_onnx


def _tensor(content: bytes, n: int) -> pb.TensorProto:
    t = pb.TensorProto(dtype=1, tensor_content=content)
    t.tensor_shape.dim.add(size=n)
    return t


def _const(name: str, content: bytes, op: str = "Const") -> bytes:
    nd = pb.NodeDef(name=name, op=op)
    nd.attr["dtype"].type = 1
    nd.attr["value"].tensor.CopyFrom(_tensor(content, len(content) // 4))
    return nd.SerializeToString()


def _attr_entry(key: bytes, attr_value: bytes) -> bytes:
    return encode_field(5, encode_field(1, key) + encode_field(2, attr_value))


def test_regions_are_what_the_parser_keeps():
    rng = np.random.default_rng(0)

    def blob(n=2048):
        return rng.standard_normal(n).astype(np.float32).tobytes()

    a, b, c, d = blob(), blob(), blob(), blob()
    tensor_a = pb.AttrValue(tensor=_tensor(a, 2048)).SerializeToString()
    nodes = {
        "plain": _const("plain", a),
        # the "value" entry appears twice: the second replaces the first
        "replaced": _const("replaced", a) + _attr_entry(
            b"value", pb.AttrValue(tensor=_tensor(b, 2048)).SerializeToString()),
        # replaced by an entry that is not a tensor: no content
        "not_tensor": _const("not_tensor", a) + _attr_entry(
            b"value", pb.AttrValue(s=b"x").SerializeToString()),
        # one entry whose AttrValue sets the tensor, then another oneof member: cleared
        "oneof_cleared": pb.NodeDef(name="oneof_cleared", op="Const").SerializeToString()
        + _attr_entry(b"value", tensor_a + pb.AttrValue(i=3).SerializeToString()),
        # one AttrValue with the tensor twice: merged, the second's content wins
        "merged": pb.NodeDef(name="merged", op="Const").SerializeToString()
        + _attr_entry(b"value", tensor_a + pb.AttrValue(
            tensor=_tensor(c, 2048)).SerializeToString()),
        # merged with a tensor message that has no content: the first content stays
        "merged_keeps": pb.NodeDef(name="merged_keeps", op="Const").SerializeToString()
        + _attr_entry(b"value", pb.AttrValue(tensor=_tensor(d, 2048)).SerializeToString()
                      + pb.AttrValue(tensor=pb.TensorProto(dtype=1)).SerializeToString()),
        # the name given twice: the last one counts
        "renamed": _const("first_name", a) + pb.NodeDef(name="renamed").SerializeToString(),
        "small": _const("small", blob(16)),  # not looked into
        "other_op": _const("other_op", a, op="Identity"),  # only Consts
    }
    data = b"".join(encode_field(1, body) for body in nodes.values()) + encode_field(
        4, pb.VersionDef(producer=1).SerializeToString())
    graph = pb.GraphDef()
    graph.ParseFromString(data)
    parsed = {nd.name: nd for nd in graph.node}
    assert set(parsed) == set(nodes)

    # node by node: the content range is the parser's tensor_content
    found = {}
    for body in nodes.values():
        result = regions._node(memoryview(body), 0, len(body))
        if result is not None:
            name, (start, end), _ = result
            found[name] = body[start:end]
    want = {name: nd.attr["value"].tensor.tensor_content for name, nd in parsed.items()
            if nd.op == "Const" and nd.attr["value"].WhichOneof("value") == "tensor"
            and nd.attr["value"].tensor.tensor_content}
    assert set(want) == {"plain", "replaced", "merged", "merged_keeps", "renamed", "small"}
    assert found == want

    # a file with Consts of unusual shapes is parsed whole, not stripped
    assert regions.scan(memoryview(data)) == ({}, None)


def test_stripped_graphdef_is_the_graphdef_without_the_contents():
    rng = np.random.default_rng(1)
    bodies = [_const(f"w{i}", rng.standard_normal(n).astype(np.float32).tobytes())
              for i, n in enumerate((2048, 16, 5000))]
    bodies.insert(1, pb.NodeDef(name="x", op="Placeholder").SerializeToString())
    data = (encode_field(4, pb.VersionDef(producer=7).SerializeToString())
            + b"".join(encode_field(1, b) for b in bodies) + b"\x18\x05")  # GraphDef.version = 5
    found, stripped = regions.scan(memoryview(data))
    assert set(found) == {"w0", "w2"}  # w1 is small
    original, short = pb.GraphDef(), pb.GraphDef()
    original.ParseFromString(data)
    short.ParseFromString(stripped)
    assert len(stripped) < len(data) - 7000 * 4
    for nd in original.node:
        if nd.name in found:
            start, end = found[nd.name]
            assert data[start:end] == nd.attr["value"].tensor.tensor_content
            nd.attr["value"].tensor.tensor_content = b""
    assert short == original


def test_truncated_or_odd_files_give_no_regions():
    body = _const("w", np.zeros(2048, np.float32).tobytes())
    data = encode_field(1, body)
    found, stripped = regions.scan(memoryview(data))
    assert set(found) == {"w"} and stripped is not None
    assert regions.scan(memoryview(data[:-10])) == ({}, None)  # length past the end
    assert regions.scan(memoryview(b"\x0b" + data)) == ({}, None)  # a group: not expected


def test_mapped_graphdef_converts_and_matches_tensorflow(tf, tmp_path, monkeypatch):
    import keras

    from modelport.convert.pipeline import convert
    from modelport.importers.tensorflow import tensors
    from tests.importers.tensorflow import models as M

    model = M.plain_cnn(keras)
    M.randomize(model, 21)
    (x,) = M.rng_inputs(22, (2, 24, 24, 3))
    case = M.keras_frozen("mapped_cnn", model, [x], tmp_path)

    # this small graph is mapped and walked as a 100 MB one would be
    monkeypatch.setattr(source, "MAP_MIN_BYTES", 0)
    monkeypatch.setattr(regions, "MIN_NODE_BYTES", 64)
    monkeypatch.setattr(tensors, "_SMALL", 16)
    used = []
    original = tensors.from_region

    def counting(*args):
        used.append(args[1])
        return original(*args)

    monkeypatch.setattr("modelport.importers.tensorflow.ops.array.from_region", counting)
    convert(case.src, tmp_path / "mapped.onnx", force=True)
    assert len(used) >= 5, used  # the convolution kernels at least

    (name, feed), = case.feeds.items()
    (key, want), = case.expected.items()
    got = run_onnx(tmp_path / "mapped.onnx", {name: feed})
    assert_close(got[key], want, case.rtol, case.atol)


def test_mapped_constant_of_the_wrong_size_is_refused_in_one_line(tmp_path, monkeypatch):
    import pytest

    from modelport.convert.pipeline import convert
    from modelport.errors import InvalidModelError

    src = tmp_path / "short.pb"
    graph_with_const(src, dims=[1024, 2], content=b"\0" * (2048 * 4 - 4))
    monkeypatch.setattr(source, "MAP_MIN_BYTES", 0)
    monkeypatch.setattr(regions, "MIN_NODE_BYTES", 64)
    with pytest.raises(InvalidModelError) as info:
        convert(src, tmp_path / "o.onnx")
    message = str(info.value)
    assert "short.pb" in message and "tensor_content holds 8188 bytes" in message, message
    assert "\n" not in message
