"""A problem defined outside the package, with its own Numba family (the user's side of the
contract of refbilevel/backends/numba_problems.py): a record, njit primitives, a builder,
one register_numba_family call. The mathematics is the separable uniformly convex family's
(docs/unibio.rst §2), so the NumPy methods are inherited and parity is checkable."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit

from refbilevel.backends.numba_problems import NumbaFamily, readonly, register_numba_family
from refbilevel.problems.uniformly_convex import SeparableUniformlyConvex


class UserSeparable(SeparableUniformlyConvex):
    """A user's problem class (a subclass: exact-type lookup gives it no library family)."""


class UserSeparableRecord(NamedTuple):
    p: float
    c: np.ndarray


@njit(error_model="numpy")
def _grad_x_f(P, x, y, out):
    for i in range(out.shape[0]):
        out[i] = 0.0


@njit(error_model="numpy")
def _grad_y_f(P, x, y, out):
    for i in range(out.shape[0]):
        out[i] = P.c[i] * ((P.p - 1.0) * np.abs(y[i]) ** (P.p - 2.0))


@njit(error_model="numpy")
def _grad_x_g(P, x, y, out):
    for i in range(out.shape[0]):
        out[i] = -y[i] * np.cos(x[i])


@njit(error_model="numpy")
def _grad_y_g(P, x, y, out):
    for i in range(out.shape[0]):
        out[i] = np.sign(y[i]) * np.abs(y[i]) ** (P.p - 1.0) - np.sin(x[i])


@njit(error_model="numpy")
def _hvp(P, x, y, v, out):
    for i in range(out.shape[0]):
        out[i] = ((P.p - 1.0) * np.abs(y[i]) ** (P.p - 2.0)) * v[i]


@njit(error_model="numpy")
def _jvp(P, x, y, v, out):
    for i in range(out.shape[0]):
        out[i] = -np.cos(x[i]) * v[i]


FAMILY = register_numba_family(NumbaFamily(
    name="tests-user-separable", problem_class=UserSeparable, record=UserSeparableRecord,
    build=lambda problem: UserSeparableRecord(float(problem.p), readonly(problem.c)),
    primitives={"grad_x_f": _grad_x_f, "grad_y_f": _grad_y_f, "grad_x_g": _grad_x_g,
                "grad_y_g": _grad_y_g, "hvp": _hvp, "jvp": _jvp},
))
