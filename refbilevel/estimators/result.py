"""What every estimator returns: the estimate and the oracle calls it made."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from refbilevel.oracles.counters import OracleCounts


@dataclass
class Estimate:
    """``value`` has shape (..., d_x) (replicas first); ``counts`` are per replica."""

    value: np.ndarray
    counts: OracleCounts
