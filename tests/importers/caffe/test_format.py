"""Caffe formats and errors: detection, V1 text and binary net definitions, weights from a
training net's caffemodel, fork fields, missing or corrupt files, custom layers, per-layer
verification."""

from __future__ import annotations

import cv2  # noqa: F401  (the "caffe" extra: without OpenCV these tests fail, never skip)
import numpy as np
import pytest

from modelport.convert.pipeline import convert
from modelport.convert.runners.caffe_opencv import reference
from modelport.errors import InvalidModelError, UnsupportedOpsError
from modelport.importers.caffe.load import load
from modelport.importers.registry import LoadOptions, detect_format
from tests.importers.caffe.helpers import check_net, make_inputs
from tests.oracles import assert_close, run_onnx
from tests.oracles.caffe_write import random_caffemodel, write_caffemodel

V1_NET = """name: "v1"
input: "data"
input_dim: 1
input_dim: 3
input_dim: 12
input_dim: 12
layers { name: "conv1" type: CONVOLUTION bottom: "data" top: "conv1"
  blobs_lr: 1 blobs_lr: 2 convolution_param { num_output: 4 kernel_size: 3 } }
layers { name: "relu1" type: RELU bottom: "conv1" top: "conv1" }
layers { name: "pool1" type: POOLING bottom: "conv1" top: "pool1"
  pooling_param { pool: MAX kernel_size: 3 stride: 2 } }
layers { name: "ip1" type: INNER_PRODUCT bottom: "pool1" top: "ip1"
  inner_product_param { num_output: 5 } }
layers { name: "prob" type: SOFTMAX bottom: "ip1" top: "prob" }
"""

SMALL = """name: "small"
input: "data"
input_shape { dim: 1 dim: 3 dim: 10 dim: 10 }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
  convolution_param { num_output: 4 kernel_size: 3 } }
layer { name: "relu" type: "ReLU" bottom: "conv" top: "conv" }
layer { name: "fc" type: "InnerProduct" bottom: "conv" top: "fc" inner_product_param { num_output: 3 } }
"""


def test_detection(tmp_path):
    proto = tmp_path / "deploy.prototxt"
    proto.write_text(SMALL)
    weights = tmp_path / "deploy.caffemodel"
    random_caffemodel(proto, weights)
    assert detect_format(proto).name == "caffe"
    assert detect_format(weights).name == "caffe"
    v1 = tmp_path / "v1.txt"
    v1.write_text(V1_NET)
    assert detect_format(v1).name == "caffe"


def test_v1_text_matches_opencv(tmp_path):
    check_net(tmp_path, V1_NET, {"data": [1, 3, 12, 12]})


def test_v1_binary_net_definition(tmp_path):
    from google.protobuf import text_format

    from modelport.importers.caffe._pb import caffe_pb2

    proto = tmp_path / "v1.prototxt"
    proto.write_text(V1_NET)
    weights = tmp_path / "v1.caffemodel"
    random_caffemodel(proto, weights, seed=4)
    binary = tmp_path / "v1.binaryproto"
    binary.write_bytes(text_format.Parse(V1_NET, caffe_pb2.NetParameter()).SerializeToString())
    out = tmp_path / "v1.onnx"
    convert(binary, out, format="caffe", options=LoadOptions(weights=str(weights)))
    feeds = make_inputs({"data": [1, 3, 12, 12]})
    want = reference(str(proto), LoadOptions(weights=str(weights))).run(feeds)
    assert_close(run_onnx(out, feeds)["prob"], want["prob"], name="prob")


def test_weights_from_a_training_net(tmp_path):
    # The caffemodel holds a training net: a data layer first, the deploy layers' weights
    # (in another order), a loss layer last. Weights are matched by layer name.
    proto = tmp_path / "deploy.prototxt"
    proto.write_text(SMALL)
    rng = np.random.default_rng(0)
    conv_w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32) * 0.3
    conv_b = rng.standard_normal(4).astype(np.float32)
    fc_w = rng.standard_normal((3, 256)).astype(np.float32) * 0.1
    fc_b = rng.standard_normal(3).astype(np.float32)
    weights = tmp_path / "train.caffemodel"
    write_caffemodel(weights, [
        ("mnist", "Data", []),
        ("fc", "InnerProduct", [fc_w, fc_b]),
        ("conv", "Convolution", [conv_w, conv_b]),
        ("accuracy", "Accuracy", []),
        ("loss", "SoftmaxWithLoss", []),
    ], name="train_net")
    out = tmp_path / "net.onnx"
    convert(proto, out, options=LoadOptions(weights=str(weights)))
    feeds = make_inputs({"data": [1, 3, 10, 10]})
    want = reference(str(proto), LoadOptions(weights=str(weights))).run(feeds)
    got = run_onnx(out, feeds)
    assert_close(got["fc"], want["fc"], name="fc")
    x = feeds["data"]
    # and against a direct NumPy evaluation, so the test does not rest on OpenCV alone
    cols = np.lib.stride_tricks.sliding_window_view(x[0], (3, 3), axis=(1, 2))  # 3x8x8x3x3
    conv = np.einsum("chwij,ocij->ohw", cols, conv_w) + conv_b[:, None, None]
    assert_close(got["fc"][0], fc_w @ np.maximum(conv, 0).reshape(-1) + fc_b, name="numpy")


