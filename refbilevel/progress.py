"""A dependency-free progress bar for long runs (sweeps, theory checks, benchmarks).

On a terminal it redraws one line; otherwise (CI logs, pipes) it prints a line every 10% so
logs stay short. Output goes to stderr, so stdout (tables, reports) stays clean.

Two layers:

- :class:`Progress`, the bar itself (``update(n)`` after each unit of work);
- :func:`track` (wrap an iterable) and :func:`bar` (a :class:`Progress` to update by hand),
  which obey the process-wide switch below. The theory checks use these, labelled with the
  check and its stage (``track(cases, "S1 Monte Carlo")``).

The switch (:func:`progress_enabled`), first match wins:

1. :func:`set_progress` / the :func:`progress_switch` context manager
   (:func:`refbilevel.checks.runner.run_checks` takes ``progress=``, which ``refbilevel
   check --no-progress`` sets to False for that run);
2. the environment variable ``REFBILEVEL_PROGRESS`` (``0``/``false``/``no``/``off`` = off,
   anything else = on);
3. automatic: on, except inside a pytest test (``PYTEST_CURRENT_TEST`` is set), so the test
   suite's output stays clean; a test that wants the bars turns them on explicitly.

Stages shorter than :data:`DELAY_S` print nothing (as tqdm's ``delay``): every loop of every
check can be tracked without filling logs with bars of instant stages.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import TextIO, TypeVar

T = TypeVar("T")

DELAY_S = 0.5  # default delay of track() and bar(): quiet for stages shorter than this
_OFF = ("0", "false", "no", "off")
_switch: bool | None = None  # None: environment, then automatic


class Progress:
    """A progress bar over ``total`` units. With ``delay`` > 0 nothing is printed until
    ``delay`` seconds have passed (so a stage that ends sooner prints nothing)."""

    def __init__(self, total: int, label: str = "", stream: TextIO | None = None,
                 enabled: bool = True, delay: float = 0.0):
        self.total, self.label, self.done = max(int(total), 0), label, 0
        self.stream = sys.stderr if stream is None else stream
        self.enabled = enabled and self.total > 0
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.t0 = time.perf_counter()
        self.delay = float(delay)
        self._last_decile = -1

    def update(self, n: int = 1, note: str = "") -> None:
        self.done += n
        if not self.enabled:
            return
        elapsed = time.perf_counter() - self.t0
        if elapsed < self.delay:
            return
        frac = self.done / self.total
        eta = elapsed / frac - elapsed if frac > 0 else float("nan")
        bar = "#" * int(30 * frac) + "-" * (30 - int(30 * frac))
        line = (f"{self.label} [{bar}] {self.done}/{self.total} "
                f"{elapsed:6.1f}s elapsed, ~{eta:5.1f}s left {note}").rstrip()
        if self.tty:
            self.stream.write("\r" + line[:160])
            if self.done >= self.total:
                self.stream.write("\n")
        elif int(10 * frac) > self._last_decile or self.done >= self.total:
            self._last_decile = int(10 * frac)
            self.stream.write(line + "\n")
        self.stream.flush()


def progress_enabled() -> bool:
    """Whether :func:`track` and :func:`bar` print (see the module docstring)."""
    if _switch is not None:
        return _switch
    env = os.environ.get("REFBILEVEL_PROGRESS")
    if env is not None:
        return env.strip().lower() not in _OFF
    return "PYTEST_CURRENT_TEST" not in os.environ


def set_progress(enabled: bool | None) -> None:
    """Turn progress output on or off for the process; ``None`` restores the default
    (environment, then automatic)."""
    global _switch
    _switch = None if enabled is None else bool(enabled)


@contextmanager
def progress_switch(enabled: bool | None) -> Iterator[None]:
    """Within the block, progress is ``enabled`` (``None``: the default); restored after."""
    global _switch
    saved = _switch
    set_progress(enabled)
    try:
        yield
    finally:
        _switch = saved


def bar(total: int, label: str, *, stream: TextIO | None = None,
        delay: float | None = None) -> Progress:
    """A :class:`Progress` that obeys the switch (disabled: ``update`` does nothing)."""
    return Progress(total, label, stream=stream, enabled=progress_enabled(),
                    delay=DELAY_S if delay is None else delay)


def track(iterable: Iterable[T], label: str, total: int | None = None, *,
          note: Callable[[T], str] | None = None, stream: TextIO | None = None,
          delay: float | None = None) -> Iterator[T]:
    """Yield the items of ``iterable``, advancing a bar labelled ``label`` after each one
    (``total`` defaults to ``len(iterable)``; ``note(item)`` is shown with the item just
    finished). Silent when progress is off, or for a stage shorter than ``delay``."""
    if total is None:
        try:
            total = len(iterable)  # type: ignore[arg-type]
        except TypeError:
            iterable = list(iterable)
            total = len(iterable)
    p = bar(total, label, stream=stream, delay=delay)
    for item in iterable:
        yield item
        p.update(1, note(item) if note is not None and p.enabled else "")
