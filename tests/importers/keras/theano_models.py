"""Build Keras models on real Theano, save them and Theano's outputs: run INSIDE a Theano env.

Usage (with the interpreter of ``.venv-theano-k1`` or ``.venv-theano-k2`` and the environment
of ``theano_env.theano_environ``)::

    python theano_models.py OUT_DIR [NAME ...]

For every model NAME of this Keras version it writes ``NAME.h5`` (``model.save``) and
``NAME.npz`` holding seeded inputs (keyed by input layer name) and the outputs Theano computed
(``out:0``, ``out:1``...). Weights are seeded random values (BatchNormalization variances kept
positive) so that nothing is an identity. It imports nothing from modelport (its NumPy is old);
``tests/fixtures/theano/regenerate.py`` runs it to rebuild the committed fixtures.
"""

import importlib
import os
import sys

import numpy as np

importlib.import_module("theano.ifelse")  # Keras' Theano backend needs it loaded first
keras = importlib.import_module("keras")

K1 = keras.__version__.startswith("1")
L = keras.layers


def randomize(model, seed):
    rng = np.random.RandomState(seed)
    for layer in model.layers:
        ws = layer.get_weights()
        if not ws:
            continue
        names = [getattr(w, "name", "") for w in layer.weights]
        new = []
        for w, n in zip(ws, names):
            if w.dtype.kind != "f":
                new.append(w)
            elif "var" in n or "std" in n:
                new.append(rng.uniform(0.5, 1.5, w.shape).astype(w.dtype))
            else:
                new.append(rng.normal(0, 0.4, w.shape).astype(w.dtype))
        layer.set_weights(new)


# -- Keras 2.2.4 models -------------------------------------------------------------------------

def k2_cnn_last():
    x = L.Input((9, 10, 3), name="img")
    y = L.Conv2D(4, 3, strides=2, padding="same", activation="relu")(x)
    y = L.Conv2D(5, 2, padding="same")(y)
    y = L.MaxPooling2D(2, padding="same")(y)
    y = L.Conv2D(3, (3, 2), padding="valid", dilation_rate=(1, 1))(y)
    y = L.AveragePooling2D(2, strides=1, padding="same")(y)
    y = L.Flatten()(y)
    y = L.Dense(6, activation="tanh")(y)
    return keras.models.Model(x, y)


def k2_cnn_first():
    x = L.Input((3, 11, 8), name="img")
    y = L.Conv2D(4, 3, strides=2, padding="same", data_format="channels_first")(x)
    y = L.BatchNormalization(axis=1)(y)
    y = L.Activation("relu")(y)
    y = L.Conv2D(4, (2, 3), padding="same", data_format="channels_first")(y)
    y = L.MaxPooling2D(3, strides=2, padding="same", data_format="channels_first")(y)
    y = L.Conv2D(2, 3, dilation_rate=2, padding="same", data_format="channels_first")(y)
    y = L.Flatten()(y)
    y = L.Dense(4)(y)
    return keras.models.Model(x, y)


def k2_conv1d():
    x = L.Input((12, 3), name="seq")
    y = L.Conv1D(4, 3, padding="causal", dilation_rate=2)(x)
    y = L.Conv1D(4, 4, strides=2, padding="same", activation="relu")(y)
    y = L.MaxPooling1D(2, padding="same")(y)
    y = L.Conv1D(3, 2, padding="valid")(y)
    y = L.GlobalAveragePooling1D()(y)
    return keras.models.Model(x, y)


def k2_conv3d():
    x = L.Input((5, 6, 4, 2), name="vol")
    y = L.Conv3D(3, (3, 2, 3), padding="same")(x)
    y = L.Conv3D(2, 2, strides=2, padding="valid")(y)
    y = L.Flatten()(y)
    return keras.models.Model(x, y)


def k2_sepdw():
    x = L.Input((8, 9, 3), name="img")
    y = L.SeparableConv2D(4, 3, padding="same", depth_multiplier=2)(x)
    y = L.DepthwiseConv2D(3, strides=2, padding="same", depth_multiplier=1)(y)
    y = L.Conv2DTranspose(3, 3, strides=2, padding="same")(y)
    y = L.Conv2DTranspose(2, (3, 2), strides=(1, 2), padding="valid")(y)
    return keras.models.Model(x, y)


def k2_sep1d():
    x = L.Input((10, 3), name="seq")
    y = L.SeparableConv1D(4, 3, padding="same", depth_multiplier=2)(x)
    return keras.models.Model(x, y)


def k2_rnn():
    ids = L.Input((7,), name="ids")
    e = L.Embedding(11, 5)(ids)
    a = L.LSTM(4, return_sequences=True)(e)
    b = L.GRU(3, return_sequences=True)(a)
    c = L.SimpleRNN(3)(b)
    d = L.GRU(2, go_backwards=True)(a)
    y = L.concatenate([c, d])
    return keras.models.Model(ids, y)


def k2_merge():
    a = L.Input((6,), name="a")
    b = L.Input((6,), name="b")
    s = L.add([L.Dense(5)(a), L.Dense(5)(b)])
    m = L.multiply([s, L.Dense(5)(b)])
    c = L.concatenate([m, L.maximum([a, b])])
    y = L.Dense(3, activation="softmax")(L.BatchNormalization()(c))
    return keras.models.Model([a, b], [y, L.average([a, b])])


def k2_convlstm():
    x = L.Input((3, 6, 5, 2), name="frames")
    y = L.ConvLSTM2D(3, (3, 2), padding="same", return_sequences=True)(x)
    y = L.ConvLSTM2D(2, 3, padding="valid")(y)
    return keras.models.Model(x, y)


