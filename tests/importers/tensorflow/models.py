"""TensorFlow models built by the tests with seeded weights: frozen GraphDefs, SavedModels.

Each builder writes its files under a folder and returns a :class:`Case`: the source path, the
conversion options, seeded inputs (keyed by the ONNX input names) and TensorFlow's outputs on
them (keyed by the ONNX output names), computed here with TensorFlow.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")


@dataclasses.dataclass
class Case:
    name: str
    src: str
    feeds: dict[str, np.ndarray]
    expected: dict[str, np.ndarray]
    options: dict = dataclasses.field(default_factory=dict)  # LoadOptions keywords
    rtol: float = 1e-3
    atol: float = 1e-4


def graph_with_const(path, *, dims, content: bytes = b"") -> None:
    """x (Placeholder [1024, 2]) + c, where the Const c declares ``dims`` and stores
    ``content``."""
    from modelport.importers.tensorflow._pb import modelport_tf_pb2 as pb

    g = pb.GraphDef()
    x = g.node.add(name="x", op="Placeholder")
    x.attr["dtype"].type = 1
    for d in (1024, 2):
        x.attr["shape"].shape.dim.add(size=d)
    c = g.node.add(name="c", op="Const")
    c.attr["dtype"].type = 1
    c.attr["value"].tensor.dtype = 1
    for d in dims:
        c.attr["value"].tensor.tensor_shape.dim.add(size=d)
    if content:
        c.attr["value"].tensor.tensor_content = content
    y = g.node.add(name="y", op="AddV2", input=["x", "c"])
    y.attr["T"].type = 1
    path.write_bytes(g.SerializeToString())


def randomize(model, seed: int) -> None:
    """Seeded weights; BatchNorm variances positive (so the statistics are not trivial)."""
    rng = np.random.default_rng(seed)
    for w in model.weights:
        shape = tuple(w.shape)
        name = w.path if hasattr(w, "path") else w.name
        if "variance" in name:
            value = rng.uniform(0.5, 1.5, shape)
        elif "gamma" in name:
            value = rng.uniform(0.5, 1.5, shape)
        else:
            fan_in = int(np.prod(shape[:-1])) if len(shape) > 1 else 1
            value = rng.standard_normal(shape) / np.sqrt(max(fan_in, 1))
        w.assign(value.astype(np.float32))


def freeze(fn, specs, path: Path, lower: bool = True) -> tuple[object, list[str], list[str]]:
    """Freeze a tf.function: (frozen concrete function, input names, output names).

    ``lower``: convert_variables_to_constants_v2's lower_control_flow (True: TF 1 loop frames
    and Switch/Merge; False: functional While/If kept)."""
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )

    concrete = tf.function(fn).get_concrete_function(*specs)
    frozen = convert_variables_to_constants_v2(concrete, lower_control_flow=lower)
    graph_def = frozen.graph.as_graph_def()
    path.write_bytes(graph_def.SerializeToString())
    ins = [t.name.split(":")[0] for t in frozen.inputs]
    outs = [t.name.split(":")[0] for t in frozen.outputs]
    return frozen, ins, outs


def frozen_case(name, fn, feeds: list[np.ndarray], folder: Path, specs=None, lower=True,
                **kw) -> Case:
    import tensorflow as tf

    specs = specs or [tf.TensorSpec(x.shape, tf.as_dtype(x.dtype)) for x in feeds]
    path = folder / f"{name}.pb"
    frozen, ins, outs = freeze(fn, specs, path, lower)
    result = frozen(*[tf.constant(x) for x in feeds])
    result = result if isinstance(result, (list, tuple)) else [result]
    return Case(name, str(path), dict(zip(ins, feeds)),
                {o: np.asarray(r) for o, r in zip(outs, result)}, **kw)


def keras_frozen(name, model, feeds: list[np.ndarray], folder: Path, specs=None,
                 **kw) -> Case:
    import tensorflow as tf

    specs = specs or [tf.TensorSpec(x.shape, tf.float32) for x in feeds]
    if len(feeds) == 1:
        return frozen_case(name, lambda x: model(x, training=False), feeds, folder, specs, **kw)
    return frozen_case(name, lambda *xs: model(list(xs), training=False), feeds, folder, specs,
                       **kw)


def keras_export(name, model, feeds: list[np.ndarray], folder: Path, **kw) -> Case:
    """Keras 3 ``model.export()`` (a SavedModel with signatures serve / serving_default)."""
    import tensorflow as tf

    path = folder / name
    model.export(str(path), verbose=False)
    loaded = tf.saved_model.load(str(path))
    fn = loaded.signatures["serving_default"]
    keys = sorted(fn.structured_input_signature[1])
    result = fn(**{k: tf.constant(x) for k, x in zip(keys, feeds)})
    return Case(name, str(path), dict(zip(keys, feeds)),
                {k: np.asarray(v) for k, v in result.items()}, **kw)


def rng_inputs(seed: int, *shapes) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s).astype(np.float32) for s in shapes]


# ---- the models ---------------------------------------------------------------------------------

def cnn(keras):
    L = keras.layers
    x = keras.Input((32, 32, 3))
    y = L.ZeroPadding2D(1)(x)
    y = L.Conv2D(8, 3, strides=2, padding="valid")(y)
    y = L.BatchNormalization()(y)
    y = L.ReLU(6.0)(y)
    y = L.DepthwiseConv2D(3, padding="same")(y)
    y = L.BatchNormalization()(y)
    y = L.Activation("relu")(y)
    y = L.SeparableConv2D(12, 3, padding="same", dilation_rate=2)(y)
    y = L.MaxPooling2D(2, padding="same")(y)
    z = L.Conv2DTranspose(6, 3, strides=2, padding="same")(y)
    z = L.AveragePooling2D(3, strides=2, padding="same")(z)
    z = L.Conv2D(12, 1, activation="elu")(z)
    y = L.Add()([y, z])
    y = L.Conv2D(16, 3, padding="same", groups=4, activation="sigmoid")(y)
    y = L.UpSampling2D(2, interpolation="bilinear")(y)
    y = L.GlobalAveragePooling2D()(y)
    y = L.Dense(10, activation="softmax")(y)
    return keras.Model(x, y)


def plain_cnn(keras):
    """Conv/BatchNorm/ReLU/pooling/Add/Concat, channels-last, no dilation: what the layout pass
    must bring down to one Transpose (at the input)."""
    L = keras.layers
    x = keras.Input((24, 24, 3))
    y = L.Conv2D(8, 3, padding="same", use_bias=False)(x)
    y = L.BatchNormalization()(y)
    y = L.ReLU()(y)
    y = L.MaxPooling2D(2)(y)
    a = L.Conv2D(8, 3, padding="same")(y)
    a = L.BatchNormalization()(a)
    a = L.ReLU()(a)
    y = L.Add()([y, a])
    b = L.Conv2D(4, 1, activation="relu")(y)
    c = L.AveragePooling2D(3, strides=1, padding="same")(y)
    y = L.Concatenate()([b, c])
    y = L.ZeroPadding2D(1)(y)
    y = L.Conv2D(16, 3, strides=2)(y)
    y = L.BatchNormalization()(y)
    y = L.ReLU(6.0)(y)
    y = L.GlobalAveragePooling2D()(y)
    y = L.Dense(5, activation="softmax")(y)
    return keras.Model(x, y)


def mlp(keras):
    L = keras.layers
    x = keras.Input((20,))
    y = L.Dense(32, activation="elu")(x)
    y = L.Dense(32, activation="selu")(y)
    y = L.Dense(32, activation="softplus")(y)
    y = L.Dense(32, activation="softsign")(y)
    y = L.LeakyReLU(0.1)(L.Dense(32)(y))
    y = L.Dense(32, activation="tanh")(y)
    y = L.Dense(32, activation="gelu")(y)
    y = L.Dense(32, activation="swish")(y)
    y = L.LayerNormalization()(y)
    y = L.Dense(8, activation="log_softmax")(y)
    return keras.Model(x, y)


def transformer(keras):
    L = keras.layers
    x = keras.Input((12, 32))
    a = L.MultiHeadAttention(num_heads=4, key_dim=8)(x, x)
    y = L.LayerNormalization(epsilon=1e-6)(L.Add()([x, a]))
    f = L.Dense(32)(L.Dense(64, activation="gelu")(y))
    y = L.LayerNormalization(epsilon=1e-6)(L.Add()([y, f]))
    y = L.GlobalAveragePooling1D()(y)
    return keras.Model(x, L.Dense(4)(y))


def raw_ops(tf):
    """Functions of plain TensorFlow ops (frozen as GraphDefs): (name, fn, input shapes)."""
    rng = np.random.default_rng(5)
    w3 = tf.constant(rng.standard_normal((2, 2, 2, 3, 4)).astype(np.float32))
    table = tf.constant(rng.standard_normal((10, 6)).astype(np.float32))

    def slicing(x):  # x: (2, 6, 8, 4)
        a = x[:, 1:5:2, ::-1, 2]
        b = x[..., tf.newaxis, 1]
        c = x[1, -3:, ..., :3]
        d = tf.slice(x, [0, 1, 2, 0], [-1, 3, 4, 2])
        e = tf.strided_slice(x, [0, 5, 0, 0], [2, 0, 8, 4], [1, -2, 3, 1])
        u = tf.unstack(x, axis=1)
        s1, s2 = tf.split(x, 2, axis=3)
        v1, v2, v3 = tf.split(x, [2, -1, 3], axis=2)
        p = tf.stack([u[0], u[5]], axis=-1)
        return [a, b, c, d, e, p, s1 * s2, v1 + v3[..., :2, :] - v2[..., :2, :],
                tf.squeeze(x[:1, :, 2:3])]

    def shapes(x):  # x: (2, 6, 8, 4), dynamic batch
        n = tf.shape(x)[0]
        y = tf.reshape(x, [n, -1, 4])
        z = tf.transpose(y, [0, 2, 1])
        t = tf.tile(tf.expand_dims(x[:, 0, 0, :], 1), [1, 3, 1])
        f = tf.fill(tf.stack([n, 2]), 1.5)
        r = tf.cast(tf.range(0, 8, 2), tf.float32)
        sq = tf.squeeze(x[:, :1, :, :1], axis=[1, 3])
        size = tf.cast(tf.size(x) + tf.rank(x), tf.float32)
        return [z, t, f, r, sq, size + tf.reduce_sum(x), tf.zeros_like(x) + tf.ones_like(x)]

    def padding(x):
        p = [[0, 0], [1, 2], [2, 1], [0, 0]]
        return [tf.pad(x, p), tf.pad(x, p, constant_values=-2.0),
                tf.pad(x, p, mode="REFLECT"), tf.pad(x, p, mode="SYMMETRIC")]

    def math_ops(x, y):  # (3, 5) each
        return [tf.math.floordiv(x, y + 3.0), tf.math.floormod(x, 0.7), tf.math.divide_no_nan(
            x, tf.where(y > 0, y, 0.0)), tf.math.squared_difference(x, y), tf.math.rsqrt(
            tf.abs(x) + 1), tf.pow(tf.abs(x) + 0.5, y), tf.maximum(x, y) - tf.minimum(x, y),
            tf.exp(-tf.abs(x)) + tf.math.log(tf.abs(y) + 1) - tf.math.log1p(tf.abs(x)),
            tf.cast(tf.logical_and(x > y, tf.logical_not(x > 0.5)), tf.float32),
            tf.cast(tf.logical_or(tf.equal(x, y), tf.not_equal(x, 0.0)), tf.float32),
            tf.where(x >= y, x, y), tf.add_n([x, y, x]), tf.math.sign(x) * tf.round(3 * y),
            tf.clip_by_value(x, -0.5, 0.5), tf.math.erf(x), tf.math.cumsum(x, axis=1),
            tf.math.cumsum(x, axis=1, exclusive=True, reverse=True),
            tf.cast(tf.floor(x * 4), tf.int32) // 3, tf.cast(tf.floor(x * 4), tf.int32) % 3]

    def reductions(x):  # (2, 6, 8, 4)
        return [tf.reduce_mean(x, [1, 2]), tf.reduce_sum(x, 3, keepdims=True),
                tf.reduce_max(x, [0, -1]), tf.reduce_min(x, 1), tf.reduce_prod(x[..., :2], 2),
                tf.argmax(x, 2), tf.argmin(x, -1, output_type=tf.int32),
                tf.cast(tf.reduce_any(x > 1.5, axis=1), tf.float32),
                tf.nn.softmax(x, axis=-1), tf.nn.log_softmax(x)]

    def gathers(x, i):  # x (2, 6, 8, 4), i int32 (3,)
        g = tf.gather(table, i)
        gn = tf.gather_nd(x, [[0, 1], [1, 5]])
        oh = tf.one_hot(i, 10, on_value=2.0, off_value=-1.0)
        vals, idx = tf.math.top_k(x[0, 0], k=3)
        w = tf.cast(tf.where(x[0, 0] > 0.5), tf.float32)
        return [g, tf.gather(x, [3, 0], axis=2), gn, oh, vals, tf.cast(idx, tf.float32),
                tf.reduce_sum(w, axis=0)]

    def images(x):  # (2, 6, 8, 4)
        out = []
        for method in ("bilinear", "nearest"):
            out.append(tf.image.resize(x, [12, 10], method=method))
        out.append(tf.compat.v1.image.resize_bilinear(x, [11, 9], align_corners=True))
        out.append(tf.compat.v1.image.resize_nearest_neighbor(x, [12, 16]))
        out.append(tf.compat.v1.image.resize_nearest_neighbor(x, [11, 13], align_corners=True))
        out.append(tf.nn.depth_to_space(x, 2))
        out.append(tf.nn.space_to_depth(x, 2))
        out.append(tf.nn.conv3d(tf.reshape(x, [2, 6, 8, 2, 2]), w3[..., :2, :], [1, 1, 2, 1, 1],
                                "SAME"))
        out.append(tf.nn.max_pool3d(tf.reshape(x, [2, 6, 8, 2, 2]), 2, 2, "VALID"))
        out.append(tf.nn.avg_pool3d(tf.reshape(x, [2, 6, 8, 2, 2]), [1, 3, 3, 1, 1],
                                    [1, 2, 2, 1, 1], "SAME"))
        out.append(tf.nn.relu6(x) + tf.nn.leaky_relu(x, 0.3) + tf.nn.selu(x) + tf.nn.elu(x))
        out.append(tf.nn.local_response_normalization(x, 2, 1.0, 0.5, 0.75))
        return out

    def products(a, b):  # (2, 3, 4), (2, 5, 4)
        return [tf.matmul(a, b, transpose_b=True), tf.linalg.matmul(b, b, adjoint_a=True),
                tf.einsum("bij,bkj->bik", a, b), tf.einsum("bij->bj", a),
                tf.matmul(a[0], b[0], transpose_b=True)]

    x4 = (2, 6, 8, 4)
    return [
        ("slicing", slicing, [x4]), ("shapes", shapes, [x4]), ("padding", padding, [x4]),
        ("math_ops", math_ops, [(3, 5), (3, 5)]), ("reductions", reductions, [x4]),
        ("gathers", gathers, [x4, "i"]), ("images", images, [x4]),
        ("products", products, [(2, 3, 4), (2, 5, 4)]),
    ]


def tf1_graph(tf, path: Path, seed: int = 3):
    """A TF 1-style graph (tf.compat.v1 ops, reference variables), frozen with
    graph_util.convert_variables_to_constants: (path, inputs, outputs names, feeds, expected)."""
    v1 = tf.compat.v1
    rng = np.random.default_rng(seed)
    graph = tf.Graph()
    with graph.as_default():
        x = v1.placeholder(tf.float32, [None, 16, 16, 3], name="images")
        k = v1.Variable(rng.standard_normal((3, 3, 3, 8)).astype(np.float32) * 0.3, name="k")
        y = tf.nn.conv2d(x, k, [1, 1, 1, 1], "SAME", name="conv")
        scale = v1.Variable(rng.uniform(0.5, 1.5, 8).astype(np.float32), name="scale")
        offset = v1.Variable(rng.standard_normal(8).astype(np.float32), name="offset")
        mean = v1.Variable(rng.standard_normal(8).astype(np.float32), name="mean")
        var = v1.Variable(rng.uniform(0.5, 1.5, 8).astype(np.float32), name="var")
        y, _, _ = v1.nn.fused_batch_norm(y, scale, offset, mean, var, epsilon=1e-3,
                                         is_training=False, name="bn")
        y = tf.nn.relu(y)
        y = tf.nn.max_pool2d(y, 2, 2, "VALID", name="pool")
        y = v1.layers.flatten(y) if hasattr(v1, "layers") and hasattr(v1.layers, "flatten") \
            else tf.reshape(y, [-1, 8 * 8 * 8])
        w = v1.Variable(rng.standard_normal((512, 5)).astype(np.float32) * 0.05, name="w")
        b = v1.Variable(rng.standard_normal(5).astype(np.float32), name="b")
        logits = tf.nn.bias_add(tf.matmul(y, w), b, name="logits")
        tf.nn.softmax(logits, name="probs")
        keep = v1.placeholder_with_default(tf.constant(1.0), [], name="keep")
        tf.multiply(logits, keep, name="scaled")
        with v1.Session() as sess:
            sess.run(v1.global_variables_initializer())
            frozen = v1.graph_util.convert_variables_to_constants(
                sess, graph.as_graph_def(), ["probs", "scaled"])
    path.write_bytes(frozen.SerializeToString())
    feeds = {"images": rng.standard_normal((2, 16, 16, 3)).astype(np.float32)}
    g2 = tf.Graph()
    with g2.as_default():
        v1.import_graph_def(frozen, name="")
        with v1.Session(graph=g2) as sess:
            probs, scaled = sess.run(["probs:0", "scaled:0"], {"images:0": feeds["images"]})
    return feeds, {"probs": probs, "scaled": scaled}


def two_signatures(tf, path: Path, seed: int = 4):
    """A tf.Module saved with two signatures; returns the per-signature feeds and outputs."""
    rng = np.random.default_rng(seed)

    class Model(tf.Module):
        def __init__(self):
            super().__init__()
            self.w = tf.Variable(rng.standard_normal((6, 4)).astype(np.float32))
            self.b = tf.Variable(rng.standard_normal(4).astype(np.float32))
            self.table = tf.Variable(rng.standard_normal((7, 3)).astype(np.float32))

        @tf.function(input_signature=[tf.TensorSpec([None, 6], tf.float32, name="features")])
        def dense(self, features):
            h = tf.matmul(features, self.w) + self.b
            return {"scores": tf.nn.sigmoid(h), "top": tf.argmax(h, axis=1)}

        @tf.function(input_signature=[tf.TensorSpec([None, 5], tf.int32, name="ids"),
                                      tf.TensorSpec([None, 5], tf.float32, name="weights")])
        def embed(self, ids, weights):
            e = tf.gather(self.table, ids)
            return {"pooled": tf.reduce_sum(e * weights[..., None], axis=1)}

    m = Model()
    tf.saved_model.save(m, str(path), signatures={"serving_default": m.dense,
                                                  "embed": m.embed})
    x = rng.standard_normal((3, 6)).astype(np.float32)
    ids = rng.integers(0, 7, (2, 5)).astype(np.int32)
    wts = rng.standard_normal((2, 5)).astype(np.float32)
    dense = {k: np.asarray(v) for k, v in m.dense(tf.constant(x)).items()}
    embed = {k: np.asarray(v) for k, v in m.embed(tf.constant(ids), tf.constant(wts)).items()}
    return ({"features": x}, dense), ({"ids": ids, "weights": wts}, embed)


# ---- control flow ---------------------------------------------------------------------------------

def recurrent(keras) -> dict:
    """Keras recurrent models (input: batch, 6 steps, 5 features)."""
    L = keras.layers

    def seq(*layers):
        return keras.Sequential([keras.Input((6, 5)), *layers])

    return {
        "lstm": seq(L.LSTM(8)),
        "gru": seq(L.GRU(7, return_sequences=True)),
        "simple_rnn": seq(L.SimpleRNN(6, return_sequences=True), L.Dense(3)),
        "bidirectional": seq(L.Bidirectional(L.LSTM(5, return_sequences=True)),
                             L.Bidirectional(L.GRU(4), merge_mode="sum")),
        "stacked": seq(L.LSTM(8, return_sequences=True), L.GRU(6, return_sequences=True),
                       L.SimpleRNN(4)),
        # Masking (a mask TensorList and Selects in the body), go_backwards, GRU v1.
        "masked": seq(L.Masking(0.0), L.LSTM(5, return_sequences=True, go_backwards=True),
                      L.GRU(3, reset_after=False)),
    }


def while_loop_fn(tf):
    """A loop with a data-dependent trip count: doubles x until its norm passes 50."""
    def fn(x):  # x: (3, 4)
        i0 = tf.constant(0)

        def cond(i, y):
            return tf.logical_and(tf.reduce_sum(tf.abs(y)) < 50.0, i < 100)

        def body(i, y):
            return i + 1, y * 2.0 + 0.5

        i, y = tf.while_loop(cond, body, [i0, x])
        return y, tf.cast(i, tf.float32) + 0.0
    return fn


def counter_loop_fn(tf):
    """A counter loop whose bound is an input's dimension, with a TensorArray of results."""
    def fn(x):  # x: (5, 3)
        n = tf.shape(x)[0]
        ta = tf.TensorArray(tf.float32, size=n)

        def body(i, acc, ta):
            acc = acc * 0.5 + x[i]
            return i + 1, acc, ta.write(i, tf.tanh(acc))

        _, acc, ta = tf.while_loop(lambda i, *_: i < n, body,
                                   [tf.constant(0), tf.zeros([3]), ta])
        return acc, ta.stack()
    return fn


