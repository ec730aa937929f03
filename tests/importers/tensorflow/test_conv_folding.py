"""What the TensorFlow importer folds into a convolution as it translates, checked against
TensorFlow (rtol=1e-3, atol=1e-4) on graphs converted where TensorFlow cannot be imported:

- a dilated convolution as TensorFlow writes it (SpaceToBatchND -> Conv2D or
  DepthwiseConv2dNative -> BatchToSpaceND) becomes one Conv with dilations, where the paddings
  and crops make that exact, and stays the three-op translation where they do not;
- a BiasAdd and a BatchNorm after a convolution (Keras 3's decomposed multiply-add, and
  FusedBatchNormV3) end up in the Conv's weights at the default -O1, leaving no Mul or Add;
- a convolution whose output has another reader is not folded into.
"""

from __future__ import annotations

import collections

import numpy as np
import pytest

from tests.importers.tensorflow import models as M
from tests.importers.tensorflow.conftest import convert_without_tensorflow
from tests.oracles import assert_close, run_onnx


def _ops(path) -> collections.Counter:
    import onnx

    return collections.Counter(n.op_type for n in onnx.load(str(path)).graph.node)


def _convs(path) -> list[dict]:
    import onnx
    from onnx import helper

    return [{a.name: helper.get_attribute_value(a) for a in n.attribute}
            for n in onnx.load(str(path)).graph.node if n.op_type == "Conv"]


def _convert_and_compare(cases, tmp_path) -> dict[str, str]:
    jobs = [{"name": c.name, "src": c.src, "out": str(tmp_path / f"{c.name}.onnx"),
             "options": c.options} for c in cases]
    results = convert_without_tensorflow(jobs, tmp_path)
    assert results == {c.name: "ok" for c in cases}, results
    for c in cases:
        got = run_onnx(tmp_path / f"{c.name}.onnx", c.feeds)
        for key, want in c.expected.items():
            assert_close(got[key], want, c.rtol, c.atol, name=f"{c.name}/{key}")
    return {c.name: str(tmp_path / f"{c.name}.onnx") for c in cases}


def _weights(seed, *shapes):
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal(s) / np.sqrt(np.prod(s[:-1]))).astype(np.float32)
            for s in shapes]