def k2_sequential():
    m = keras.models.Sequential()
    m.add(L.Conv2D(3, 3, input_shape=(7, 7, 2)))
    m.add(L.Flatten())
    m.add(L.Dense(4))
    return m


K2_MODELS = {n[3:]: f for n, f in list(globals().items()) if n.startswith("k2_")}


# -- Keras 1.2.2 models -------------------------------------------------------------------------

def k1_cnn_th():
    m = keras.models.Sequential()
    m.add(L.Convolution2D(4, 3, 3, border_mode="same", subsample=(2, 2),
                          dim_ordering="th", input_shape=(3, 9, 8)))
    m.add(L.BatchNormalization(axis=1, mode=0))
    m.add(L.Activation("relu"))
    m.add(L.Convolution2D(3, 2, 2, border_mode="same", dim_ordering="th"))
    m.add(L.MaxPooling2D((2, 2), border_mode="same", dim_ordering="th"))
    m.add(L.AtrousConvolution2D(2, 3, 3, atrous_rate=(2, 2), border_mode="same",
                                dim_ordering="th"))
    m.add(L.Flatten())
    m.add(L.Dense(5, activation="softmax"))
    return m


def k1_cnn_tf():
    m = keras.models.Sequential()
    m.add(L.Convolution2D(4, 3, 3, border_mode="valid", dim_ordering="tf",
                          input_shape=(9, 8, 3), activation="relu"))
    m.add(L.AveragePooling2D((2, 2), dim_ordering="tf"))
    m.add(L.Convolution2D(3, 3, 3, border_mode="same", subsample=(2, 2), dim_ordering="tf"))
    m.add(L.ZeroPadding2D((1, 1), dim_ordering="tf"))
    m.add(L.Flatten())
    m.add(L.Dense(4))
    return m


def k1_conv1d():
    m = keras.models.Sequential()
    m.add(L.Convolution1D(4, 3, border_mode="same", input_shape=(10, 3)))
    m.add(L.MaxPooling1D(2))
    m.add(L.Convolution1D(3, 2, subsample_length=2, activation="tanh"))
    m.add(L.Flatten())
    return m


def k1_deconv():
    x = L.Input((2, 5, 5), name="img")
    y = L.Deconvolution2D(3, 3, 3, output_shape=(None, 3, 11, 11), subsample=(2, 2),
                          border_mode="valid", dim_ordering="th")(x)
    return keras.models.Model(x, y)


def k1_merge():
    a = L.Input((6,), name="a")
    b = L.Input((6,), name="b")
    da, db = L.Dense(5)(a), L.Dense(5)(b)
    s = L.merge([da, db], mode="sum")
    m = L.merge([s, da], mode="mul")
    c = L.merge([m, db], mode="concat")
    v = L.merge([a, b], mode="ave")
    x = L.merge([a, b], mode="max")
    y = L.Dense(3)(c)
    return keras.models.Model([a, b], [y, v, x])


def k1_seqmerge():
    left = keras.models.Sequential()
    left.add(L.Dense(4, input_dim=5))
    right = keras.models.Sequential()
    right.add(L.Dense(4, input_dim=3))
    m = keras.models.Sequential()
    m.add(L.Merge([left, right], mode="concat"))
    m.add(L.Dense(2))
    return m


def k1_rnn():
    m = keras.models.Sequential()
    m.add(L.Embedding(11, 5, input_length=7))
    m.add(L.LSTM(4, return_sequences=True))
    m.add(L.GRU(3, return_sequences=True, consume_less="mem"))
    m.add(L.SimpleRNN(3, return_sequences=True))
    m.add(L.LSTM(2, consume_less="gpu", go_backwards=True))
    return m


def k1_gpu_gru():
    m = keras.models.Sequential()
    m.add(L.GRU(3, consume_less="gpu", input_shape=(5, 4)))
    return m


def k1_dense_misc():
    m = keras.models.Sequential()
    m.add(L.Dense(6, input_dim=4, W_regularizer=keras.regularizers.l2(0.01)))
    m.add(L.BatchNormalization(mode=0))
    m.add(L.MaxoutDense(5, nb_feature=3))
    m.add(L.Highway(activation="tanh"))
    m.add(L.Dropout(0.5))
    m.add(L.Dense(3, activation="sigmoid"))
    return m


K1_MODELS = {n[3:]: f for n, f in list(globals().items()) if n.startswith("k1_")}


def build(name, out_dir, seed=0):
    model = (K1_MODELS if K1 else K2_MODELS)[name]()
    randomize(model, seed)
    rng = np.random.RandomState(seed + 1)
    feeds = {}
    xs = []
    inner = model
    if K1 and isinstance(model, keras.models.Sequential):
        model.build()
        inner = model.model
    for lname, t in zip(inner.input_names, inner.inputs):
        shape = [2 if d is None else int(d) for d in keras.backend.int_shape(t)]
        if lname == "ids" or "embedding" in lname:
            v = rng.randint(0, 11, size=shape).astype("int32")
        else:
            v = rng.standard_normal(shape).astype("float32")
        feeds[lname] = v
        xs.append(v)
    out = model.predict(xs if len(xs) > 1 else xs[0], batch_size=2)
    outs = out if isinstance(out, list) else [out]
    path = os.path.join(out_dir, name + ".h5")
    model.save(path)
    arrays = dict(feeds)
    arrays.update({f"out:{i}": np.asarray(o) for i, o in enumerate(outs)})
    np.savez(os.path.join(out_dir, name + ".npz"), **arrays)
    return path


def main(argv):
    out_dir = argv[0]
    names = argv[1:] or list(K1_MODELS if K1 else K2_MODELS)
    for n in names:
        build(n, out_dir)
        print("built", n)


if __name__ == "__main__":
    main(sys.argv[1:])
