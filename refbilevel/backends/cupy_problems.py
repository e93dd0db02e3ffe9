"""Problems and oracles on a GPU array module (CuPy), for the estimators' "cupy" backend.

The problem classes compute with NumPy (their validation calls ``np.asarray``, which CuPy
arrays refuse), so the CuPy backend needs device versions of the oracle primitives. This
module provides them, array-module generic:

- :class:`DeviceProblem` copies a problem's parameters (c, A, B, the quadratic's spectral
  factors) to the array module ``xp`` once and exposes the problem's public derivative
  methods (grad_x_f, ..., hvp_yy_g, jvp_xy_g, f_u, gen_hvp, gen_hvp_T) on batch-broadcast
  ``xp`` arrays, with the same formulas as the NumPy classes (problems/*.py). Inputs are not
  re-validated here; the estimator validates once.
- :class:`DeviceOracle` is a :class:`~refbilevel.oracles.gaussian.GaussianOracle` (same
  method names, ``draw`` + ``sample=``, the same counters object, additive N(0, std²) noise):

  * ``noise="host"`` draws every noise block from the oracle's NumPy Generator, in the
    reference's order and shapes, and copies it to the device: the device run then agrees
    with the NumPy reference to rounding (claim X4, "within tolerance on host-generated
    noise");
  * ``noise="device"`` draws on the device from ``device_rng`` (a ``cupy.random.Generator``;
    by default one seeded from a single 63-bit draw of the oracle's Generator, so runs stay
    reproducible from the run seed): same distribution, different numbers (claim X4,
    "statistically on device noise"). Integer draws (the randomized Neumann truncation q̂)
    always come from the host Generator.

With ``xp = numpy`` both classes run on the CPU; the tests use that to exercise the device
code path on machines without CuPy.

Supported problem classes: as in :mod:`refbilevel.backends.numba_problems`.
"""

from __future__ import annotations

import numpy as np

from refbilevel.oracles.counters import ORACLE_KINDS
from refbilevel.oracles.gaussian import GaussianOracle


def _cupy():
    """Import CuPy lazily (the module must import without it)."""
    from refbilevel.backends.registry import require_backend

    require_backend("cupy")
    import cupy

    return cupy


class _Basis:
    """Q v for a dense orthogonal Q or a Householder reflection I - 2uuᵀ (quadratic.py)."""

    def __init__(self, basis, xp):
        from refbilevel.problems.quadratic import HouseholderBasis

        self.xp = xp
        self.householder = isinstance(basis, HouseholderBasis)
        self.M = xp.asarray(basis.u if self.householder else basis.Q)

    def apply(self, v):
        if self.householder:
            return v - 2.0 * (v @ self.M)[..., None] * self.M
        return v @ self.M.T

    def apply_T(self, v):
        if self.householder:
            return self.apply(v)
        return v @ self.M