def cond_fn(tf):
    """tf.cond on an input's value."""
    def fn(x, flag):  # x: (2, 3), flag: () float
        return tf.cond(flag > 0.0, lambda: tf.nn.relu(x) * 2.0, lambda: tf.sigmoid(x) - x)
    return fn


def nested_loop_fn(tf):
    """A loop in a loop (the inner bound depends on the outer counter), with a cond inside."""
    def fn(x):  # x: (3, 4)
        def outer_body(i, acc):
            def inner_body(j, a):
                return j + 1, a * 0.9 + tf.cast(j, tf.float32) * 0.1

            _, acc = tf.while_loop(lambda j, a: j < i + 1, inner_body, [tf.constant(0), acc])
            acc = tf.cond(tf.reduce_sum(acc) > 0.0, lambda: acc - 0.5, lambda: acc + 0.25)
            return i + 1, tf.tanh(acc + x)

        return tf.while_loop(lambda i, a: i < 4, outer_body, [tf.constant(0),
                                                              tf.zeros_like(x)])[1]
    return fn


def list_read_and_written_fn(tf):
    """A TensorArray that the loop reads and writes (each step reads the previous one): not
    supported, must be refused in one line."""
    def fn(x):  # x: (3,)
        ta = tf.TensorArray(tf.float32, size=4, clear_after_read=False, element_shape=[3])

        def body(i, ta):
            return i + 1, ta.write(i, ta.read(tf.maximum(i - 1, 0)) * 2.0 + x)

        _, ta = tf.while_loop(lambda i, ta: i < 4, body, [tf.constant(0), ta])
        return ta.stack()
    return fn
