"""MXNet test set-up: the MXNet 1.9.1 environment is created on demand (the same script as
`make mxnet-env`); a failure to create it fails the tests that need it (never a skip).
Models are built once per run by real MXNet and shared by the xdist workers."""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path

import pytest

from tests.importers.mxnet.helpers import build_models

SYMBOL_MODELS = ["conv2d", "conv_nd", "deconv", "pooling", "norms", "activations", "shapes",
                 "maths", "indexing", "upsample_bilinear", "extras"]


@pytest.fixture(scope="session")
def mxnet_python() -> str:
    from modelport.convert.runners import mxnet_env

    explicit = os.environ.get(mxnet_env.ENV_VAR)
    if explicit:
        return explicit
    try:
        return mxnet_env.create(quiet=True)
    except Exception as exc:  # noqa: BLE001 - reported as a test failure, with the cause
        pytest.fail(f"cannot create the MXNet 1.9.1 environment ({exc}); run `make mxnet-env` "
                    "to see why", pytrace=False)


@pytest.fixture(scope="session")
def mxnet_models(mxnet_python, tmp_path_factory, worker_id) -> callable:
    """``get(*specs) -> folder`` building each spec with real MXNet once per test run."""
    root = tmp_path_factory.getbasetemp()
    if worker_id != "master":
        root = root.parent
    folder = root / "mxnet-models"
    folder.mkdir(exist_ok=True)

    def get(*specs: str) -> Path:
        with open(folder / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            done_file = folder / "done.json"
            done = set(json.loads(done_file.read_text())) if done_file.exists() else set()
            todo = [s for s in specs if s not in done]
            if todo:
                build_models(mxnet_python, folder, *todo)
                done_file.write_text(json.dumps(sorted(done | set(todo))))
        return folder

    return get
