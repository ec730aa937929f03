"""Helpers for the Keras-on-Theano tests: the Theano environments, models built in them, and
conversion in a child process where TensorFlow (and every Keras) cannot be imported."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from modelport.convert.runners import theano_env
from tests.oracles import assert_close, run_onnx

RTOL, ATOL = 1e-3, 1e-4
HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "theano"
BUILDER = HERE / "theano_models.py"
# Set to 1 on a machine that cannot reach PyPI: the live Theano tests are then skipped (with
# this reason) and only the committed fixtures are compared. Never set in CI.
OFFLINE_VAR = "MODELPORT_SKIP_THEANO_ENVS"


@contextlib.contextmanager
def _lock(name: str):
    import tempfile

    key = hashlib.sha256(str(ROOT).encode()).hexdigest()[:8]
    path = Path(tempfile.gettempdir()) / f"modelport-theano-{key}-{name}.lock"
    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def env_python(which: str) -> Path:
    """The Theano environment's interpreter, created on first use (once across xdist workers)."""
    py = theano_env.env_python(which)
    if py is not None:
        return py
    if os.environ.get(OFFLINE_VAR) == "1":
        pytest.skip(f"{OFFLINE_VAR}=1: the Theano environments are not created on this machine")
    with _lock(f"env-{which}"):
        try:
            return theano_env.create(which)
        except Exception as exc:  # no silent skip: a failed set-up fails the tests
            pytest.fail(f"cannot create the Theano environment {which}: {exc} (set "
                        f"{OFFLINE_VAR}=1 on a machine without PyPI access)")


def run_in_env(which: str, args: list[str], timeout: int = 1800) -> str:
    py = env_python(which)
    r = subprocess.run([str(py), *args], env=theano_env.theano_environ(py.parent.parent),
                       capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0:
        raise AssertionError(f"Keras on Theano ({which}) failed:\n{r.stderr[-3000:]}")
    return r.stdout


def built_models(which: str) -> Path:
    """Every model of theano_models.py for this Keras version, built on Theano once (cached in
    the environment, keyed by the builder's content)."""
    py = env_python(which)
    digest = hashlib.sha256(BUILDER.read_bytes()).hexdigest()[:12]
    out = py.parent.parent / f"models-{digest}"
    done = out / ".complete"
    if done.is_file():
        return out
    with _lock(f"models-{which}"):
        if not done.is_file():
            out.mkdir(parents=True, exist_ok=True)
            run_in_env(which, [str(BUILDER), str(out)])
            done.write_text("ok")
    return out


_BLOCKED_CHILD = r"""
import json, sys
for name in ("tensorflow", "tf_keras", "keras", "theano"):
    sys.modules[name] = None  # any import of them now raises ImportError
from modelport.convert.pipeline import convert
from modelport.importers.registry import LoadOptions
job = json.loads(sys.argv[1])
result = {}
for src, dst, extra, weights in job["pairs"]:
    try:
        convert(src, dst, force=True, options=LoadOptions(extra=extra, weights=weights))
        result[src] = None
    except Exception as exc:
        result[src] = f"{type(exc).__name__}: {exc}"
print(json.dumps(result))
"""


def convert_blocked(sources: list[Path], out_dir: Path, extra=None, weights=None
                    ) -> dict[str, Path | str]:
    """Convert ``sources`` in one child process in which TensorFlow, tf_keras, Keras and Theano
    cannot be imported: source -> ONNX path, or the error text. ``extra`` (LoadOptions.extra)
    is one dict for all, or a function of the source path; ``weights`` maps a source to its
    weights file."""
    def extra_for(s: Path) -> dict:
        return (extra(s) if callable(extra) else extra) or {}

    weights = weights or {}
    pairs = [(str(s), str(out_dir / (s.stem + ".onnx")), extra_for(s),
              str(weights[s]) if s in weights else None) for s in sources]
    job = json.dumps({"pairs": pairs})
    r = subprocess.run([sys.executable, "-c", _BLOCKED_CHILD, job], capture_output=True,
                       text=True, cwd=ROOT, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    errors = json.loads(r.stdout.strip().splitlines()[-1])
    return {src: (Path(dst) if errors[src] is None else errors[src]) for src, dst, _, _ in pairs}


def compare_with_theano(onnx_path: Path, npz: Path) -> None:
    """ONNX outputs (in order) against the outputs Theano computed, at rtol=1e-3, atol=1e-4."""
    with np.load(npz) as z:
        feeds = {k: z[k] for k in z.files if not k.startswith("out:")}
        want = [z[f"out:{i}"] for i in range(sum(k.startswith("out:") for k in z.files))]
    feeds = _by_position(onnx_path, feeds)
    got = list(run_onnx(onnx_path, feeds).values())
    assert len(got) == len(want), f"{len(got)} outputs, Theano gave {len(want)}"
    for i, (g, w) in enumerate(zip(got, want)):
        assert_close(g, w, RTOL, ATOL, f"{onnx_path.stem} output {i}")


def _by_position(onnx_path: Path, feeds: dict) -> dict:
    """Feeds keyed by the ONNX input names: by name, else in order (Keras 1 Sequential models
    name their implicit input differently from one version to the next)."""
    import onnx
    from onnx.helper import tensor_dtype_to_np_dtype

    graph = onnx.load(str(onnx_path), load_external_data=False).graph
    names = [i.name for i in graph.input]
    types = {i.name: tensor_dtype_to_np_dtype(i.type.tensor_type.elem_type) for i in graph.input}
    if set(names) != set(feeds):
        assert len(names) == len(feeds), f"inputs {names} vs saved {list(feeds)}"
        feeds = dict(zip(names, feeds.values()))
    # Integer ids fed to a float Input (Keras 2 on Theano casts them in Embedding).
    return {k: v.astype(types[k]) for k, v in feeds.items()}
