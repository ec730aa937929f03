"""Write the valid, small model files that the fuzz tests mutate (one per parser).

Run as ``python -m tests.fuzz.seeds OUTDIR [keras] [caffe] [onnx] [torch]`` (a separate
process: Keras and torch are imported here, never in the test process that forks cases).
Everything is seeded; each file converts cleanly before it is mutated.
"""

from __future__ import annotations

import os
import sys

import numpy as np


def keras_seeds(out: str) -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import keras

    keras.utils.set_random_seed(3)
    i = keras.Input((8, 8, 3), name="x")
    h = keras.layers.Conv2D(4, 3, padding="same", name="conv")(i)
    h = keras.layers.BatchNormalization(name="bn")(h)
    h = keras.layers.ReLU(name="relu")(h)
    h = keras.layers.MaxPooling2D(2, name="pool")(h)
    h = keras.layers.Flatten(name="flat")(h)
    h = keras.layers.Dense(5, activation="softmax", name="fc")(h)
    model = keras.Model(i, h, name="seed")
    model.save(os.path.join(out, "seed.h5"))
    model.save(os.path.join(out, "seed.keras"))

    import tf_keras

    tf_keras.utils.set_random_seed(4)
    m2 = tf_keras.Sequential([
        tf_keras.layers.InputLayer((6,), name="x"),
        tf_keras.layers.Dense(4, activation="relu", name="d1"),
        tf_keras.layers.Dense(3, name="d2"),
    ], name="seed2")
    m2.save(os.path.join(out, "seed_k2.h5"))


CAFFE_NET = """name: "seed"
input: "data"
input_shape { dim: 1 dim: 3 dim: 8 dim: 8 }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
  convolution_param { num_output: 4 kernel_size: 3 pad: 1 } }
layer { name: "bn" type: "BatchNorm" bottom: "conv" top: "conv" }
layer { name: "scale" type: "Scale" bottom: "conv" top: "conv" scale_param { bias_term: true } }
layer { name: "relu" type: "ReLU" bottom: "conv" top: "conv" }
layer { name: "pool" type: "Pooling" bottom: "conv" top: "pool"
  pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "fc" type: "InnerProduct" bottom: "pool" top: "fc"
  inner_product_param { num_output: 5 } }
layer { name: "prob" type: "Softmax" bottom: "fc" top: "prob" }
"""


def caffe_seeds(out: str) -> None:
    from tests.oracles.caffe_write import random_caffemodel

    proto = os.path.join(out, "seed.prototxt")
    with open(proto, "w") as f:
        f.write(CAFFE_NET)
    random_caffemodel(proto, os.path.join(out, "seed.caffemodel"), seed=5)


def onnx_seeds(out: str) -> None:
    import onnx

    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    sys.path.insert(0, os.path.join(root, "examples"))
    import make_sample

    onnx.save(make_sample.build(), os.path.join(out, "seed.onnx"))


def torch_seeds(out: str) -> None:
    import torch

    torch.manual_seed(6)

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)
            self.fc = torch.nn.Linear(4, 5)

        def forward(self, x):
            return self.fc(torch.relu(self.conv(x)).mean(dim=(2, 3)))

    net = Net().eval()
    x = torch.randn(1, 3, 8, 8)
    torch.export.save(torch.export.export(net, (x,)), os.path.join(out, "seed.pt2"))
    torch.jit.save(torch.jit.trace(net, x), os.path.join(out, "seed_script.pt"))
    torch.save(net.state_dict(), os.path.join(out, "seed_state.pt"))


def tensorflow_seeds(out: str) -> None:
    """A frozen GraphDef (binary and text) and a SavedModel with its variables bundle."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf
    from google.protobuf import text_format
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )

    rng = np.random.default_rng(7)

    class Net(tf.Module):
        def __init__(self) -> None:
            self.k = tf.Variable(rng.standard_normal((3, 3, 3, 4)).astype(np.float32))
            self.w = tf.Variable(rng.standard_normal((4, 5)).astype(np.float32))
            self.b = tf.Variable(rng.standard_normal(5).astype(np.float32))

        @tf.function(input_signature=[tf.TensorSpec([1, 8, 8, 3], tf.float32, name="x")])
        def __call__(self, x):
            h = tf.nn.relu(tf.nn.conv2d(x, self.k, 1, "SAME"))
            h = tf.reduce_mean(h, axis=[1, 2])
            return {"y": tf.nn.softmax(tf.matmul(h, self.w) + self.b)}

    net = Net()
    frozen = convert_variables_to_constants_v2(net.__call__.get_concrete_function())
    graph_def = frozen.graph.as_graph_def()
    with open(os.path.join(out, "seed_tf.pb"), "wb") as f:
        f.write(graph_def.SerializeToString())
    with open(os.path.join(out, "seed_tf.pbtxt"), "w") as f:
        f.write(text_format.MessageToString(graph_def))
    tf.saved_model.save(net, os.path.join(out, "seed_sm"), signatures=net.__call__)


def copied_seeds(out: str) -> None:
    """Files that only the real frameworks write (MXNet 1.9, Keras 1): the committed fixtures
    that tests/fixtures/*/regen.sh made with them."""
    import shutil

    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    fixtures = os.path.join(root, "tests", "fixtures")
    for name in ("conv2d-symbol.json", "conv2d-0000.params"):
        shutil.copy(os.path.join(fixtures, "mxnet", name), os.path.join(out, name))
    shutil.copy(os.path.join(fixtures, "theano", "k1_cnn_th.h5"), os.path.join(out, "seed_k1.h5"))


def torch7_seeds(out: str) -> None:
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    sys.path.insert(0, root)
    from tests.importers.torch7 import t7writer as w

    r = np.random.default_rng(8)
    net = w.sequential(
        w.conv(r, 3, 4, 3, pad=1), w.batchnorm(r, 4),
        w.module("nn.ReLU", threshold=0, val=0, inplace=False),
        w.module("nn.SpatialMaxPooling", kW=2, kH=2, dW=2, dH=2, padW=0, padH=0,
                 ceil_mode=False),
        w.module("nn.View", size=w.longs([64]), numElements=64, numInputDims=3),
        w.linear(r, 64, 5), w.module("nn.SoftMax"))
    w.save(os.path.join(out, "seed.t7"), net)


SEEDS = {"keras": keras_seeds, "caffe": caffe_seeds, "onnx": onnx_seeds, "torch": torch_seeds,
         "tensorflow": tensorflow_seeds, "copied": copied_seeds, "torch7": torch7_seeds}


def main() -> None:
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    np.random.seed(0)
    for kind in sys.argv[2:] or list(SEEDS):
        SEEDS[kind](out)


if __name__ == "__main__":
    main()
