"""Oracle helpers shared by the tests: run converted models and compare with references."""

from __future__ import annotations

import numpy as np


def run_onnx(path, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Run an ONNX file in onnxruntime (CPU) and return outputs by name."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, feeds)))


def assert_close(got, want, rtol: float = 1e-3, atol: float = 1e-4, name: str = "") -> None:
    got = np.asarray(got)
    want = np.asarray(want)
    assert got.shape == want.shape, f"{name}: shape {got.shape} != reference {want.shape}"
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol, err_msg=name)
