"""Claim records, measurements and verdicts (the JSON schema of ``refbilevel check``).

Two additions carry the claims ledger (docs/claims.rst):

- **Evidence.** Every :class:`ClaimInfo` says what kind of evidence each part of its check
  gives (:class:`Evidence`): ``exact`` (a deterministic computation decides), ``statistical``
  (a seeded random test, with its false-positive rate, at most 1e-3), or ``accounting``
  (consistency of the project's own schedule with the orders it was built with: it cannot
  refute a paper).
- **Pre-registered counterexamples.** A check whose probe may refute a statement (FdeHBO
  Proposition 3's printed factor, our reconstruction of UniBiO Lemma B.5) names that
  statement in ``ClaimInfo.counterexample_to`` before it is run. When the probe fails, the
  check's ``measure`` returns the witness instance in ``Measurement.counterexample``; the
  verdict's ``outcome`` is then ``"counterexample"`` and the check still succeeds provided
  everything else it asserts held (``passed``: the halves that must hold) and its negative
  control was rejected. A counterexample from a check that registered none is an error: any
  other failing check is a failure.
"""

from __future__ import annotations

import functools
import json
import math
import platform
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

EVIDENCE_KINDS = ("exact", "statistical", "accounting")
MAX_FPR = 1e-3  # the project's bound on a statistical check's false-positive rate
ACCOUNTING_NOTE = ("oracle count of the project's own theory schedule: it confirms the orders "
                   "the schedule was built with and cannot refute the paper")
OUTCOMES = ("verified", "counterexample", "failed", "error")


@dataclass(frozen=True)
class Evidence:
    """The kind of evidence one part of a check gives (docs/checks.rst, "Evidence")."""

    kind: str  # one of EVIDENCE_KINDS
    part: str = "all"  # which part of the check, e.g. "(a)" or "Monte Carlo cross-check"
    fpr: float | None = None  # statistical: false-positive rate at the fixed seed
    note: str = ""

    def __post_init__(self) -> None:
        if self.kind not in EVIDENCE_KINDS:
            raise ValueError(f"evidence kind must be one of {', '.join(EVIDENCE_KINDS)}; "
                             f"got {self.kind!r}")
        if self.fpr is not None and not 0.0 <= self.fpr <= MAX_FPR:
            raise ValueError(f"evidence fpr must be in [0, {MAX_FPR:g}]; got {self.fpr!r}")
        if self.kind != "statistical" and self.fpr is not None:
            raise ValueError(f"evidence fpr is for statistical parts only; got kind "
                             f"{self.kind!r} with fpr {self.fpr!r}")

    def describe(self) -> str:
        fpr = f", false-positive rate <= {self.fpr:.1g}" if self.fpr is not None else ""
        note = f"; {self.note}" if self.note else ""
        return f"{self.part}: {self.kind}{fpr}{note}"


@dataclass(frozen=True)
class ClaimInfo:
    """One row of docs/checks.rst."""

    id: str  # "U1", "S2", ...
    claim: str  # the claim in words, with its formula
    source: str  # paper result and spec section, e.g. "UniBiO Lemma 4.2; docs/unibio.rst §3.1"
    evidence: tuple[Evidence, ...] = ()
    # the statement this check's probe may refute, registered before it was run (None: the
    # check registers no counterexample, so a failing probe is a failure)
    counterexample_to: str | None = None
    # None: part of the default quick suite; otherwise why the check runs only when named or
    # with --full (printed every time the default suite leaves it out)
    quick_suite_exclusion: str | None = None


