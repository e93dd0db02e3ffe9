"""CuPy backend of the linear-system estimators (docs/fdehbo.rst §1; docs/baselines.rst §4, §6, §7).

Runs the NumPy reference's :func:`~refbilevel.estimators.linear_system.ls_sgd_core` and
:func:`~refbilevel.estimators.linear_system.cg_core` with the device's array module over a
:class:`~refbilevel.backends.cupy_oracle.DeviceOracle` and ``problem.on(xp)`` (the
family's own array-module code; lazy CuPy import; see
:mod:`refbilevel.estimators.neumann_cupy` for the noise modes).
"""

from __future__ import annotations

from refbilevel.backends.cupy_oracle import DeviceOracle, _cupy, device_batch
from refbilevel.backends.registry import register
from refbilevel.estimators._common import counts, require_oracle
from refbilevel.estimators.linear_system import (
    LinearSystemEstimate,
    cg_core,
    check_cg_args,
    check_sgd_args,
    ls_sgd_core,
    sgd_counts,
    soba_to_z,
    z_to_soba,
)


def _z0(xp, problem, z0, batch, convention):
    if z0 is None:
        return xp.zeros(batch + (problem.d_y,))
    _, _, vs, b = device_batch(problem, xp, xp.zeros(batch + (problem.d_x,)),
                               xp.zeros(batch + (problem.d_y,)), z0=(z0, problem.d_y))
    if b != batch:
        raise ValueError(f"z0 must broadcast to the replica axes {batch}")
    z = vs["z0"].copy()
    return soba_to_z(z) if convention == "-z" else z


def linear_system_sgd_device(oracle, x, y, steps, step_size, *, z0=None, radius=None,
                             variant="classical", fresh_rhs=False, convention="+z",
                             noise="host", device_rng=None, xp=None) -> LinearSystemEstimate:
    """Device path of linear_system_sgd on ``xp`` (default CuPy; numpy for CPU tests)."""
    require_oracle(oracle)
    xp = _cupy() if xp is None else xp
    steps, beta, radius, variant, convention = check_sgd_args(
        steps, step_size, radius, variant, convention)
    dev = DeviceOracle(oracle, xp, noise=noise, device_rng=device_rng)
    x, y, _, batch = device_batch(oracle.problem, xp, x, y)
    z = _z0(xp, oracle.problem, z0, batch, convention)
    value, z = ls_sgd_core(dev, x, y, z, steps, beta, radius, variant, bool(fresh_rhs), xp=xp)
    return LinearSystemEstimate(value=value, counts=sgd_counts(steps, variant, bool(fresh_rhs)),
                                z=z_to_soba(z) if convention == "-z" else z)


def linear_system_cg_device(problem, x, y, iters, *, tol=0.0, z0=None,
                            xp=None) -> LinearSystemEstimate:
    """Device path of linear_system_cg on ``xp`` (default CuPy)."""
    xp = _cupy() if xp is None else xp
    iters, tol = check_cg_args(iters, tol)
    dp = problem.on(xp)
    x, y, _, batch = device_batch(problem, xp, x, y)
    z = _z0(xp, problem, z0, batch, "+z")
    z, _, n = cg_core(dp, x, y, z, iters, tol, xp=xp)
    value = dp.grad_x_f(x, y) - dp.jvp_xy_g(x, y, z)
    return LinearSystemEstimate(value=value, z=z, counts=counts(
        grad_x_f=1, grad_y_f=1, hvp=n, jvp=1, samples=0))


@register("estimator", "linear_system_sgd", "cupy")
def linear_system_sgd_cupy(oracle, x, y, steps: int, step_size: float, *, z0=None,
                           radius: float | None = None, variant: str = "classical",
                           fresh_rhs: bool = False, convention: str = "+z",
                           noise: str = "host", device_rng=None) -> LinearSystemEstimate:
    """CuPy backend of :func:`refbilevel.estimators.linear_system.linear_system_sgd`."""
    return linear_system_sgd_device(oracle, x, y, steps, step_size, z0=z0, radius=radius,
                                    variant=variant, fresh_rhs=fresh_rhs,
                                    convention=convention, noise=noise, device_rng=device_rng)


@register("estimator", "linear_system_cg", "cupy")
def linear_system_cg_cupy(problem, x, y, iters: int, *, tol: float = 0.0,
                          z0=None) -> LinearSystemEstimate:
    """CuPy backend of :func:`refbilevel.estimators.linear_system.linear_system_cg`."""
    return linear_system_cg_device(problem, x, y, iters, tol=tol, z0=z0)
