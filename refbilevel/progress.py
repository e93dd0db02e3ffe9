"""A dependency-free progress bar for long runs (sweeps, full-mode checks, benchmarks).

On a terminal it redraws one line; otherwise (CI logs, pipes) it prints a line every 10% so
logs stay short.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    def __init__(self, total: int, label: str = "", stream: TextIO | None = None,
                 enabled: bool = True):
        self.total, self.label, self.done = max(int(total), 0), label, 0
        self.stream = sys.stderr if stream is None else stream
        self.enabled = enabled and self.total > 0
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.t0 = time.perf_counter()
        self._last_decile = -1

    def update(self, n: int = 1, note: str = "") -> None:
        self.done += n
        if not self.enabled:
            return
        frac = self.done / self.total
        elapsed = time.perf_counter() - self.t0
        eta = elapsed / frac - elapsed if frac > 0 else float("nan")
        bar = "#" * int(30 * frac) + "-" * (30 - int(30 * frac))
        line = (f"{self.label} [{bar}] {self.done}/{self.total} "
                f"{elapsed:6.1f}s elapsed, ~{eta:5.1f}s left {note}")
        if self.tty:
            self.stream.write("\r" + line[:160])
            if self.done >= self.total:
                self.stream.write("\n")
        elif int(10 * frac) > self._last_decile or self.done >= self.total:
            self._last_decile = int(10 * frac)
            self.stream.write(line + "\n")
        self.stream.flush()
