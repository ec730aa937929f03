"""Run every benchmark, one after the other, and collect their reports.

    python -m benchmarks.run            # all of them
    python -m benchmarks.run keras      # only those whose file name starts with "keras"

Each benchmark is a script in this folder (``<format>_*.py``) that prints a Markdown table and
compares modelport with its peers in the same run. Their output is also written to
``benchmarks/results/<script>.md``. Peer tools live in their own virtual environments (see each
script's docstring), never in the project's .venv.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def scripts(prefixes: list[str]) -> list[str]:
    names = sorted(f for f in os.listdir(HERE)
                   if f.endswith(".py") and not f.startswith(("_", "run")))
    return [f for f in names if not prefixes or f.startswith(tuple(prefixes))]


def main() -> int:
    selected = scripts(sys.argv[1:])
    results = os.path.join(HERE, "results")
    os.makedirs(results, exist_ok=True)
    failed = []
    for name in selected:
        print(f"== {name}", flush=True)
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, os.path.join(HERE, name)], cwd=ROOT,
                              capture_output=True, text=True)
        took = time.perf_counter() - start
        sys.stdout.write(proc.stdout)
        with open(os.path.join(results, name.replace(".py", ".md")), "w") as f:
            f.write(proc.stdout)
        if proc.returncode != 0:
            failed.append(name)
            sys.stdout.write(proc.stderr[-3000:])
        print(f"== {name}: exit {proc.returncode} after {took:.0f}s\n", flush=True)
    if failed:
        print("failed: " + ", ".join(failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
