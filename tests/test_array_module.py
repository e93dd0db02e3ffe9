"""Each family's mathematics written once with the array module as a parameter
(refbilevel.array_module): ``problem.on(xp)`` and the CuPy path that evaluates it."""

import numpy as np
import pytest

from refbilevel.array_module import OnArrayModule, array_module
from refbilevel.backends.registry import NotImplementedOnBackendError
from refbilevel.problems import make_problem
from refbilevel.problems.finite_sum_quadratic import FiniteSumQuadratic
from tests.fake_device import FAKE_DEVICE, MovedArray

DEVICE_FAMILIES = ("unibio-example3", "uniformly-convex-separable",
                   "uniformly-convex-nonseparable", "uniformly-convex-sharp-holder",
                   "uniformly-convex-bump", "quadratic")


def _arrays(obj, path="problem"):
    """(path, array) for every array attribute, through nested OnArrayModule objects."""
    for key, value in vars(obj).items():
        if key == "_host":
            continue
        if isinstance(value, np.ndarray):
            yield f"{path}.{key}", value
        elif isinstance(value, OnArrayModule):
            yield from _arrays(value, f"{path}.{key}")


@pytest.mark.parametrize("name", DEVICE_FAMILIES)
def test_on_moves_every_parameter_and_computes_the_same_values(name):
    P = make_problem(name)
    D = P.on(FAKE_DEVICE)
    assert D is not P and D.xp is FAKE_DEVICE and D.on(np) is P and P.on(np) is P
    moved = dict(_arrays(D))
    assert all(isinstance(a, MovedArray) for a in moved.values()), [
        k for k, a in moved.items() if not isinstance(a, MovedArray)]
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (5, P.d_x))
    y = rng.choice([-1.0, 1.0], (5, P.d_y)) * rng.uniform(0.3, 1.0, (5, P.d_y))
    v = rng.standard_normal((5, P.d_y))
    for method, args in (("grad_x_f", (x, y)), ("grad_y_f", (x, y)), ("grad_x_g", (x, y)),
                         ("grad_y_g", (x, y)), ("hvp_yy_g", (x, y, v)),
                         ("jvp_xy_g", (x, y, v)), ("f_u", (x, y)), ("gen_hvp", (x, y, v)),
                         ("gen_hvp_T", (x, y, v)), ("f", (x, y)), ("g", (x, y))):
        # the same expressions on the same numbers: equal bit for bit
        np.testing.assert_array_equal(getattr(D, method)(*args),
                                      getattr(P, method)(*args), err_msg=method)


def test_a_numpy_only_family_is_refused_clearly():
    P = FiniteSumQuadratic(n_inner=8, n_outer=8, d_inner=3, d_outer=2)
    with pytest.raises(NotImplementedOnBackendError, match="computes with NumPy only"):
        P.on(FAKE_DEVICE)


def test_array_module_of_plain_arrays_is_numpy():
    assert array_module(np.zeros(2), 1.0, None) is np
