"""The MXNet reference environment: MXNet 1.9.1 with NumPy 1.23.5 in its own virtual
environment (``.venv-mxnet`` at the project root), since MXNet cannot share NumPy 2 with the
rest of modelport. Created on demand by ``make mxnet-env``, the test set-up and
``python -m modelport.convert.runners.mxnet_env``; the main environment never imports mxnet.

``MODELPORT_MXNET_PYTHON`` names another interpreter that has MXNet.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

PINS = ("mxnet==1.9.1", "numpy==1.23.5")
ENV_VAR = "MODELPORT_MXNET_PYTHON"
ROOT = Path(__file__).resolve().parents[3]
DEFAULT_DIR = ROOT / ".venv-mxnet"


def env_python(directory: Path | None = None) -> Path:
    return (directory or DEFAULT_DIR) / "bin" / "python"


def find_python() -> str | None:
    """The interpreter that runs MXNet, if one is set up (no network, nothing created)."""
    explicit = os.environ.get(ENV_VAR)
    if explicit:
        return explicit if Path(explicit).is_file() else None
    candidates = [env_python(), Path.cwd() / ".venv-mxnet" / "bin" / "python"]
    for c in candidates:
        if c.is_file() and (c.parent.parent / ".mxnet-ready").is_file():
            return str(c)
    return None


def create(directory: Path | None = None, *, quiet: bool = False) -> str:
    """Create (or complete) the environment; returns its python. Raises CalledProcessError."""
    import fcntl

    directory = directory or DEFAULT_DIR
    directory.parent.mkdir(parents=True, exist_ok=True)
    lock_path = directory.parent / f"{directory.name}.lock"
    with open(lock_path, "w") as lock:  # parallel test workers wait for one creator
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _create(directory, quiet)


def _create(directory: Path, quiet: bool) -> str:
    stamp = directory / ".mxnet-ready"
    python = env_python(directory)
    if stamp.is_file() and python.is_file():
        return str(python)
    start = time.perf_counter()
    base = os.environ.get("MODELPORT_MXNET_BASE_PYTHON", "python3")
    if not python.is_file():
        subprocess.run([base, "-m", "venv", str(directory)], check=True)
    pip = [str(python), "-m", "pip", "install", "--disable-pip-version-check"]
    if quiet:
        pip.append("-q")
    subprocess.run([*pip, *PINS], check=True)
    # A smoke test: MXNet imports and computes.
    subprocess.run([str(python), "-c", "import mxnet as mx; assert mx.__version__ == '1.9.1'; "
                    "mx.nd.ones((2,)).asnumpy()"], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    stamp.write_text(" ".join(PINS) + "\n")
    if not quiet:
        print(f"MXNet environment ready in {directory} ({time.perf_counter() - start:.0f} s)",
              file=sys.stderr)
    return str(python)


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else None
    print(create(target))
