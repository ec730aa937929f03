"""Fuzzing helpers: the client of the fork server, byte-level mutation strategies, the verdict.

A verdict is what the issue asks of every parser: a mutated file either converts cleanly
(exit 0) or is refused with exit 2 and exactly one line on stderr naming the file. Exit 3
(an internal error), any other status, a signal (a crash of a C library), a timeout (a hang)
or a MemoryError under the cap are findings.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[2]
REGRESSIONS = Path(__file__).resolve().parent / "regressions"


@dataclasses.dataclass
class Outcome:
    rc: int | None
    signal: int | None
    timed_out: bool
    seconds: float
    stderr: str


class FuzzServer:
    """Talks to ``python -m tests.fuzz.server`` (one per test session)."""

    def __init__(self, workdir: Path, kinds: tuple[str, ...] = ()) -> None:
        self.workdir = workdir
        self.kinds = kinds
        self.cases = 0
        self.seconds = 0.0
        self._start()

    def _start(self) -> None:
        env = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="3")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.fuzz.server", *self.kinds], cwd=ROOT, env=env,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
        ready = self.proc.stdout.readline()
        if not ready.startswith('{"ready"'):
            raise RuntimeError(f"fuzz server did not start: {ready!r}")

    def run(self, argv: list[str], *, timeout: float = 30.0, mem_mb: int = 1536) -> Outcome:
        log = self.workdir / "case.log"
        request = {"argv": [str(a) for a in argv], "timeout": timeout, "mem_mb": mem_mb,
                   "log": str(log)}
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        answer = json.loads(self.proc.stdout.readline())
        self.cases += 1
        self.seconds += answer["seconds"]
        stderr = log.read_text(errors="replace") if log.exists() else ""
        return Outcome(answer["rc"], answer["signal"], answer["timed_out"], answer["seconds"],
                       stderr)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def problem(outcome: Outcome, names: list[str]) -> str | None:
    """None when the outcome is acceptable; otherwise what is wrong with it. An exit-2 line
    must name one of ``names`` (the mutated file, or the companion it no longer fits)."""
    err = outcome.stderr.strip()
    if outcome.timed_out:
        return f"hang: no answer in {outcome.seconds:.0f}s"
    if outcome.signal is not None:
        return f"killed by signal {outcome.signal}"
    if outcome.rc == 0:
        return None
    if outcome.rc != 2:
        return f"exit {outcome.rc}: {err[-2000:]}"
    lines = [line for line in err.splitlines() if line.strip()]
    if len(lines) != 1:
        return f"exit 2 with {len(lines)} lines on stderr: {err[-2000:]}"
    if "Traceback" in err or "internal error" in err:
        return f"exit 2 with a traceback: {err}"
    if not any(n in lines[0] for n in names):
        return f"exit 2 without naming the file: {lines[0]}"
    return None


def save_regression(data: bytes, name: str, suffix: str) -> Path:
    """Keep a failing input under tests/fuzz/regressions/ (committed by hand if real)."""
    REGRESSIONS.mkdir(exist_ok=True)
    path = REGRESSIONS / f"{name}{suffix}"
    path.write_bytes(data)
    return path


# -- mutations ---------------------------------------------------------------------------------
# Bytes that make integer fields (varints, HDF5 sizes, zip lengths) claim huge values.
BIG = [b"\xff\xff\xff\xff\x0f", b"\xff\xff\xff\xff\xff\xff\xff\xff\x7f", b"\xff" * 8,
       b"\x00\x00\x00\x80", b"\xff\xff\xff\x7f", b"\x80\x80\x80\x80\x80\x80\x80\x80\x80\x01"]


@st.composite
def mutations(draw, data: bytes, hot: list[int] = ()):
    """``data`` with 1 to 4 edits: truncation, byte flips, inserted garbage, huge integers,
    repeated slices. Positions favour ``hot`` offsets (headers, the places where sizes live)."""
    n = len(data)
    out = bytearray(data)

    def position(limit: int) -> int:
        if hot and draw(st.booleans()):
            base = draw(st.sampled_from(list(hot)))
            return max(0, min(limit - 1, base + draw(st.integers(-16, 64))))
        return draw(st.integers(0, max(0, limit - 1)))

    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["truncate", "flip", "insert", "big", "repeat", "zero"]))
        if not out:
            break
        if kind == "truncate":
            out = out[:position(len(out))]
        elif kind == "flip":
            i = position(len(out))
            out[i] ^= draw(st.integers(1, 255))
        elif kind == "insert":
            i = position(len(out))
            out[i:i] = draw(st.binary(min_size=1, max_size=64))
        elif kind == "big":
            i = position(len(out))
            chunk = draw(st.sampled_from(BIG))
            out[i:i + len(chunk)] = chunk
        elif kind == "repeat":
            i = position(len(out))
            length = draw(st.integers(1, 256))
            out[i:i] = out[i:i + length] * draw(st.integers(1, 8))
        else:
            i = position(len(out))
            out[i:i + draw(st.integers(1, 64))] = b"\x00" * 64
    assert n >= 0
    return bytes(out)


def hot_offsets(data: bytes, markers: list[bytes], extra: list[int] = ()) -> list[int]:
    hot = [0, *extra]
    for m in markers:
        start = 0
        while len(hot) < 64:
            i = data.find(m, start)
            if i < 0:
                break
            hot.append(i)
            start = i + 1
    return sorted(set(hot))


class Budget:
    """Counts cases and time of one fuzz test, for the figures the report prints."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.cases = 0
        self.outcomes: dict[str, int] = {}
        self.start = time.monotonic()

    def record(self, outcome: Outcome) -> None:
        self.cases += 1
        key = "timeout" if outcome.timed_out else f"exit {outcome.rc}"
        self.outcomes[key] = self.outcomes.get(key, 0) + 1

    def summary(self) -> str:
        return (f"fuzz {self.name}: {self.cases} cases in {time.monotonic() - self.start:.1f}s "
                f"({', '.join(f'{k}: {v}' for k, v in sorted(self.outcomes.items()))})")


def fresh_dir(path: Path) -> Path:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path
