"""Reference for Keras files saved by the Theano backend: real Keras on real Theano.

tf_keras and Keras 3 ignore a file's ``backend`` attribute, so they run a Theano file's
(flipped) convolution kernels as if TensorFlow had written them and compute something else.
Such files are verified against Keras 1.2.2 or 2.2.4 on Theano 1.0.5, run in a child process
with the interpreter of their own environment (``make theano-env``; see theano_env.py). Where
that environment does not exist, the reference says it cannot judge the file: the report is
not a PASS.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from modelport.convert.runners import theano_env
from modelport.errors import ModelportError

CHILD = Path(__file__).with_name("theano_child.py")
TIMEOUT_S = 900


def file_facts(path: str, options: Any) -> tuple[str, str, str, list[str], list[str]]:
    """(keras_version, backend, how the backend was decided, input names, output names)."""
    from modelport.importers.keras.load import input_names, output_names
    from modelport.importers.keras.model import open_keras, parse_model
    from modelport.importers.keras.theano import backend_of

    weights = getattr(options, "weights", None)
    extra = getattr(options, "extra", None) or {}
    kf = open_keras(path, weights)
    try:
        config = kf.config
        from modelport.importers.keras import keras1

        if keras1.is_keras1(kf.keras_version, config):
            config = keras1.normalize_config(config)
        spec = parse_model(config)
        backend, how = backend_of(kf.backend, kf.keras_version, kf.config,
                                  extra.get("keras_backend"))
        return kf.keras_version, backend, how, input_names(spec), output_names(spec)
    finally:
        for h in kf.handles:
            h.close()


class CannotJudge:
    """A reference that knows it cannot reproduce the file's semantics: the report says why."""

    def __init__(self, reason: str, outputs: list[str]) -> None:
        self.name = "no reference able to judge this file"
        self.cannot_judge = reason
        self.outputs = outputs

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {}  # nothing to compare with; the report carries ``cannot_judge``


class TheanoReference:
    def __init__(self, path: str, options: Any, which: str, python: Path,
                 inputs: list[str], outputs: list[str]) -> None:
        self.path = path
        self.weights = getattr(options, "weights", None)
        self.python = python
        self.env = python.parent.parent
        self.inputs, self.outputs = inputs, outputs
        self.convert_kernels = False
        self.name = f"Keras {theano_env.KERAS_VERSION[which]} on Theano 1.0.5 ({self.env.name})"

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        with tempfile.TemporaryDirectory(prefix="modelport-theano-") as tmp:
            job = {"path": os.path.abspath(self.path),
                   "weights": os.path.abspath(self.weights) if self.weights else None,
                   "inputs": os.path.join(tmp, "in.npz"), "outputs": os.path.join(tmp, "out.npz"),
                   "input_names": self.inputs, "convert_kernels": self.convert_kernels}
            np.savez(job["inputs"], **feeds)
            job_path = os.path.join(tmp, "job.json")
            with open(job_path, "w") as f:
                json.dump(job, f)
            try:
                # -I: the script's folder (which holds a keras.py) is not put on sys.path.
                r = subprocess.run([str(self.python), "-I", str(CHILD), job_path],
                                   capture_output=True, text=True,
                                   env=theano_env.theano_environ(self.env), timeout=TIMEOUT_S)
            except subprocess.TimeoutExpired:
                raise ModelportError(f"Keras on Theano did not finish in {TIMEOUT_S}s",
                                     path=self.path) from None
            if r.returncode != 0:
                last = (r.stderr.strip().splitlines() or ["no output"])[-1]
                raise ModelportError(f"Keras on Theano could not run the model: {last}",
                                     path=self.path)
            with np.load(job["outputs"]) as z:
                outs = [z[f"o{i}"] for i in range(len(z.files))]
        return dict(zip(self.outputs, outs))


def _valid_borders_only(path: str, options: Any) -> bool:
    from modelport.importers.keras.model import open_keras

    kf = open_keras(path, getattr(options, "weights", None))
    for h in kf.handles:
        h.close()
    text = json.dumps(kf.config)
    if any(cls in text for cls in ('"Deconvolution', '"SeparableConvolution', '"ConvLSTM')):
        return False
    return '"border_mode": "same"' not in text


def theano_reference(path: str, options: Any = None) -> Any | None:
    """The reference for ``path`` when it is a Theano (or Keras 1) file, else None: a
    :class:`TheanoReference` when its environment exists, a :class:`CannotJudge` otherwise."""
    try:
        version, backend, how, inputs, outputs = file_facts(path, options)
    except Exception:  # not readable this way: the Keras reference reports what is wrong
        return None
    keras1 = version.startswith("1")
    if backend != "theano" and not keras1:
        return None
    which = "k1" if keras1 else "k2"
    if backend != "theano" and _valid_borders_only(path, options):
        # Keras 1 on TensorFlow, every convolution and pooling unpadded: Theano computes the
        # same once Keras' convert_kernel flips the kernels (padded borders would differ).
        python = theano_env.env_python(which)
        if python is not None:
            ref = TheanoReference(path, options, which, python, inputs, outputs)
            ref.convert_kernels = True
            ref.name += f" with TensorFlow kernels converted ({how})"
            return ref
    if backend != "theano":
        return CannotJudge(
            f"a Keras {version} file of the {backend} backend ({how}): tf_keras and Keras 3 "
            "cannot read Keras 1 files and no Keras 1 TensorFlow reference is available; "
            "pass --keras-backend theano if it was saved by Theano", outputs)
    python = theano_env.env_python(which)
    if python is None:
        return CannotJudge(
            f"saved by Keras {version} on Theano ({how}); tf_keras and Keras 3 ignore the "
            "backend and would run its flipped kernels as TensorFlow kernels, and the Theano "
            f"reference environment {theano_env.env_dir(which)} does not exist (create it with "
            "`make theano-env` or `python -m modelport.convert.runners.theano_env`)", outputs)
    return TheanoReference(path, options, which, python, inputs, outputs)