@pytest.fixture(scope="module")
def dilated(tf, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("dilated")
    w, dw = _weights(5, (3, 3, 4, 6), (3, 2, 4, 2))
    w1, = _weights(6, (2, 2, 4, 3))
    x17, = M.rng_inputs(7, (2, 17, 19, 4))
    fns = {
        # atrous convolutions: SAME and VALID, sizes not multiples of the rate (crops)
        "atrous_same_r2": lambda x: tf.nn.atrous_conv2d(x, w, rate=2, padding="SAME"),
        "atrous_valid_r3": lambda x: tf.nn.atrous_conv2d(x, w, rate=3, padding="VALID"),
        # different rates per axis, through tf.nn.convolution
        "convolution_2x3": lambda x: tf.nn.convolution(x, w, padding="SAME",
                                                       dilations=[2, 3]),
        # depthwise, with a non-square kernel
        "depthwise_2x2": lambda x: tf.nn.depthwise_conv2d(x, dw, [1, 1, 1, 1], "SAME",
                                                          dilations=[2, 2]),
        # written by hand: the inner convolution pads each block itself (SAME)
        "inner_same": lambda x: tf.batch_to_space(
            tf.nn.conv2d(tf.space_to_batch(x, [2, 2], [[1, 2], [3, 2]]), w1, 1, "SAME"),
            [2, 2], [[0, 1], [2, 0]]),
        # crops larger than the paddings: not a padded convolution, kept as three ops
        "over_cropped": lambda x: tf.batch_to_space(
            tf.nn.conv2d(tf.space_to_batch(x, [2, 2], [[1, 0], [1, 0]]), w1, 1, "VALID"),
            [2, 2], [[2, 0], [2, 1]]),
    }
    cases = [M.frozen_case(name, fn, [x17], tmp,
                           specs=[tf.TensorSpec((None, 17, 19, 4), tf.float32)])
             for name, fn in fns.items()]
    return cases, _convert_and_compare(cases, tmp)


def test_dilated_convolutions_become_one_conv(dilated):
    cases, paths = dilated
    want = {"atrous_same_r2": [2, 2], "atrous_valid_r3": [3, 3], "convolution_2x3": [2, 3],
            "depthwise_2x2": [2, 2], "inner_same": [2, 2]}
    for name, dilations in want.items():
        ops = _ops(paths[name])
        assert ops == {"Transpose": 2, "Conv": 1}, (name, ops)  # the input's and the output's
        (conv,) = _convs(paths[name])
        assert list(conv["dilations"]) == dilations, (name, conv)


def test_over_cropped_space_to_batch_is_kept_and_exact(dilated):
    _, paths = dilated
    (conv,) = _convs(paths["over_cropped"])
    assert list(conv.get("dilations", [1, 1])) == [1, 1]  # the three-op translation
    assert _ops(paths["over_cropped"])["Reshape"] >= 2


@pytest.fixture(scope="module")
def batchnorms(tf, tmp_path_factory):
    import keras

    tmp = tmp_path_factory.mktemp("batchnorms")
    L = keras.layers
    inp = keras.Input((12, 12, 3))
    y = L.Conv2D(8, 3, padding="same")(inp)  # with bias
    y = L.BatchNormalization()(y)
    y = L.ReLU()(y)
    y = L.Conv2D(16, 3, dilation_rate=2, use_bias=False)(y)  # dilated, no bias
    y = L.BatchNormalization(epsilon=1e-3)(y)
    y = L.DepthwiseConv2D(3, padding="same")(y)
    y = L.BatchNormalization()(y)
    keras_model = keras.Model(inp, y)
    M.randomize(keras_model, 8)
    x12, = M.rng_inputs(9, (2, 12, 12, 3))

    w, w2 = _weights(10, (3, 3, 3, 5), (1, 1, 5, 4))
    b = np.linspace(-1, 1, 5).astype(np.float32)
    rng = np.random.default_rng(11)
    gamma, beta, mean = (rng.standard_normal(5).astype(np.float32) for _ in range(3))
    var = rng.uniform(0.5, 2.0, 5).astype(np.float32)

    def fused(x):  # TF 1-style: Conv2D -> BiasAdd -> FusedBatchNormV3 (inference)
        y = tf.nn.bias_add(tf.nn.conv2d(x, w, 1, "SAME"), b)
        y = tf.raw_ops.FusedBatchNormV3(x=y, scale=gamma, offset=beta, mean=mean,
                                        variance=var, epsilon=1e-3, is_training=False)[0]
        return tf.nn.relu(y)

    def shared(x):  # the convolution's output is read twice: no fold
        c = tf.nn.conv2d(x, w, 1, "SAME")
        y = tf.raw_ops.FusedBatchNormV3(x=c, scale=gamma, offset=beta, mean=mean,
                                        variance=var, epsilon=1e-3, is_training=False)[0]
        return tf.nn.conv2d(y, w2, 1, "SAME") + tf.nn.conv2d(c, w2, 1, "SAME")

    cases = [M.keras_frozen("keras_bn", keras_model, [x12], tmp),
             M.keras_export("keras_bn_saved", keras_model, [x12], tmp),
             M.frozen_case("fused_bn", fused, [x12], tmp),
             M.frozen_case("shared_conv", shared, [x12], tmp)]
    return _convert_and_compare(cases, tmp)


def test_batchnorms_and_biases_end_up_in_the_convolutions(batchnorms):
    for name in ("keras_bn", "keras_bn_saved", "fused_bn"):
        ops = _ops(batchnorms[name])
        assert not {"Mul", "Add", "Sub", "BatchNormalization"} & set(ops), (name, ops)
        convs = _convs(batchnorms[name])
        assert len(convs) == (3 if name.startswith("keras") else 1), (name, ops)
    assert [list(c["dilations"]) for c in _convs(batchnorms["keras_bn"])] == \
        [[1, 1], [2, 2], [1, 1]]


def test_convolution_with_two_readers_is_computed_once(batchnorms):
    # One Conv for x*w (read by the BatchNorm and by the second branch), two 1x1 Convs.
    assert _ops(batchnorms["shared_conv"])["Conv"] == 3
