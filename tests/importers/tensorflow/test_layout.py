"""The layout acceptance of the TensorFlow importer: a frozen channels-last Keras CNN
(Conv/BatchNorm/ReLU/pooling/Add/Concat) converted at the default -O1 keeps at most one
Transpose, at the graph input, and none with ``nchw_inputs``; both still match TensorFlow
(rtol=1e-3, atol=1e-4). Converted where TensorFlow cannot be imported."""

from __future__ import annotations

import numpy as np

from tests.importers.tensorflow.conftest import convert_without_tensorflow
from tests.oracles import assert_close, run_onnx


def _transposes(path) -> list[tuple[str, str]]:
    """(Transpose node, what it reads: 'input' or the producing op) for each Transpose."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    producer = {out: node.op_type for node in graph.node for out in node.output}
    inputs = {i.name for i in graph.input}
    return [(n.name, "input" if n.input[0] in inputs else producer.get(n.input[0], "?"))
            for n in graph.node if n.op_type == "Transpose"]


def test_frozen_cnn_keeps_one_transpose_at_the_input(tf, tmp_path):
    import keras

    from tests.importers.tensorflow import models as M

    model = M.plain_cnn(keras)
    M.randomize(model, 3)
    feeds = M.rng_inputs(13, (2, 24, 24, 3))
    case = M.keras_frozen("plain_cnn", model, feeds, tmp_path)
    jobs = [{"name": "nhwc", "src": case.src, "out": str(tmp_path / "nhwc.onnx"), "options": {}},
            {"name": "nchw", "src": case.src, "out": str(tmp_path / "nchw.onnx"),
             "options": {"nchw_inputs": True}}]
    results = convert_without_tensorflow(jobs, tmp_path)
    assert results == {"nhwc": "ok", "nchw": "ok"}, results

    nhwc = _transposes(tmp_path / "nhwc.onnx")
    assert len(nhwc) <= 1 and all(src == "input" for _, src in nhwc), nhwc
    assert _transposes(tmp_path / "nchw.onnx") == []

    (name, x), = case.feeds.items()
    (key, want), = case.expected.items()
    got = run_onnx(tmp_path / "nhwc.onnx", {name: x})
    assert_close(got[key], want, case.rtol, case.atol, name="nhwc")
    got = run_onnx(tmp_path / "nchw.onnx", {name: np.ascontiguousarray(x.transpose(0, 3, 1, 2))})
    assert_close(got[key], want, case.rtol, case.atol, name="nchw")
