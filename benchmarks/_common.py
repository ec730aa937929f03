"""Helpers shared by the benchmark scripts."""

from __future__ import annotations

import compileall
import statistics
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


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
