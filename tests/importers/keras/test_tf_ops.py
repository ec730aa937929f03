"""TensorFlow functions and indexing in tf.keras functional models (TFOpLambda and
SlicingOpLambda layers): built with tf_keras, saved as .h5, converted and compared with Keras."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from modelport.errors import ModelportError
from tests.importers.keras.helpers import check, convert_file, inputs_for, randomize, save


@pytest.fixture(scope="module")
def tf(k2):
    import tensorflow

    return tensorflow


def _classes(model) -> set[str]:
    return {type(layer).__name__ for layer in model.layers}


def test_cnn_with_tf_ops_between_convolutions(k2, tf, model_dir):
    """tf ops on channels-first tensors: reductions, concat, slicing and split along the
    channels, transpose of the spatial axes, an SE-style gate."""
    L = k2.layers
    i = k2.Input((8, 10, 3), name="img")
    h = L.Conv2D(6, 3, padding="same", name="conv_a")(i)
    h = tf.nn.relu6(h)
    gate = tf.reduce_mean(h, axis=[1, 2], keepdims=True)
    h = h * tf.math.sigmoid(L.Conv2D(6, 1, name="se")(gate))
    h = tf.concat([h, L.Conv2D(2, 1, name="conv_b")(h)], axis=-1)  # 8 channels
    h = tf.transpose(h, [0, 2, 1, 3])  # (N, 10, 8, 8)
    a, b = tf.split(h, [3, 5], axis=-1)
    h = tf.concat([tf.nn.gelu(a), tf.clip_by_value(b, -0.5, 0.5)], -1)
    h = L.Conv2D(4, 3, name="conv_c")(h)  # (N, 8, 6, 4)
    pooled = tf.reduce_max(h, axis=[1, 2])
    channels = h[..., 1:3]
    ranked = tf.math.argmax(tf.reduce_sum(h, axis=-1), axis=1)
    tiled = tf.tile(tf.nn.leaky_relu(h, alpha=0.1), [1, 1, 2, 1])
    norm = tf.math.l2_normalize(h, axis=-1)
    mean_all = tf.reduce_mean(h, axis=None)
    out = L.Dense(3, name="head")(pooled)
    # Layout-sensitive functions on channels-first values.
    picked = tf.gather(h, [[0, 3], [2, 1]], axis=-1)  # (N, 8, 6, 2, 2)
    rows = tf.unstack(h, axis=-1)[2] + tf.squeeze(gate, axis=[1, 2])[:, 5:6, None]
    flat = tf.reshape(h, [-1, 8 * 6 * 4])
    grid = tf.matmul(h, h, transpose_a=True)  # (N, 8, 4, 4)
    stacked = tf.stack([h, -h], axis=2)
    spread = tf.expand_dims(h, axis=2)[:, None, 1, :, :, 0]
    model = k2.Model(i, [out, channels, ranked, tiled, norm, mean_all, gate, picked, rows, flat,
                         grid, stacked, spread])
    assert {"TFOpLambda", "SlicingOpLambda"} <= _classes(model)
    randomize(model, 3)
    path = save(model, str(model_dir / "tf_ops_cnn.h5"))
    onnx_path = check(model, path)
    # The image is transposed once; the element-wise functions, reductions, concat and split
    # work on the channels-first values, with no Transpose of their own.
    transposed = {n.name.split("/")[0] for n in onnx.load(onnx_path).graph.node
                  if n.op_type == "Transpose"}
    assert not transposed & {"tf.nn.relu6", "tf.math.reduce_mean", "tf.math.sigmoid",
                             "tf.math.multiply", "tf.concat", "tf.split", "tf.nn.gelu",
                             "tf.concat_1", "tf.math.reduce_max", "tf.math.reduce_sum",
                             "tf.math.argmax", "tf.tile", "tf.math.l2_normalize",
                             "tf.__operators__.getitem", "se", "conv_b"}, transposed


def test_sequence_model_with_indexing_and_shape_functions(k2, tf, model_dir):
    L = k2.layers
    i = k2.Input((6, 4), name="seq")
    h = L.Dense(8, name="proj")(i)  # (N, 6, 8)
    first = h[:, 0, :]
    last = h[:, -1]
    strided = h[:, 1:4:2]
    rev = h[..., ::-2]
    mixed = h[:, None, -3:, 2]
    heads = tf.reshape(h, [-1, 6, 2, 4])
    heads = tf.transpose(heads, [0, 2, 1, 3])  # (N, 2, 6, 4)
    q, k, v = heads, heads * 0.5, tf.nn.tanh(heads)
    scores = tf.nn.softmax(tf.matmul(q, k, transpose_b=True) / 2.0, axis=-1)
    att = tf.reshape(tf.transpose(tf.matmul(scores, v), [0, 2, 1, 3]), (-1, 6, 8))
    pooled = tf.squeeze(tf.expand_dims(tf.reduce_sum(att, 1), 1), axis=[1])
    stacked = tf.stack([first, last, pooled], axis=1)  # (N, 3, 8)
    picked = tf.gather(h, [0, 2, 5], axis=1)
    one = tf.gather(h, 3, axis=1)
    parts = tf.unstack(strided, axis=1)
    gram = tf.linalg.matmul(first[:, :, None], last[:, None, :])
    lsm = tf.nn.log_softmax(stacked, axis=1)
    big = tf.reduce_max(tf.abs(h), axis=-1, keepdims=True)
    # (h[1:] is not an output: load.py names an unknown first output axis "N", the batch.)
    batch = [tf.reduce_sum(h[1:], axis=0), h[0], h[-1, ::-1], h[..., None], h[:, None, 1:],
             h[:, 5:1:-2, -2]]
    model = k2.Model(i, [first, last, strided, rev, mixed, att, stacked, picked, one, parts[1],
                         gram, lsm, big, tf.squeeze(h[:, :1]), *batch])
    randomize(model, 4)
    path = save(model, str(model_dir / "tf_ops_seq.h5"))
    check(model, path)


def test_elementwise_functions_and_constants(k2, tf, model_dir):
    i = k2.Input((5, 4), name="x")
    j = k2.Input((5, 4), name="y")
    x, y = i, j
    pos = tf.abs(x) + 0.5
    outs = [
        1.0 - x, 2.0 * x, x / 2, 3 / pos, x // 0.5, x ** 2, tf.math.pow(pos, 1.5),
        tf.math.maximum(x, y), tf.minimum(x, 0.25), tf.math.squared_difference(x, y),
        tf.math.square(x), tf.sqrt(pos), tf.math.rsqrt(pos), tf.math.log(pos), tf.exp(x),
        tf.negative(x), tf.math.reciprocal(pos), tf.math.erf(x), tf.sign(x), tf.round(x * 3),
        tf.floor(x), tf.math.ceil(x), tf.sin(x), tf.cos(x), tf.identity(x), tf.stop_gradient(y),
        tf.nn.gelu(x), tf.nn.gelu(x, approximate=True), tf.nn.silu(x), tf.nn.silu(x, beta=2.0),
        tf.nn.swish(y), tf.nn.softplus(x), tf.nn.elu(x), tf.nn.selu(x), tf.nn.relu(x),
        tf.nn.leaky_relu(x), tf.math.log_sigmoid(x), tf.nn.softsign(x),
        tf.clip_by_value(x, -0.3, y), tf.math.add_n([x, y, pos]),
        tf.cast(tf.cast(x * 4, tf.int32), tf.float32),
        tf.where(x > y, x, 0.0), tf.cast(tf.math.logical_and(x > 0, y < 0.5), tf.float32),
        tf.cast(tf.math.logical_not(x >= y), tf.float32), tf.cast(tf.equal(tf.sign(x), 1.0),
                                                                 tf.float32),
        tf.cast(tf.reduce_any(x > 1.0, axis=1), tf.float32),
        tf.cast(tf.reduce_all(x > -1.0, axis=[1, 2], keepdims=True), tf.float32),
        tf.reduce_prod(pos, axis=-1), tf.reduce_min(x, axis=[1, 2], keepdims=True),
        tf.reduce_mean(x, axis=None), tf.math.argmin(y, axis=1, output_type=tf.int32),
    ]
    model = k2.Model([i, j], outs)
    path = save(model, str(model_dir / "tf_ops_elementwise.h5"))
    check(model, path)


def test_tensor_indices_and_integer_inputs(k2, tf, model_dir):
    x = k2.Input((6, 3), name="x")
    idx = k2.Input((4,), dtype="int32", name="idx")
    gathered = tf.gather(x, idx, axis=1)
    hot = tf.one_hot(idx, 6)
    hot2 = tf.one_hot(idx - 2, 4, on_value=2.0, off_value=-1.0)  # negative: all "off"
    mixed = tf.matmul(hot, x)
    model = k2.Model([x, idx], [gathered, hot, hot2, mixed, tf.cast(idx * 2 + 1, tf.float32)])
    path = save(model, str(model_dir / "tf_ops_indices.h5"))
    feeds = inputs_for(model, int_high=6)
    check(model, path, feeds)


def _bessel_model(k2, tf, model_dir):
    i = k2.Input((4,), name="x")
    h = k2.layers.Dense(3, name="d")(i)
    return save(k2.Model(i, tf.math.bessel_i0(h) + 1.0), str(model_dir / "tf_ops_bessel.h5"))


def test_unsupported_function_is_a_clear_error(k2, tf, model_dir):
    path = _bessel_model(k2, tf, model_dir)
    with pytest.raises(ModelportError, match=r"unsupported Keras layer: TFOpLambda 'math.bessel_i0'"):
        convert_file(path)


def test_every_unsupported_function_is_listed_up_front(k2, tf, model_dir):
    # Like unsupported layers: all of them in one error, before anything is translated.
    i = k2.Input((4,), name="x")
    h = k2.layers.Dense(3, name="d")(i)
    out = tf.math.bessel_i0(h) + tf.math.lgamma(h) + tf.math.bessel_i0(h * 2.0)
    path = save(k2.Model(i, out), str(model_dir / "tf_ops_two_unsupported.h5"))
    with pytest.raises(ModelportError) as info:
        convert_file(path)
    text = str(info.value)
    assert "TFOpLambda 'math.bessel_i0'" in text and "TFOpLambda 'math.lgamma'" in text, text
    assert info.value.ops["TFOpLambda 'math.bessel_i0'"].__len__() == 2


def test_unsupported_function_cli_exit_2(k2, tf, model_dir, capsys):
    from modelport.cli import main

    path = _bessel_model(k2, tf, model_dir)
    with pytest.raises(SystemExit) as exc:
        main(["convert", path, "-o", str(model_dir / "tf_ops_bessel.onnx"), "--quiet"])
    err = capsys.readouterr().err
    assert exc.value.code == 2
    assert len(err.strip().splitlines()) == 1 and "math.bessel_i0" in err


def test_einsum_and_unrecorded_operands_are_refused(k2, tf, model_dir):
    """tf.keras saves neither the einsum operands nor the right side of ``x == c``."""
    a = k2.Input((3, 4), name="a")
    b = k2.Input((5, 4), name="b")
    path = save(k2.Model([a, b], tf.einsum("bij,bkj->bik", a, b)),
                str(model_dir / "tf_ops_einsum.h5"))
    with pytest.raises(ModelportError, match="TFOpLambda 'einsum'.*does not record"):
        convert_file(path)
    path = save(k2.Model(a, tf.cast(a == 1.0, tf.float32)), str(model_dir / "tf_ops_eq.h5"))
    with pytest.raises(ModelportError, match="second operand"):
        convert_file(path)


def test_unsupported_arguments_are_refused(k2, tf, model_dir):
    x = k2.Input((6, 4), name="x")
    cases = {
        "int_floordiv": (tf.math.floordiv(tf.cast(x, tf.int32), 2), "compat.v1.floor_div"),
        "where_indices": (tf.where(x > 0), "'where' without x and y"),
        "shape": (tf.shape(x), "compat.v1.shape"),
    }
    for name, (out, text) in cases.items():
        path = save(k2.Model(x, out), str(model_dir / f"tf_ops_refused_{name}.h5"))
        with pytest.raises(ModelportError, match="not supported|unsupported") as err:
            convert_file(path)
        assert text in str(err.value)


def test_constant_first_argument_parses():
    from modelport.importers.keras.model import Ref, _parse_calls

    (call,) = _parse_calls([["_CONSTANT_VALUE", -1, 2.0, {"y": ["x", 0, 0], "name": None}]])
    assert call.args == [2.0] and call.kwargs["y"] == Ref("x", 0, 0)
    assert np.isclose(call.args[0], 2.0)


def test_output_sliced_along_the_batch_keeps_its_slice(k2, model_dir):
    # An output's first axis is not necessarily the batch: x[1:] must stay a slice at -O1
    # (outputs once declared their first unknown axis "N", the input batch's name).
    i = k2.Input((4,), name="x")
    h = k2.layers.Dense(3, name="dense")(i)
    model = k2.Model(i, [h[1:], h])
    randomize(model, seed=6)
    check(model, save(model, str(model_dir / "tf_batch_slice.h5")))