def test_weights_are_lazy(tmp_path):
    import onnx_ir as ir

    proto = tmp_path / "deploy.prototxt"
    proto.write_text(SMALL)
    random_caffemodel(proto, tmp_path / "deploy.caffemodel")
    model = load(str(proto), LoadOptions())  # sibling caffemodel found by stem
    conv_w = model.graph.initializers["conv.weight"].const_value
    assert isinstance(conv_w, ir.LazyTensor)
    assert conv_w.shape.dims == (4, 3, 3, 3)


def test_missing_weights_needs_random_weights(tmp_path):
    proto = tmp_path / "net.prototxt"
    proto.write_text(SMALL)
    with pytest.raises(InvalidModelError, match="--random-weights"):
        convert(proto, tmp_path / "a.onnx")
    result = convert(proto, tmp_path / "b.onnx", options=LoadOptions(random_weights=True))
    assert result.nodes_exported > 0


def test_caffemodel_as_source(tmp_path):
    weights = tmp_path / "model.caffemodel"
    proto = tmp_path / "model.prototxt"
    proto.write_text(SMALL)
    random_caffemodel(proto, weights)
    other = tmp_path / "sub"
    other.mkdir()
    lone = other / "lone.caffemodel"
    lone.write_bytes(weights.read_bytes())
    with pytest.raises(InvalidModelError, match="give the net definition"):
        load(str(lone), LoadOptions())
    model = load(str(weights), LoadOptions())  # finds model.prototxt next to it
    assert [o.name for o in model.graph.outputs] == ["fc"]


@pytest.mark.parametrize("cut", [10, 200, -7])
def test_truncated_caffemodel(tmp_path, cut):
    proto = tmp_path / "net.prototxt"
    proto.write_text(SMALL)
    weights = tmp_path / "net.caffemodel"
    random_caffemodel(proto, weights)
    data = weights.read_bytes()
    weights.write_bytes(data[:cut])
    with pytest.raises(InvalidModelError):
        load(str(proto), LoadOptions(weights=str(weights)))


def test_corrupt_prototxt(tmp_path):
    proto = tmp_path / "net.prototxt"
    proto.write_text(SMALL[:-20])
    with pytest.raises(InvalidModelError, match="not a valid Caffe prototxt"):
        load(str(proto), LoadOptions(random_weights=True))


def test_unknown_fork_fields(tmp_path):
    proto = tmp_path / "net.prototxt"
    # A numerics-changing unknown field is reported; unknown filler/param fields are not.
    proto.write_text(SMALL.replace(
        "convolution_param { num_output: 4 kernel_size: 3 }",
        "convolution_param { num_output: 4 kernel_size: 3 quantize_bits: 8 "
        "weight_filler { type: \"msra\" fancy: 2 } } param { lr_mult: 1 frozen: true }"))
    with pytest.raises(UnsupportedOpsError) as info:
        load(str(proto), LoadOptions(random_weights=True))
    assert list(info.value.ops) == ["convolution_param.quantize_bits"]
    assert info.value.ops["convolution_param.quantize_bits"] == ["conv"]
    # ceil_mode (a fork field in this schema) is honoured, checked against OpenCV
    check_net(tmp_path, SMALL.replace(
        'layer { name: "fc"',
        'layer { name: "p" type: "Pooling" bottom: "conv" top: "p" '
        'pooling_param { pool: MAX kernel_size: 3 stride: 2 ceil_mode: false } }\n'
        'layer { name: "fc"').replace('bottom: "conv" top: "fc"', 'bottom: "p" top: "fc"'),
        {"data": [1, 3, 10, 10]})


def test_unknown_layers_listed_and_registrable(tmp_path):
    from modelport.importers.caffe import caffe_layer

    proto = tmp_path / "net.prototxt"
    proto.write_text(SMALL + """
layer { name: "d1" type: "MyDouble" bottom: "fc" top: "d1" }
layer { name: "d2" type: "MyDouble" bottom: "d1" top: "d2" }
layer { name: "py" type: "Python" bottom: "d2" top: "py" python_param { module: "m" layer: "L" } }
""")
    with pytest.raises(UnsupportedOpsError) as info:
        load(str(proto), LoadOptions(random_weights=True))
    assert info.value.ops == {"MyDouble": ["d1", "d2"], "Python": ["py"]}

    @caffe_layer("MyDouble", replace=True)
    def my_double(ctx, layer, inputs):
        (x,) = inputs
        return [ctx.op("Mul", x, ctx.const(2.0, "two"), shape=ctx.shape(x))]

    try:
        proto.write_text(SMALL + 'layer { name: "d1" type: "MyDouble" bottom: "fc" top: "d1" }\n')
        weights = tmp_path / "net.caffemodel"
        random_caffemodel(proto, weights)
        out = tmp_path / "net.onnx"
        convert(proto, out, options=LoadOptions(weights=str(weights)))
        feeds = make_inputs({"data": [1, 3, 10, 10]})
        base = tmp_path / "base.prototxt"
        base.write_text(SMALL)
        want = reference(str(base), LoadOptions(weights=str(weights))).run(feeds)["fc"]
        assert_close(run_onnx(out, feeds)["d1"], 2 * want, name="d1")
    finally:
        caffe_layer._table.pop("MyDouble", None)


