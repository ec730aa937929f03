"""The real third-party graphs in ../shared/corpus/tf (read from there, never copied): each
converts where TensorFlow cannot be imported (see conftest) and matches TensorFlow on seeded
inputs; the OpenCV face detector is also compared with OpenCV DNN, the reader it was made
for."""

from __future__ import annotations

import numpy as np
import pytest

from tests.importers.tensorflow.conftest import CORPUS, corpus_dir
from tests.oracles import assert_close, run_onnx

CORPUS_DIR = corpus_dir()


def _need(name: str):
    path = CORPUS_DIR / name
    if not path.is_file():
        pytest.fail(f"corpus file missing: {path} (set MODELPORT_CORPUS)")
    return path


def tf_run(tf, path, feeds: dict, fetches: list[str]) -> list[np.ndarray]:
    graph_def = tf.compat.v1.GraphDef()
    graph_def.ParseFromString(path.read_bytes())
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.import_graph_def(graph_def, name="")
    with tf.compat.v1.Session(graph=graph) as sess:
        return sess.run([f if ":" in f else f + ":0" for f in fetches],
                        {k + ":0": v for k, v in feeds.items()})


# name -> (extra fixed feeds, outputs)
TF_CHECKED = {
    "tf2onnx_ae0_frozen.pb": ({}, ["output"]),
    "tf2onnx_fc-layers_frozen.pb": ({}, ["output"]),
    # keep_prob = 1: the dropout's random mask is then all ones in both.
    "tf2onnx_gru_frozen.pb": ({"keep_prob": np.ones([1], np.float32)}, ["output"]),
    "tf2onnx_lstm_frozen.pb": ({"keep_prob": np.ones([1], np.float32)}, ["output"]),
    "tf2onnx_regression_graphdef_frozen.pb": ({}, ["pred"]),
}


@pytest.mark.parametrize("name", sorted(TF_CHECKED))
def test_corpus_graph_matches_tensorflow(tf, built, name):
    path = _need(name)
    assert built["results"][name] == "ok", built["results"][name]
    fixed, outputs = TF_CHECKED[name]
    rng = np.random.default_rng(7)
    shapes = {k.removesuffix(":0"): v for k, v in CORPUS[name]["input_shapes"].items()}
    feeds = {k: fixed.get(k, rng.standard_normal(v).astype(np.float32))
             for k, v in shapes.items()}
    got = run_onnx(built["folder"] / f"{name}.onnx", feeds)
    want = tf_run(tf, path, feeds, outputs)
    assert sorted(got) == sorted(outputs)
    for out, w in zip(outputs, want):
        assert_close(got[out], w, name=f"{name}:{out}")


FACE = "opencv_face_detector_uint8.pb"
FACE_OUTPUTS = ["mbox_loc", "mbox_conf_flatten"]


def test_face_detector_matches_opencv(built):
    """103 uint8 weights dequantized (MIN_FIRST): the SSD heads agree with OpenCV DNN."""
    import cv2
    pb = _need(FACE)
    assert built["results"][FACE] == "ok", built["results"][FACE]
    x = np.random.default_rng(3).uniform(-1, 1, (1, 300, 300, 3)).astype(np.float32)
    got = run_onnx(built["folder"] / f"{FACE}.onnx", {"data": x})
    assert sorted(got) == sorted(FACE_OUTPUTS)
    net = cv2.dnn.readNetFromTensorflow(str(pb), str(CORPUS_DIR / "opencv_face_detector.pbtxt"))
    net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
    net.setInput(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
    for name, want in zip(FACE_OUTPUTS, net.forward(FACE_OUTPUTS)):
        assert_close(got[name], np.asarray(want).reshape(got[name].shape), name=name)


def test_face_detector_dequantize_matches_tensorflow(tf, tmp_path):
    """Every Dequantize node against TensorFlow's own values. Where a weight's range is tiny
    (the BatchNorm offsets: min 0, max FLT_MIN), the quantization step is a float32 denormal
    that TensorFlow's CPU kernel flushes to zero and then divides by: NaN. modelport computes
    the step in double precision, as TF's formula is written (OpenCV agrees): those values,
    and only those, are NaN in TensorFlow, and modelport's stay inside [min, max]."""
    from modelport.convert.pipeline import convert
    from modelport.importers.registry import LoadOptions
    from modelport.importers.tensorflow.source import read_source
    from modelport.importers.tensorflow.tensors import to_array

    pb = _need(FACE)
    source = read_source(str(pb), LoadOptions())
    names = sorted(n for n, nd in source.nodes.items() if nd.op == "Dequantize")
    assert len(names) == 103
    out = tmp_path / "dq.onnx"
    convert(pb, out, options=LoadOptions(outputs=names), level=0)  # constants: no inputs
    got = run_onnx(out, {})
    want = tf_run(tf, pb, {}, names)
    empty = 0
    for name, w in zip(names, want):
        nd = source.nodes[name]
        lo, hi = (to_array(source.nodes[r.split(":")[0]].attr["value"].tensor).item()
                  for r in nd.input[1:3])
        if np.isnan(w).any():
            assert (hi - lo) / 255 < np.finfo(np.float32).tiny, name
            assert np.all((got[name] >= lo) & (got[name] <= hi)), name
            empty += 1
        else:
            assert_close(got[name], w, rtol=1e-6, atol=1e-6, name=name)
    assert 0 < empty < len(names)


def test_face_detector_pbtxt_names_missing_weights(tmp_path):
    """The OpenCV graph config is a text GraphDef without weights: one clear line, exit 2."""
    import subprocess
    import sys

    pbtxt = _need("opencv_face_detector.pbtxt")
    r = subprocess.run([sys.executable, "-m", "modelport", "convert", str(pbtxt), "-o",
                        str(tmp_path / "x.onnx")], capture_output=True, text=True, timeout=300)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert "does not define" in lines[0] and "without its weights" in lines[0]
    assert "conv1_bn_h/beta" in lines[0] and "opencv_face_detector.pbtxt" in lines[0]
    assert not (tmp_path / "x.onnx").exists()
