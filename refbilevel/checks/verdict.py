"""Claim records, measurements and verdicts (the JSON schema of ``refbilevel check``)."""

from __future__ import annotations

import json
import math
import platform
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


@dataclass(frozen=True)
class ClaimInfo:
    """One row of docs/checks.rst."""

    id: str  # "U1", "S2", ...
    claim: str  # the claim in words, with its formula
    source: str  # paper result and spec section, e.g. "UniBiO Lemma 4.2; docs/unibio.rst §3.1"


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

    @property
    def ok(self) -> bool:
        """The check succeeded: the claim held and the false variant was rejected."""
        return self.passed and self.control_rejected and self.error is None

    def to_json(self) -> str:
        return json.dumps(jsonable(asdict(self)), indent=2, allow_nan=False)

    def write(self, path: Path) -> None:
        path.write_text(self.to_json() + "\n")


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
