"""Cell functions for the sweep tests (importable, so process and Dask workers load them)."""

import os
import time
from pathlib import Path

import numpy as np

from refbilevel.problems.unibio_example3 import UniBiOExample3
from refbilevel.randomness import named_stream


def holder_ratio_cell(params):
    """A real measurement: max Hölder ratio of y* on Example 3 over random pairs (U1)."""
    if params.get("marker_dir"):
        d = Path(params["marker_dir"])
        (d / f"{params['p']}-{params['seed']}-{os.getpid()}-{time.time_ns()}").touch()
    time.sleep(params.get("sleep", 0.0))
    P = UniBiOExample3(params["p"])
    rng = named_stream(params["seed"], "sweep-test")
    x1, x2 = rng.uniform(-3, 3, (2, 200, 1))
    dy = np.abs(P.y_star(x1) - P.y_star(x2))[:, 0]
    ratio = dy / (P.constants.l_p * np.abs(x1 - x2)[:, 0] ** (1 / (P.p - 1)))
    return {"max_ratio": float(ratio.max())}


def registered_problem_cell(params):
    """Builds a problem by its registered name (the sweep test of ``--import``: this module
    does not import the module that registers it)."""
    from refbilevel.problems import make_problem

    return {"d_x": make_problem(params["problem"], d=params["d"]).d_x}
