"""The oracle on a GPU array module (CuPy), for the estimators' "cupy" backend.

The problem itself needs no device version: each family writes its mathematics once with
its array module ``self.xp`` (:mod:`refbilevel.array_module`), and ``problem.on(cupy)`` is
the same problem with its parameters on the device (inputs not re-validated there; the
estimator validates once, :func:`device_batch`). A family that computes with NumPy only is
refused with :class:`~refbilevel.backends.registry.NotImplementedOnBackendError`.

- :class:`DeviceOracle` is a :class:`~refbilevel.oracles.gaussian.GaussianOracle` over
  ``problem.on(xp)`` (same method names, ``draw`` + ``sample=``, the same counters object,
  additive N(0, std²) noise):

  * ``noise="host"`` draws every noise block from the oracle's NumPy Generator, in the
    reference's order and shapes, and copies it to the device: the device run then agrees
    with the NumPy reference to rounding (claim X4, "within tolerance on host-generated
    noise");
  * ``noise="device"`` draws on the device from ``device_rng`` (a ``cupy.random.Generator``;
    by default one seeded from a single 63-bit draw of the oracle's Generator, so runs stay
    reproducible from the run seed): same distribution, different numbers (claim X4,
    "statistically on device noise"). Integer draws (the randomized Neumann truncation q̂)
    always come from the host Generator.

With ``xp = numpy`` the oracle runs on the CPU; the tests use that to exercise the device
code path on machines without CuPy.
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


class DeviceOracle(GaussianOracle):
    """GaussianOracle's interface over ``problem.on(xp)`` (see the module docstring).

    The evaluations, counting and same-sample handling are GaussianOracle's own (they use
    only array arithmetic, so they run on device arrays); only the noise draw differs: host
    noise copied to the device, or device-generated noise."""

    def __init__(self, oracle, xp, *, noise: str = "host", device_rng=None):
        if noise not in ("host", "device"):
            raise ValueError(f"noise must be 'host' or 'device'; got {noise!r}")
        super().__init__(oracle.problem.on(xp), oracle.noise, oracle.rng)
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
