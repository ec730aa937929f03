"""Helpers for the Torch7 tests: write a net with t7writer, convert it with modelport, and
compare onnxruntime with OpenCV DNN (``readNetFromTorch``, an independent reader) or with a
NumPy definition of the modules OpenCV lacks."""

from __future__ import annotations

import numpy as np

from modelport.convert.pipeline import convert
from modelport.importers.registry import LoadOptions
from tests.importers.torch7 import t7writer
from tests.oracles import assert_close, run_onnx

RTOL, ATOL = 1e-3, 1e-4


def make_input(shape, seed: int = 1, positive: bool = False) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    return np.abs(x) + 0.1 if positive else x


def convert_net(tmp_path, net, shape, *, name="net", ascii=False, long_size=8, level=1):
    """Write ``net`` as a .t7 file and convert it; returns (t7 path, onnx path)."""
    t7 = tmp_path / f"{name}.t7"
    t7writer.save(t7, net, ascii=ascii, long_size=long_size)
    out = tmp_path / f"{name}.onnx"
    convert(t7, out, options=LoadOptions(input_shapes={"input": list(shape)}), level=level,
            force=True)
    return t7, out


def opencv_forward(t7, x: np.ndarray, binary: bool = True) -> np.ndarray:
    import cv2

    net = cv2.dnn.readNetFromTorch(str(t7), binary)
    net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
    net.setInput(x)
    return np.asarray(net.forward())


def check_opencv(tmp_path, net, shape, *, seed=1, positive=False, name="net", rtol=RTOL,
                 atol=ATOL, **kwargs):
    """Convert ``net``; assert onnxruntime == OpenCV DNN on a seeded input. Returns output."""
    t7, out = convert_net(tmp_path, net, shape, name=name, **kwargs)
    x = make_input(shape, seed, positive)
    got = run_onnx(out, {"input": x})["output"]
    want = opencv_forward(t7, x, binary=not kwargs.get("ascii", False))
    assert_close(got, want.reshape(want.shape), rtol=rtol, atol=atol, name=name)
    return got


def check_numpy(tmp_path, net, shape, fn, *, seed=1, positive=False, name="net"):
    """Convert ``net``; assert onnxruntime == ``fn(x)`` (a NumPy definition)."""
    _, out = convert_net(tmp_path, net, shape, name=name)
    x = make_input(shape, seed, positive)
    got = run_onnx(out, {"input": x})
    want = fn(x)
    if isinstance(want, (list, tuple)):
        for i, w in enumerate(want):
            key = "output" if i == 0 else f"output_{i + 1}"
            assert_close(got[key], w, rtol=RTOL, atol=ATOL, name=key)
    else:
        assert_close(got["output"], want, rtol=RTOL, atol=ATOL, name=name)
    return got
