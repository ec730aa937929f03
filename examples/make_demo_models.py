"""Build the demo's source models, with seeded weights: a small Keras CNN saved as a Keras 2
`.h5` (by tf_keras) and a small Caffe net (prototxt + caffemodel).

Usage: python examples/make_demo_models.py OUT_DIR
"""

from __future__ import annotations

import os
import sys

import numpy as np

CAFFE_NET = """name: "demo_lenet"
input: "data"
input_shape { dim: 1 dim: 1 dim: 28 dim: 28 }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
        convolution_param { num_output: 8 kernel_size: 5 } }
layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1"
        pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "relu1" type: "ReLU" bottom: "pool1" top: "pool1" }
layer { name: "conv2" type: "Convolution" bottom: "pool1" top: "conv2"
        convolution_param { num_output: 16 kernel_size: 5 } }
layer { name: "pool2" type: "Pooling" bottom: "conv2" top: "pool2"
        pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "ip1" type: "InnerProduct" bottom: "pool2" top: "ip1"
        inner_product_param { num_output: 10 } }
layer { name: "prob" type: "Softmax" bottom: "ip1" top: "prob" }
"""


def keras_cnn(path: str) -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tf_keras as keras

    L = keras.layers
    x = keras.Input((32, 32, 3), name="image")
    y = L.Conv2D(16, 3, padding="same", name="conv1")(x)
    y = L.BatchNormalization(name="bn1")(y)
    y = L.ReLU(name="relu1")(y)
    y = L.MaxPooling2D(name="pool1")(y)
    y = L.DepthwiseConv2D(3, padding="same", activation="relu", name="dw")(y)
    y = L.GlobalAveragePooling2D(name="gap")(y)
    y = L.Dense(10, activation="softmax", name="probs")(y)
    model = keras.Model(x, y, name="demo_cnn")
    rng = np.random.default_rng(7)
    for w in model.weights:
        shape = tuple(w.shape)
        value = rng.uniform(0.5, 1.5, shape) if "variance" in w.name else \
            rng.normal(0.0, 0.3, shape)
        w.assign(value.astype(np.float32))
    model.save(path)


def caffe_net(prototxt: str, caffemodel: str) -> None:
    # The caffemodel writer lives with the tests (it is not part of the installed package).
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from tests.oracles.caffe_write import random_caffemodel

    with open(prototxt, "w") as f:
        f.write(CAFFE_NET)
    random_caffemodel(prototxt, caffemodel, seed=3)


if __name__ == "__main__":
    out = sys.argv[1] if len(sys.argv) > 1 else "examples/out"
    os.makedirs(out, exist_ok=True)
    keras_cnn(os.path.join(out, "demo_cnn.h5"))
    caffe_net(os.path.join(out, "demo_lenet.prototxt"), os.path.join(out, "demo_lenet.caffemodel"))
    print(f"wrote {out}/demo_cnn.h5, {out}/demo_lenet.prototxt, {out}/demo_lenet.caffemodel")
