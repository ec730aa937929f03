"""Shared by the MXNet tests: convert a model written by real MXNet (tests/oracles/
mxnet_build.py) and compare onnxruntime's outputs with the ones MXNet computed."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np

from modelport.convert.pipeline import convert
from modelport.convert.verify import compare
from modelport.importers.registry import LoadOptions

ROOT = Path(__file__).resolve().parents[3]
BUILD = ROOT / "tests" / "oracles" / "mxnet_build.py"
FIXTURES = ROOT / "tests" / "fixtures" / "mxnet"
RTOL, ATOL = 1e-3, 1e-4


def build_models(python: str, out_dir: Path, *specs: str, timeout: int = 900) -> None:
    proc = subprocess.run([python, str(BUILD), str(out_dir), *specs], capture_output=True,
                          text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]


def io_arrays(prefix: Path) -> tuple[dict[str, np.ndarray], list[np.ndarray]]:
    with np.load(f"{prefix}-io.npz") as data:
        inputs = {k[3:]: data[k] for k in data.files if k.startswith("in:")}
        outs = sorted((int(k[4:]), data[k]) for k in data.files if k.startswith("out:"))
    return inputs, [v for _, v in outs]


def convert_and_compare(prefix: Path, tmp_path: Path, level: int = 1) -> list[str]:
    """Convert PREFIX-symbol.json and compare every head with MXNet's; returns failures."""
    import onnxruntime as ort

    inputs, want = io_arrays(prefix)
    shapes = {k: list(v.shape) for k, v in inputs.items()}
    out = tmp_path / f"{prefix.name}.onnx"
    convert(f"{prefix}-symbol.json", out, options=LoadOptions(input_shapes=shapes), level=level,
            force=True)
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    feeds = {i.name: inputs[i.name].astype(np.float32) for i in sess.get_inputs()}
    got = sess.run(None, feeds)
    names = [o.name for o in sess.get_outputs()]
    assert len(got) == len(want), f"{len(got)} outputs, MXNet has {len(want)}"
    failures = []
    for name, g, w in zip(names, got, want):
        c = compare(name, g, w, RTOL, ATOL)
        if not c.passed or list(np.shape(g)) != list(np.shape(w)):
            failures.append(f"{name}: shape {list(np.shape(g))} vs {list(np.shape(w))}, "
                            f"max abs {c.max_abs:.3g} {c.note}")
    return failures


def env_python() -> str | None:
    return os.environ.get("MODELPORT_MXNET_PYTHON")
