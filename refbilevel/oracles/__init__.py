"""Stochastic oracles: the only place that draws noise and the only place that counts calls."""

from refbilevel.oracles.counters import ORACLE_KINDS, OracleCounts
from refbilevel.oracles.gaussian import GaussianOracle, NoiseConfig
from refbilevel.oracles.matrix_noise import MatrixNoiseOracle

__all__ = ["ORACLE_KINDS", "GaussianOracle", "MatrixNoiseOracle", "NoiseConfig", "OracleCounts"]