class DeviceProblem:
    """Device copies of a problem's derivative methods (see the module docstring)."""

    def __init__(self, problem, xp):
        from refbilevel.backends.registry import NotImplementedOnBackendError
        from refbilevel.problems.quadratic import StronglyConvexQuadratic
        from refbilevel.problems.unibio_example3 import UniBiOExample3
        from refbilevel.problems.uniformly_convex import (
            NonSeparableUniformlyConvex,
            SeparableUniformlyConvex,
        )

        self.problem = problem
        self.xp = xp
        self.d_x, self.d_y, self.p = problem.d_x, problem.d_y, problem.p
        cls = type(problem)
        if cls is UniBiOExample3:
            self.family = "example3"
        elif cls is SeparableUniformlyConvex:
            self.family = "separable"
            self.c = xp.asarray(problem.c)
        elif cls is NonSeparableUniformlyConvex:
            self.family = "nonseparable"
            self.c, self.A, self.B = (xp.asarray(a) for a in (problem.c, problem.A, problem.B))
            self.rho = problem.rho
        elif cls is StronglyConvexQuadratic:
            self.family = "quadratic"
            self.QH = _Basis(problem.H.basis, xp)
            self.QL, self.QR = _Basis(problem.K.left, xp), _Basis(problem.K.right, xp)
            self.QF = _Basis(problem.F.basis, xp)
            self.eig_H = xp.asarray(problem.H.eigenvalues)
            self.sv = xp.asarray(problem.K.singular_values)
            self.eig_F = xp.asarray(problem.F.eigenvalues)
            self.h, self.y_ref, self.r = (xp.asarray(a) for a in
                                          (problem.h, problem.y_ref, problem.r))
            self.rho = problem.rho
        else:
            raise NotImplementedOnBackendError(
                f"the cupy backend has no device version of problem class {cls.__name__}; "
                "supported: UniBiOExample3, SeparableUniformlyConvex, "
                "NonSeparableUniformlyConvex, StronglyConvexQuadratic"
            )

    # ---- element-wise helpers (refbilevel/power_map.py) --------------------------------
    def _jac(self, y):
        return (self.p - 1.0) * self.xp.abs(y) ** (self.p - 2.0)

    def _pm(self, y):
        return self.xp.sign(y) * self.xp.abs(y) ** (self.p - 1.0)

    def _ex3_fu(self, y):
        u = self._pm(y)
        return self.xp.where(self.xp.abs(u) <= 0.5 * np.pi, self.xp.cos(u), 0.0)

    # ---- quadratic factors (quadratic.py) ----------------------------------------------
    def _Hv(self, v):
        return self.QH.apply(self.eig_H * self.QH.apply_T(v))

    def _Fv(self, v):
        return self.QF.apply(self.eig_F * self.QF.apply_T(v))

    def _pad(self, z, d):
        if z.shape[-1] == d:
            return z
        out = self.xp.zeros(z.shape[:-1] + (d,))
        out[..., : z.shape[-1]] = z
        return out

    def _Kx(self, x):
        k = self.sv.shape[0]
        return self.QL.apply(self._pad(self.QR.apply_T(x)[..., :k] * self.sv, self.d_y))

    def _KTy(self, y):
        k = self.sv.shape[0]
        return self.QR.apply(self._pad(self.QL.apply_T(y)[..., :k] * self.sv, self.d_x))

    def _bcast(self, a, like, dim):
        return self.xp.broadcast_to(a, like.shape[:-1] + (dim,)).copy()

    # ---- the primitives -----------------------------------------------------------------
    def grad_x_f(self, x, y):
        if self.family == "nonseparable":
            return self.rho * x
        if self.family == "quadratic":
            return self.rho * x + self.r
        return self.xp.zeros(y.shape[:-1] + (self.d_x,))

    def grad_y_f(self, x, y):
        if self.family == "example3":
            return self._ex3_fu(y) * self._jac(y)
        if self.family in ("separable", "nonseparable"):
            return self.c * self._jac(y)
        return self._Fv(y - self.y_ref)

    def grad_x_g(self, x, y):
        if self.family in ("example3", "separable"):
            return -y * self.xp.cos(x)
        if self.family == "nonseparable":
            return -y @ self.B.T
        return -self._KTy(y)

    def grad_y_g(self, x, y):
        if self.family in ("example3", "separable"):
            return self._pm(y) - self.xp.sin(x)
        if self.family == "nonseparable":
            return self._pm(y) + y @ self.A - x @ self.B
        return self._Hv(y) - self._Kx(x) - self.h

    def hvp_yy_g(self, x, y, v):
        if self.family in ("example3", "separable"):
            return self._jac(y) * v
        if self.family == "nonseparable":
            return self._jac(y) * v + v @ self.A
        return self._Hv(v)

    def jvp_xy_g(self, x, y, v):
        if self.family in ("example3", "separable"):
            return -self.xp.cos(x) * v
        if self.family == "nonseparable":
            return -v @ self.B.T
        return -self._KTy(v)

    def f_u(self, x, y):
        if self.family == "example3":
            return self._ex3_fu(y)
        if self.family in ("separable", "nonseparable"):
            return self._bcast(self.c, y, self.d_y)
        return self.grad_y_f(x, y)

    def gen_hvp(self, x, y, v):
        if self.family == "nonseparable":
            return self.hvp_yy_g(x, y, v / self._jac(y))
        if self.family == "quadratic":
            return self._Hv(v)
        return v.copy()

    def gen_hvp_T(self, x, y, v):
        if self.family == "nonseparable":
            return self.hvp_yy_g(x, y, v) / self._jac(y)
        return self.gen_hvp(x, y, v)


