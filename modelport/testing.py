"""Assertions for users' own test suites, in the style of ``numpy.testing``::

    from modelport.testing import assert_equivalent

    def test_exported_model_matches():
        assert_equivalent("model.h5", "model.onnx", rtol=1e-3, atol=1e-4, per_layer=True)

pytest then gives JUnit output (``--junitxml``), sharding (pytest-xdist) and selection.
"""

from __future__ import annotations

import os
from typing import Any

__all__ = ["assert_equivalent"]


def assert_equivalent(source: str | os.PathLike, converted: str | os.PathLike, *,
                      rtol: float | None = None, atol: float | None = None,
                      per_layer: bool = False, inputs: Any = None, seed: int = 0,
                      format: str | None = None, **options: Any):
    """Raise ``AssertionError`` unless ``converted`` (ONNX) computes what ``source`` computes.

    The message is the verification report's table (with ``per_layer=True`` it names the
    first diverging layer and lists the layers not compared). ``options`` are the fields of
    ``modelport.importers.registry.LoadOptions`` (``weights``, ``input_shapes``...).
    Returns the report when the models agree.
    """
    from modelport.convert.api import verify

    report = verify(source, converted, format=format, rtol=rtol, atol=atol, inputs=inputs,
                    seed=seed, per_layer=per_layer, **options)
    if not report.passed:
        raise AssertionError(f"{os.fspath(converted)} is not equivalent to "
                             f"{os.fspath(source)}:\n{report.table()}")
    return report
