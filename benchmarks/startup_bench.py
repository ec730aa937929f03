"""Start-up: what a small conversion pays before it reads a weight.

Three figures, each the median of ``--repeat`` runs (default 7), each run a fresh process:

* ``import modelport.cli``: the cumulative time ``python -X importtime`` reports for it (the
  command line imports nothing else until a command runs);
* ``import ml_dtypes``: the same for ml_dtypes, which ``onnx`` imports on every conversion
  (0.7.0 takes several times as long as 0.6.0, hence the pin in ``pyproject.toml``);
* whole process, small Keras ``.h5`` -> ONNX (``tests/fixtures/theano/k2_cnn_last.h5``, a
  10-node CNN, so start-up is nearly all of it): ``python -m modelport convert`` against
  ``python -c pass`` (the interpreter alone) and a process that reads every weight with h5py
  and writes the bytes out (the read-and-write floor, h5py and numpy imports included).

Usage::

    .venv/bin/python -m benchmarks.startup_bench [--repeat 7] [--model path.h5]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script (benchmarks/run.py does)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks._common import precompile_modelport  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "tests" / "fixtures" / "theano" / "k2_cnn_last.h5"

_FLOOR = """
import sys, h5py, numpy as np
with h5py.File(sys.argv[1], "r") as f, open(sys.argv[2], "wb") as out:
    def visit(name, obj):
        if isinstance(obj, h5py.Dataset):
            out.write(np.ascontiguousarray(obj[()]).tobytes())
    f["model_weights"].visititems(visit)
"""


def import_seconds(module: str) -> float:
    """Cumulative import time of ``module`` in a fresh interpreter, from -X importtime."""
    r = subprocess.run([sys.executable, "-X", "importtime", "-c", f"import {module}"],
                       capture_output=True, text=True, cwd=ROOT, check=True)
    pattern = re.compile(r"import time:\s+\d+ \|\s+(\d+) \| " + re.escape(module) + r"$")
    for line in r.stderr.splitlines():
        m = pattern.match(line)
        if m:
            return int(m.group(1)) / 1e6
    return 0.0  # already imported by site (cannot happen for these two)


def wall(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--model", default=str(MODEL))
    args = ap.parse_args(argv)
    precompile_modelport()
    import ml_dtypes

    rows: dict[str, list[float]] = {
        "import modelport.cli": [], "import ml_dtypes": [],
        "python -c pass": [], "read-and-write floor": [], "modelport convert": []}
    with tempfile.TemporaryDirectory() as tmp:
        runs = {
            "python -c pass": [sys.executable, "-c", "pass"],
            "read-and-write floor": [sys.executable, "-c", _FLOOR, args.model, f"{tmp}/w.bin"],
            "modelport convert": [sys.executable, "-m", "modelport", "convert", args.model,
                                  "-o", f"{tmp}/o.onnx", "--force", "--quiet"],
        }
        for _ in range(args.repeat):  # round-robin, so a busy spell hits every row alike
            rows["import modelport.cli"].append(import_seconds("modelport.cli"))
            rows["import ml_dtypes"].append(import_seconds("ml_dtypes"))
            for name, cmd in runs.items():
                rows[name].append(wall(cmd))
    print(f"Start-up, median of {args.repeat} runs; Python {sys.version.split()[0]}, "
          f"ml_dtypes {ml_dtypes.__version__}, {os.cpu_count()} CPUs; model {args.model}\n")
    print("| what | median s | runs |")
    print("|---|---:|---|")
    for name, got in rows.items():
        print(f"| {name} | {statistics.median(got):.3f} | "
              f"{', '.join(f'{s:.2f}' for s in got)} |")
    floor = statistics.median(rows["read-and-write floor"])
    ours = statistics.median(rows["modelport convert"])
    print(f"\nmodelport convert / read-and-write floor: {ours / floor:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
