"""What every estimator returns: the estimate and the oracle calls it made."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from refbilevel.oracles.counters import OracleCounts

if TYPE_CHECKING:
    from refbilevel.oracles.contraction import ContractionCounts


@dataclass
class Estimate:
    """``value`` has shape (..., d_x) (replicas first); ``counts`` are per replica."""

    value: np.ndarray
    counts: OracleCounts | ContractionCounts  # SID counts zeta/xi samples (contraction oracle)
