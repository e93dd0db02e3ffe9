"""CuPy backend of the finite-difference products and estimators (FdeHBO eqs. (8), (9),
(11); docs/fdehbo.rst §2).

Runs the NumPy reference's :func:`~refbilevel.estimators.finite_difference.fd_product_core`
with the device's array module over a
:class:`~refbilevel.backends.cupy_oracle.DeviceOracle` (lazy CuPy import; the shared
sample is drawn once with ``draw`` and passed as ``sample=``, as in the reference).
"""

from __future__ import annotations

from refbilevel.backends.cupy_oracle import DeviceOracle, _cupy, device_batch
from refbilevel.backends.registry import register
from refbilevel.estimators._common import counts, require_oracle, require_positive
from refbilevel.estimators.finite_difference import fd_product_core
from refbilevel.estimators.result import Estimate


def fd_device(name, oracle, x, y, v, delta, *, noise="host", device_rng=None,
              xp=None) -> Estimate:
    """Device path of fd_hvp / fd_jvp / fd_hypergradient / fd_ls_gradient on ``xp``."""
    require_oracle(oracle)
    xp = _cupy() if xp is None else xp
    delta = require_positive("delta", delta)
    problem = oracle.problem
    x, y, vs, _ = device_batch(problem, xp, x, y, v=(v, problem.d_y))
    v = vs["v"]
    dev = DeviceOracle(oracle, xp, noise=noise, device_rng=device_rng)
    if name == "fd_hvp":
        return Estimate(value=fd_product_core(dev, x, y, v, delta, "grad_y_g"),
                        counts=counts(grad_y_g=2, samples=1))
    if name == "fd_jvp":
        return Estimate(value=fd_product_core(dev, x, y, v, delta, "grad_x_g"),
                        counts=counts(grad_x_g=2, samples=1))
    if name == "fd_hypergradient":
        gx = dev.grad_x_f(x, y)
        return Estimate(value=gx - fd_product_core(dev, x, y, v, delta, "grad_x_g"),
                        counts=counts(grad_x_f=1, grad_x_g=2, samples=2))
    if name == "fd_ls_gradient":
        ht = fd_product_core(dev, x, y, v, delta, "grad_y_g")
        return Estimate(value=ht - dev.grad_y_f(x, y),
                        counts=counts(grad_y_f=1, grad_y_g=2, samples=2))
    raise ValueError(f"unknown finite-difference estimator {name!r}")


@register("estimator", "fd_hvp", "cupy")
def fd_hvp_cupy(oracle, x, y, v, delta: float, *, noise: str = "host",
                device_rng=None) -> Estimate:
    """CuPy backend of :func:`refbilevel.estimators.finite_difference.fd_hvp`."""
    return fd_device("fd_hvp", oracle, x, y, v, delta, noise=noise, device_rng=device_rng)


@register("estimator", "fd_jvp", "cupy")
def fd_jvp_cupy(oracle, x, y, v, delta: float, *, noise: str = "host",
                device_rng=None) -> Estimate:
    """CuPy backend of :func:`refbilevel.estimators.finite_difference.fd_jvp`."""
    return fd_device("fd_jvp", oracle, x, y, v, delta, noise=noise, device_rng=device_rng)


@register("estimator", "fd_hypergradient", "cupy")
def fd_hypergradient_cupy(oracle, x, y, v, delta: float, *, noise: str = "host",
                          device_rng=None) -> Estimate:
    """CuPy backend of :func:`refbilevel.estimators.finite_difference.fd_hypergradient`."""
    return fd_device("fd_hypergradient", oracle, x, y, v, delta, noise=noise,
                     device_rng=device_rng)


@register("estimator", "fd_ls_gradient", "cupy")
def fd_ls_gradient_cupy(oracle, x, y, v, delta: float, *, noise: str = "host",
                        device_rng=None) -> Estimate:
    """CuPy backend of :func:`refbilevel.estimators.finite_difference.fd_ls_gradient`."""
    return fd_device("fd_ls_gradient", oracle, x, y, v, delta, noise=noise,
                     device_rng=device_rng)