@dataclass
class Measurement:
    """What a check measured. ``measured`` and ``bound`` hold JSON-able values (confidence
    intervals as [low, high] lists); ``control`` says what the negative control was and what
    it measured; ``figure_data`` is passed to the check's ``plot`` and is not serialized."""

    passed: bool
    control_rejected: bool
    measured: dict[str, Any]
    bound: dict[str, Any]
    control: dict[str, Any]
    notes: list[str] = field(default_factory=list)
    figure_data: dict[str, Any] = field(default_factory=dict)
    # the witness when the pre-registered probe failed (ClaimInfo.counterexample_to): the
    # instance, both sides of the refuted inequality, and their ratio
    counterexample: dict[str, Any] | None = None
    #: backends the check ran on outside the implementation registry (a kernel imported
    #: directly, e.g. U7's scalar Numba Epoch-SGD); the runner adds the registry's lookups
    backends_used: list[str] = field(default_factory=list)


@dataclass
class Verdict:
    id: str
    claim: str
    source: str
    passed: bool
    control_rejected: bool
    measured: dict[str, Any]
    bound: dict[str, Any]
    control: dict[str, Any]
    seed: int
    backend: str
    mode: str
    elapsed_s: float
    versions: dict[str, str]
    notes: list[str]
    figure: str | None = None
    error: str | None = None
    evidence: list[dict[str, Any]] = field(default_factory=list)
    counterexample_to: str | None = None
    counterexample: dict[str, Any] | None = None
    outcome: str = ""  # one of OUTCOMES, set by outcome_of()
    #: ``backend`` is the backend the check ran on: the requested one when the check honoured
    #: ``--backend``, otherwise what it used instead (and ``backend_note`` says so)
    backend_requested: str | None = None
    backends_used: list[str] = field(default_factory=list)
    backend_note: str | None = None
    #: the source the verdict came from: ``git rev-parse HEAD`` of the checkout holding the
    #: package and whether tracked files differ from it (None outside a git checkout)
    git_commit: str | None = None
    git_dirty: bool | None = None

    @property
    def ok(self) -> bool:
        """The check succeeded: what must hold held and the false variant was rejected (a
        pre-registered counterexample is a result, not a failure)."""
        return self.passed and self.control_rejected and self.error is None

    def outcome_of(self) -> str:
        """``verified``, ``counterexample`` (succeeded, and the pre-registered probe failed),
        ``failed`` or ``error``."""
        if self.error is not None:
            return "error"
        if not self.ok:
            return "failed"
        return "counterexample" if self.counterexample is not None else "verified"

    def to_json(self) -> str:
        return json.dumps(jsonable(asdict(self)), indent=2, allow_nan=False)

    def write(self, path: Path) -> None:
        path.write_text(self.to_json() + "\n")

    @classmethod
    def read(cls, path: Path) -> Verdict:
        """A verdict written by :meth:`write` (fields added since default to None/empty)."""
        data = json.loads(Path(path).read_text())
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def versions() -> dict[str, str]:
    import numba
    import scipy

    import refbilevel

    return {
        "refbilevel": refbilevel.__version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "numba": numba.__version__,
    }


@functools.cache
def source_revision() -> tuple[str | None, bool | None]:
    """(commit, dirty) of the git checkout the ``refbilevel`` package was imported from, or
    (None, None) when it is not in one (an installed wheel) or git is missing. Dirty means a
    tracked file differs from the commit (untracked files, such as check outputs, are not
    counted). Read once per process."""
    import subprocess

    import refbilevel

    root = Path(refbilevel.__file__).resolve().parents[1]

    def git(*args: str) -> str | None:
        try:
            res = subprocess.run(["git", "-C", str(root), *args], capture_output=True,
                                 text=True, timeout=30, check=False)
        except (OSError, subprocess.SubprocessError):
            return None
        return res.stdout.strip() if res.returncode == 0 else None

    top = git("rev-parse", "--show-toplevel")
    if top is None or Path(top).resolve() != root:
        return None, None  # not a checkout of this package (or inside an unrelated repo)
    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no")
    return commit, None if status is None else bool(status)


def jsonable(obj: Any) -> Any:
    """NumPy scalars/arrays to Python; non-finite floats to strings (JSON has no NaN)."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, (np.bool_, bool)):
        return bool(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        f = float(obj)
        return f if math.isfinite(f) else str(f)
    return obj