class DeviceOracle(GaussianOracle):
    """GaussianOracle's interface over a :class:`DeviceProblem` (see the module docstring).

    The evaluations, counting and same-sample handling are GaussianOracle's own (they use
    only array arithmetic, so they run on device arrays); only the noise draw differs: host
    noise copied to the device, or device-generated noise."""

    def __init__(self, oracle, xp, *, noise: str = "host", device_rng=None):
        if noise not in ("host", "device"):
            raise ValueError(f"noise must be 'host' or 'device'; got {noise!r}")
        # DeviceProblem is duck-typed: the derivative methods of a BilevelProblem, on device
        super().__init__(DeviceProblem(oracle.problem, xp),  # type: ignore[arg-type]
                         oracle.noise, oracle.rng)
        self.host = oracle
        self.xp = xp
        self.counts = oracle.counts  # shared: the oracle layer counts every call
        self.mode = noise
        if noise == "device" and device_rng is None:
            seed = int(oracle.rng.integers(2**63 - 1))
            device_rng = (xp.random.default_rng(seed))
        self.device_rng = device_rng

    def draw(self, kind: str, batch_shape):
        if kind not in ORACLE_KINDS:
            raise ValueError(f"unknown oracle kind {kind!r}; allowed: {', '.join(ORACLE_KINDS)}")
        self.counts.add("samples")
        dim = self.problem.d_x if kind in ("grad_x_f", "grad_x_g", "jvp") else self.problem.d_y
        shape = tuple(batch_shape) + (dim,)
        if getattr(self.noise, kind) == 0.0:
            return self.xp.zeros(shape)
        if self.mode == "host":
            return self.xp.asarray(self.rng.standard_normal(shape))
        return self.device_rng.standard_normal(shape)


def device_batch(problem, xp, x, y, **vectors):
    """Validate and broadcast inputs on the array module ``xp`` (the device analogue of
    estimators._common.batch_xy): float64, last axis = dimension, finite, broadcastable
    replica axes. Returns (x, y, {name: array}, batch)."""
    def conv(name, a, dim):
        a = xp.asarray(a, dtype=xp.float64)
        if dim == 1 and a.ndim == 0:
            a = a.reshape(1)
        if a.ndim == 0 or a.shape[-1] != dim:
            raise ValueError(f"{name} must have shape (..., {dim}) (last axis = dimension "
                             f"{dim}), got shape {a.shape}")
        if not bool(xp.all(xp.isfinite(a))):
            raise ValueError(f"{name} must be finite")
        return a

    arrays = {"x": conv("x", x, problem.d_x), "y": conv("y", y, problem.d_y)}
    arrays.update({k: conv(k, v, d) for k, (v, d) in vectors.items()})
    try:
        batch = np.broadcast_shapes(*(a.shape[:-1] for a in arrays.values()))
    except ValueError:
        shapes = ", ".join(f"{k} {a.shape}" for k, a in arrays.items())
        raise ValueError(
            f"the leading (replica) axes of the inputs must broadcast; got {shapes}"
        ) from None
    out = {k: xp.broadcast_to(a, batch + a.shape[-1:]) for k, a in arrays.items()}
    return out.pop("x"), out.pop("y"), out, batch
