"""The Caffe reference (OpenCV DNN) is independent of the importer it checks, and per-layer
verification says which layers it could not compare."""

from __future__ import annotations

import numpy as np
import pytest

from modelport.convert.pipeline import convert, verify_model
from modelport.importers.registry import LoadOptions
from tests.oracles.caffe_write import random_caffemodel

NET = """
name: "tiny"
input: "data"
input_shape { dim: 1 dim: 3 dim: 8 dim: 8 }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
        convolution_param { num_output: 4 kernel_size: 3 } }
layer { name: "bn1" type: "BatchNorm" bottom: "conv1" top: "conv1"
        batch_norm_param { use_global_stats: true } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1"
        pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "ip1" type: "InnerProduct" bottom: "pool1" top: "ip1"
        inner_product_param { num_output: 5 } }
layer { name: "prob" type: "Softmax" bottom: "ip1" top: "prob" }
"""


@pytest.fixture
def net(tmp_path):
    proto = tmp_path / "net.prototxt"
    proto.write_text(NET)
    weights = tmp_path / "net.caffemodel"
    random_caffemodel(proto, weights, seed=5)
    return proto, weights


def test_reference_never_runs_the_importer(net, tmp_path, monkeypatch):
    proto, weights = net
    out = tmp_path / "net.onnx"
    convert(proto, out, options=LoadOptions(weights=str(weights)))
    import modelport.importers.caffe.load as load

    def forbidden(*args, **kwargs):
        raise AssertionError("the reference ran the importer under test")

    monkeypatch.setattr(load, "build", forbidden)
    monkeypatch.setattr(load, "load", forbidden)
    from modelport.convert.runners.caffe_opencv import reference

    ref = reference(str(proto), LoadOptions(weights=str(weights)))
    assert ref._io == {"inputs": {"data": "data"}, "outputs": {"prob": "prob"}}
    report = verify_model(proto, out, options=LoadOptions(weights=str(weights)),
                          per_layer=True)
    assert report.passed


def test_per_layer_lists_fused_layers_with_a_reason(net, tmp_path):
    proto, weights = net
    out = tmp_path / "net.onnx"
    convert(proto, out, options=LoadOptions(weights=str(weights)), level=1)
    report = verify_model(proto, out, options=LoadOptions(weights=str(weights)),
                          per_layer=True)
    assert report.passed
    compared = {c.name for c in report.layers}
    not_compared = {nc.layer: nc.reason for nc in report.not_compared}
    # every layer of the prototxt is either compared or listed with its reason
    assert compared | set(not_compared) >= {"conv1", "bn1", "relu1", "pool1", "ip1", "prob"}
    assert all(reason for reason in not_compared.values())
    assert {"pool1", "ip1", "prob"} <= compared
    if not_compared:
        assert f"{len(not_compared)} not compared" in report.table()


def test_silence_consumed_blobs_are_reference_outputs(net, tmp_path):
    text = NET + 'layer { name: "silence" type: "Silence" bottom: "prob" }\n'
    proto = tmp_path / "s.prototxt"
    proto.write_text(text)
    _, weights = net  # the same layers and weights, without the Silence layer
    from modelport.convert.runners.caffe_opencv import reference

    ref = reference(str(proto), LoadOptions(weights=str(weights)))
    assert list(ref._io["outputs"]) == ["prob"]
    x = np.random.default_rng(0).standard_normal((1, 3, 8, 8)).astype(np.float32)
    got = ref.run({"data": x})
    assert got["prob"].shape == (1, 5) and np.isclose(got["prob"].sum(), 1.0, atol=1e-5)