def test_per_layer_verification(tmp_path):
    proto = tmp_path / "net.prototxt"
    proto.write_text(V1_NET)
    weights = tmp_path / "net.caffemodel"
    random_caffemodel(proto, weights, seed=3)
    result = convert(proto, tmp_path / "net.onnx", options=LoadOptions(weights=str(weights)),
                     verify=True, verify_kwargs={"per_layer": True})
    assert result.report.passed
    names = [c.name for c in result.report.layers]
    assert {"conv1", "relu1", "pool1", "ip1", "prob"} <= set(names)
    assert all(c.passed for c in result.report.layers)


def test_v1_binary_caffemodel_with_legacy_blob_dims(tmp_path):
    # Old caffemodels (e.g. the original BVLC releases) are V1 nets whose blobs carry
    # num/channels/height/width instead of a shape, and were written unpacked by some tools.
    from modelport.importers.caffe._pb import caffe_pb2

    proto = tmp_path / "v1.prototxt"
    proto.write_text(V1_NET)
    rng = np.random.default_rng(7)
    net = caffe_pb2.NetParameter(name="v1")

    def add(name, arrays, legacy_dims):
        layer = net.layers.add(name=name, type=caffe_pb2.V1LayerParameter.CONVOLUTION)
        for array, dims in zip(arrays, legacy_dims):
            blob = layer.blobs.add(num=dims[0], channels=dims[1], height=dims[2], width=dims[3])
            blob.data.extend(array.reshape(-1).tolist())

    conv_w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32) * 0.3
    conv_b = rng.standard_normal(4).astype(np.float32)
    ip_w = rng.standard_normal((5, 100)).astype(np.float32) * 0.1
    ip_b = rng.standard_normal(5).astype(np.float32)
    add("conv1", [conv_w, conv_b], [(4, 3, 3, 3), (1, 1, 1, 4)])
    add("ip1", [ip_w, ip_b], [(1, 1, 5, 100), (1, 1, 1, 5)])
    weights = tmp_path / "v1.caffemodel"
    weights.write_bytes(net.SerializeToString())
    out = tmp_path / "v1.onnx"
    convert(proto, out, options=LoadOptions(weights=str(weights)))
    feeds = make_inputs({"data": [1, 3, 12, 12]})
    want = reference(str(proto), LoadOptions(weights=str(weights))).run(feeds)
    assert_close(run_onnx(out, feeds)["prob"], want["prob"], name="prob")


def test_unpacked_blob_data(tmp_path):
    # Repeated floats written one field per value (not packed) must read the same.
    import struct

    from modelport.protowire import FIXED32, encode_key, encode_varint
    from tests.oracles.caffe_write import _len_field

    def blob(array):
        dims = b"".join(encode_varint(d) for d in array.shape)
        data = b"".join(encode_key(5, FIXED32) + struct.pack("<f", v) for v in array.reshape(-1))
        return _len_field(7, _len_field(7, _len_field(1, dims)) + data)

    rng = np.random.default_rng(11)
    conv_w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32) * 0.3
    conv_b = rng.standard_normal(4).astype(np.float32)
    fc_w = rng.standard_normal((3, 256)).astype(np.float32) * 0.1
    fc_b = rng.standard_normal(3).astype(np.float32)
    body = _len_field(1, b"net")
    for name, arrays in (("conv", [conv_w, conv_b]), ("fc", [fc_w, fc_b])):
        layer = _len_field(1, name.encode()) + b"".join(blob(a) for a in arrays)
        body += _len_field(100, layer)
    proto = tmp_path / "net.prototxt"
    proto.write_text(SMALL)
    weights = tmp_path / "net.caffemodel"
    weights.write_bytes(body)
    out = tmp_path / "net.onnx"
    convert(proto, out, options=LoadOptions(weights=str(weights)))
    feeds = make_inputs({"data": [1, 3, 10, 10]})
    want = reference(str(proto), LoadOptions(weights=str(weights))).run(feeds)
    assert_close(run_onnx(out, feeds)["fc"], want["fc"], name="fc")


def test_detection_leaves_tensorflow_text_graphs_alone():
    from modelport.importers.caffe.format import FORMAT
    from modelport.importers.registry import read_head
    from tests.importers.caffe.helpers import corpus_dir

    tf_text = corpus_dir().parent / "tf" / "opencv_face_detector.pbtxt"
    if not tf_text.is_file():
        pytest.fail(f"corpus file missing: {tf_text}")
    assert FORMAT.detect(str(tf_text), read_head(str(tf_text))) == 0
    for proto in sorted(corpus_dir().glob("*.prototxt")):
        assert FORMAT.detect(str(proto), read_head(str(proto))) > 0, proto.name
