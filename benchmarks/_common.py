"""Helpers shared by the benchmark scripts."""

from __future__ import annotations

import compileall
import statistics
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# The peers (tf2onnx, onnxslim, onnxsim) live in their own environment (docs/benchmarks.md).
BENCH_PY = ROOT / ".venv-bench" / "bin" / "python"

# How the TensorFlow benchmarks' model-building child scripts start: quiet TensorFlow, Keras 3
# on TensorFlow, seeded; the output path is the first argument.
TF_SCRIPT_HEAD = """
import os, sys
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
os.environ["KERAS_BACKEND"] = "tensorflow"
import numpy as np, tensorflow as tf, keras
from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2
out = sys.argv[1]
keras.utils.set_random_seed(0)
"""


def precompile_modelport() -> None:
    """Write modelport's bytecode before timing it.

    A wheel install compiles a package's bytecode when it installs, and the peers' packages
    were installed that way; the editable install of this checkout is not. Where
    ``PYTHONDONTWRITEBYTECODE`` is set, every timed run would otherwise compile modelport's
    sources again (about 0.07 s), a cost no installed copy pays.
    """
    compileall.compile_dir(str(ROOT / "modelport"), quiet=1)


def median_run(samples: list[tuple[float, int]]) -> tuple[float, int]:
    """(median wall seconds, median peak RSS) of several measured runs."""
    return (statistics.median(s[0] for s in samples),
            int(statistics.median(s[1] for s in samples)))
