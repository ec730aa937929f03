"""Build the demo model: a small seeded CNN in ONNX (Pad, Conv, BatchNorm, Relu, pooling, Gemm).

Usage: python examples/make_sample.py OUT.onnx
"""

from __future__ import annotations

import os
import sys

import numpy as np
import onnx
from onnx import helper, numpy_helper


def build() -> onnx.ModelProto:
    rng = np.random.default_rng(1234)

    def w(name, *shape, positive=False):
        a = rng.standard_normal(shape).astype(np.float32) * 0.1
        if positive:
            a = np.abs(a) + 0.5
        return numpy_helper.from_array(a, name)

    inits = [
        w("conv1.w", 16, 3, 3, 3), w("bn1.scale", 16, positive=True), w("bn1.bias", 16),
        w("bn1.mean", 16), w("bn1.var", 16, positive=True),
        w("conv2.w", 32, 16, 3, 3), w("conv2.b", 32),
        w("fc.w", 10, 32), w("fc.b", 10),
        numpy_helper.from_array(np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64), "pads"),
    ]
    nodes = [
        helper.make_node("Pad", ["image", "pads"], ["padded"], name="pad1"),
        helper.make_node("Conv", ["padded", "conv1.w"], ["c1"], name="conv1"),
        helper.make_node("BatchNormalization",
                         ["c1", "bn1.scale", "bn1.bias", "bn1.mean", "bn1.var"], ["b1"],
                         name="bn1"),
        helper.make_node("Relu", ["b1"], ["r1"], name="relu1"),
        helper.make_node("MaxPool", ["r1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2],
                         name="pool1"),
        helper.make_node("Conv", ["p1", "conv2.w", "conv2.b"], ["c2"], pads=[1, 1, 1, 1],
                         name="conv2"),
        helper.make_node("Identity", ["c2"], ["c2_copy"], name="copy"),
        helper.make_node("Relu", ["c2_copy"], ["r2"], name="relu2"),
        helper.make_node("GlobalAveragePool", ["r2"], ["gap"], name="gap"),
        helper.make_node("Flatten", ["gap"], ["flat"], name="flatten"),
        helper.make_node("Gemm", ["flat", "fc.w", "fc.b"], ["logits"], transB=1, name="fc"),
        helper.make_node("Softmax", ["logits"], ["probs"], axis=-1, name="softmax"),
    ]
    graph = helper.make_graph(
        nodes, "sample_cnn",
        [helper.make_tensor_value_info("image", onnx.TensorProto.FLOAT, ["batch", 3, 32, 32])],
        [helper.make_tensor_value_info("probs", onnx.TensorProto.FLOAT, ["batch", 10])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                              producer_name="modelport-example")
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model


if __name__ == "__main__":
    out = sys.argv[1] if len(sys.argv) > 1 else "examples/out/sample.onnx"
    os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
    onnx.save(build(), out)
    print(f"wrote {out}")
