"""Create the Theano reference environments: Keras 1.2.2 and Keras 2.2.4 on Theano 1.0.5.

Theano and these Keras versions need an old NumPy, so each lives in its own virtual environment
(``.venv-theano-k1`` and ``.venv-theano-k2`` at the repository root unless told otherwise),
installed from PyPI by pinned versions. Python 3.11 removed things Theano and old Keras use; a
``sitecustomize.py`` written into each environment puts them back:

* ``collections.Iterable`` & co. (moved to ``collections.abc``) and ``inspect.getargspec``;
* Theano's Cython scan module does not build on 3.11, so importing
  ``theano.scan_module.scan_perform_ext`` is made to fail and scan uses its Python code.

Usage: ``python -m modelport.convert.runners.theano_env [--dir ROOT] [k1] [k2]`` (``make
theano-env``). The reference runner (:mod:`modelport.convert.runners.theano`) uses an
environment when it exists; nothing is installed at conversion time.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]

# (pip requirement lines) per environment; every version pinned.
COMMON = ["numpy==1.23.5", "scipy==1.11.4", "six==1.16.0", "PyYAML==6.0.1", "h5py==3.10.0",
          "Theano==1.0.5"]
PACKAGES = {
    "k1": COMMON + ["Keras==1.2.2"],
    "k2": COMMON + ["Keras==2.2.4", "Keras-Applications==1.0.8",
                    "Keras-Preprocessing==1.1.2"],
}
KERAS_VERSION = {"k1": "1.2.2", "k2": "2.2.4"}

SITECUSTOMIZE = '''\
# Written by modelport's theano_env: lets Theano 1.0.5 and Keras 1.2/2.2 run on Python 3.11.
import collections
import collections.abc
import importlib.abc
import inspect
import sys

for _name in ("Iterable", "Mapping", "MutableMapping", "Sequence", "MutableSequence", "Set",
              "MutableSet", "Callable", "Hashable", "Sized", "Container", "OrderedDict"):
    if not hasattr(collections, _name) and hasattr(collections.abc, _name):
        setattr(collections, _name, getattr(collections.abc, _name))

if not hasattr(inspect, "getargspec"):
    _ArgSpec = collections.namedtuple("ArgSpec", "args varargs keywords defaults")

    def getargspec(func):
        spec = inspect.getfullargspec(func)
        return _ArgSpec(spec.args, spec.varargs, spec.varkw, spec.defaults)

    inspect.getargspec = getargspec


class _NoScanExt(importlib.abc.MetaPathFinder):
    """Theano's compiled scan does not build on 3.11: make it fail so the Python scan runs."""

    def find_spec(self, name, path=None, target=None):
        if name == "theano.scan_module.scan_perform_ext":
            raise ImportError("scan_perform_ext disabled (modelport theano_env)")
        return None


sys.meta_path.insert(0, _NoScanExt())
'''


def env_dir(which: str, root: str | os.PathLike | None = None) -> Path:
    base = Path(root) if root else Path(os.environ.get("MODELPORT_THEANO_ENVS") or ROOT)
    return base / f".venv-theano-{which}"


def env_python(which: str, root: str | os.PathLike | None = None) -> Path | None:
    """The environment's interpreter when the environment is complete, else None."""
    d = env_dir(which, root)
    py = d / "bin" / "python"
    return py if py.is_file() and (d / ".complete").is_file() else None


def _site_packages(py: Path) -> Path:
    out = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                         check=True, capture_output=True, text=True).stdout.strip()
    return Path(out)


def create(which: str, root: str | os.PathLike | None = None, python: str | None = None,
           quiet: bool = True) -> Path:
    """Create (or finish) one environment; returns its interpreter. Idempotent."""
    d = env_dir(which, root)
    done = d / ".complete"
    if done.is_file():
        return d / "bin" / "python"
    py = d / "bin" / "python"
    if not py.is_file():
        subprocess.run([python or sys.executable, "-m", "venv", str(d)], check=True)
    q = ["-q"] if quiet else []
    subprocess.run([str(py), "-m", "pip", "install", *q, "--disable-pip-version-check",
                    "setuptools==69.5.1", "wheel==0.43.0"], check=True)
    subprocess.run([str(py), "-m", "pip", "install", *q, "--disable-pip-version-check",
                    "--no-deps", *PACKAGES[which]], check=True)
    (_site_packages(py) / "sitecustomize.py").write_text(SITECUSTOMIZE)
    # A smoke run: Keras on Theano builds and runs a tiny model.
    check = ("import theano, theano.ifelse, keras, numpy as np; "
             "from keras.models import Sequential; from keras.layers import Dense; "
             "m = Sequential(); m.add(Dense(2, input_dim=3)); "
             "print(keras.__version__, theano.__version__, m.predict(np.ones((1, 3))).shape)")
    r = subprocess.run([str(py), "-c", check], env=theano_environ(d), capture_output=True,
                       text=True)
    if r.returncode != 0:
        raise RuntimeError(f"the {which} environment does not run Keras on Theano:\n"
                           f"{r.stderr[-2000:]}")
    if KERAS_VERSION[which] not in r.stdout:
        raise RuntimeError(f"unexpected versions in {d}: {r.stdout.strip()}")
    done.write_text(r.stdout)
    return py


def theano_environ(env: Path) -> dict[str, str]:
    """Environment variables for a child process running Keras on Theano from ``env``."""
    compiledir = env / "theano-cache"
    flags = f"blas.ldflags=,base_compiledir={compiledir},floatX=float32,device=cpu"
    e = dict(os.environ)
    for k in ("PYTHONPATH", "PYTHONHOME"):
        e.pop(k, None)
    # HOME and KERAS_HOME point into the environment: old Keras writes ~/.keras/keras.json.
    e.update(KERAS_BACKEND="theano", THEANO_FLAGS=flags, PYTHONNOUSERSITE="1", HOME=str(env),
             KERAS_HOME=str(env / ".keras"))
    return e


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    # argparse checks a nargs="*" default against choices as a whole, so validate by hand
    p.add_argument("which", nargs="*", metavar="{k1,k2}",
                   help="which environments to create (default: both)")
    p.add_argument("--dir", default=None, help="where the .venv-theano-* folders go "
                   "(default: $MODELPORT_THEANO_ENVS or the repository root)")
    p.add_argument("--python", default=None, help="interpreter for the venvs (default: this one)")
    args = p.parse_args(argv)
    unknown = [w for w in args.which if w not in KERAS_VERSION]
    if unknown:
        p.error(f"unknown environment {', '.join(unknown)} (choose from k1, k2)")
    for which in args.which or ["k1", "k2"]:
        t = time.perf_counter()
        py = create(which, args.dir, args.python, quiet=False)
        print(f"{which}: {py} ready in {time.perf_counter() - t:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
