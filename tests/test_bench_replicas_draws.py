"""The draw timing of benchmarks/bench_replicas.py (`refbilevel bench algorithms`) calls each
kernel's own draw function; a changed signature broke it once without any test noticing.
This calls every one on a small finite sum: it must run and draw (the Generator advances)."""

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import bench_replicas  # noqa: E402

from refbilevel.algorithms._baselines_numba import kernel_inputs  # noqa: E402
from refbilevel.oracles.finite_sum import FiniteSumOracle  # noqa: E402
from refbilevel.problems.finite_sum_quadratic import FiniteSumQuadratic  # noqa: E402


@pytest.mark.numba
@pytest.mark.parametrize("name", bench_replicas.TARGET + bench_replicas.OTHERS)
def test_draw_function_of_each_kernel_runs(name):
    d, R = 3, 4
    prob = FiniteSumQuadratic(n_inner=16, n_outer=16, d_inner=d, d_outer=d, seed=0)
    oracle = FiniteSumOracle(prob, 4, np.random.default_rng(0))
    k = kernel_inputs(oracle, name, R)
    before = oracle.rng.bit_generator.state["state"]["state"]
    bench_replicas._draws(name)(oracle.rng, k.P, k.noise, R, d)
    assert oracle.rng.bit_generator.state["state"]["state"] != before
