"""Progress on a terminal: one status line per stage, redrawn in place; silent otherwise."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    def __init__(self, enabled: bool | None = None, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        if enabled is None:
            enabled = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.enabled = enabled
        self._stage = ""
        self._start = time.perf_counter()
        self._last = 0.0
        self._bytes = 0
        self._total = 0

    def stage(self, text: str, total_bytes: int = 0) -> None:
        self._finish_line()
        self._stage = text
        self._start = time.perf_counter()
        self._bytes = 0
        self._total = total_bytes
        self._draw(force=True)

    def advance(self, nbytes: int) -> None:
        self._bytes += nbytes
        self._draw()

    def done(self) -> None:
        self._finish_line()
        self._stage = ""

    def _draw(self, force: bool = False) -> None:
        if not self.enabled or not self._stage:
            return
        now = time.perf_counter()
        if not force and now - self._last < 0.1:
            return
        self._last = now
        text = f"{self._stage}..."
        if self._total:
            pct = min(100, 100 * self._bytes // max(self._total, 1))
            text += f" {pct:3d}% ({self._bytes / 1e6:.0f}/{self._total / 1e6:.0f} MB)"
        text += f" {now - self._start:.1f}s"
        self.stream.write("\r\033[K" + text)
        self.stream.flush()

    def _finish_line(self) -> None:
        if self.enabled and self._stage:
            self._draw(force=True)
            self.stream.write("\n")
            self.stream.flush()


NULL = Progress(enabled=False)
