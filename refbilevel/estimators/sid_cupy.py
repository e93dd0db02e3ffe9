"""SID on a GPU with CuPy (SID Alg. 1; docs/sid_bsgm.rst §4.2; docs/design.rst §Backends).

The arithmetic runs on the device over the replica axis, one batched step at a time; the
array module ``xp`` is taken from the inputs (:func:`_sid_xp` works with NumPy too, which
is how its logic is tested on machines without a GPU).

Noise:

* ``noise="host"`` (default): drawn on the host through the oracle, with the same
  Generator and in exactly the order of the NumPy reference (see
  :mod:`refbilevel.estimators.sid`), then copied to the device. Results agree with the
  reference up to float64 summation order (claim X4: within tolerance on host noise).
* ``noise="device"``: drawn on the device by a CuPy generator seeded from the oracle's
  Generator (one 64-bit integer drawn from it). Same law, different numbers: agreement
  with the reference is statistical only (claim X4).

CuPy is imported lazily, so this module imports (and registers) without it.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from refbilevel.backends import register, require_backend
from refbilevel.estimators.result import Estimate
from refbilevel.estimators.sid import prepare_sid_inputs
from refbilevel.oracles.contraction import (
    ContractionCounts,
    ContractionOracle,
    grad_E_values,
    phi_map_values,
    vjp_lam_values,
    vjp_w_values,
)

NOISE_SOURCES = ("host", "device")


class _HostNoise:
    """Standard-normal blocks from the oracle's Generator, in the reference's order."""

    def __init__(self, xp, oracle: ContractionOracle):
        self.xp, self.oracle = xp, oracle

    def zeta(self, R: int, parts: str):
        z = self.oracle.draw_zeta(R, parts)
        xp = self.xp
        return tuple(None if a is None else xp.asarray(a) for a in (z.Z, z.Y, z.eps))

    def xi(self, R: int):
        return self.xp.asarray(self.oracle.draw_xi(R))


class _DeviceNoise:
    """Standard normals drawn on the device (same law as the host noise)."""

    def __init__(self, xp, oracle: ContractionOracle):
        self.xp, self.oracle = xp, oracle
        seed = int(oracle.rng.integers(0, 2**63 - 1))
        self.gen = xp.random.default_rng(seed)
        D = oracle.data
        self.D = D
        self.xi_factor = xp.asarray(oracle.xi_factor)

    def zeta(self, R: int, parts: str):
        D, g, d, n = self.D, self.gen, self.oracle.d, self.oracle.n
        self.oracle.counts.add("zeta")
        Z = D.s_Z * g.standard_normal((R, d, d)) if "Z" in parts and D.s_Z > 0 else None
        Y = D.s_Y * g.standard_normal((R, d, n)) if "Y" in parts and D.s_Y > 0 else None
        e = D.s_eps * g.standard_normal((R, d)) if "e" in parts and D.s_eps > 0 else None
        return Z, Y, e

    def xi(self, R: int):
        o = self.oracle
        o.counts.add("xi")
        if o.xi_mode == 0:
            return self.xp.zeros((R, o.d + o.n))
        u = self.gen.standard_normal((R, o.d + o.n))
        return u * self.xi_factor if o.xi_mode == 1 else u @ self.xi_factor.T


def device_data(xp, oracle: ContractionOracle) -> Any:
    """The oracle's problem data with its arrays on ``xp`` (the maps' arithmetic is the
    oracle's own, :func:`~refbilevel.oracles.contraction.phi_map_values` and friends)."""
    D = oracle.data
    return dataclasses.replace(D, **{f.name: xp.asarray(getattr(D, f.name))
                                     for f in dataclasses.fields(D)
                                     if isinstance(getattr(D, f.name), np.ndarray)})


def _sid_xp(xp, oracle: ContractionOracle, inp, noise) -> Any:
    """SID over R replicas with array module ``xp``; returns (R, n) in ``xp``.

    Same steps, conventions and floating-point order as the NumPy reference: the stochastic
    maps are the oracle's own arithmetic (refbilevel/oracles/contraction.py) on device data.
    """
    D = device_data(xp, oracle)
    lam = xp.asarray(inp.lam)
    eta = inp.eta
    R, d, n = inp.R, oracle.d, oracle.n
    w = xp.asarray(inp.w0).copy()
    for i in range(inp.t):  # LL, eq. (6)
        Z, Y, e = noise.zeta(R, "ZYe")
        w = (1.0 - eta[i]) * w + eta[i] * phi_map_values(D, w, lam, Z, Y, e)
    G1 = xp.zeros((R, d))
    G2 = xp.zeros((R, n))
    for _ in range(inp.J):  # mini-batch ∇E, same ξ for both blocks
        g1, g2 = grad_E_values(D, w, lam, noise.xi(R))
        G1 += g1
        G2 += g2
    G1 /= inp.J
    G2 /= inp.J
    v = xp.zeros((R, d))
    for i in range(inp.k):  # LS, eq. (7), index restarted, v_0 = 0
        Z, _, _ = noise.zeta(R, "Z")
        v = (1.0 - eta[i]) * v + eta[i] * (vjp_w_values(D, v, Z) + G1)
    acc = xp.zeros((R, n))
    for _ in range(inp.J):  # ∂₂Φ mini-batch
        _, Y, _ = noise.zeta(R, "Y")
        acc += vjp_lam_values(D, v, Y)
    return G2 + acc / inp.J


@register("estimator", "sid", "cupy")
def sid_cupy(oracle: ContractionOracle, lam: Any, t: int, k: int, J: int, *, steps: Any,
             w0: Any = None, replicas: int | None = None, noise: str = "host") -> Estimate:
    """SID, CuPy backend (SID Alg. 1; docs/sid_bsgm.rst §4.2). The value is returned as a
    NumPy array (copied back from the device) so that every backend returns the same type.
    """
    if noise not in NOISE_SOURCES:
        raise ValueError(f"noise must be one of {', '.join(NOISE_SOURCES)}; got {noise!r}")
    require_backend("cupy")
    import cupy as cp

    inp = prepare_sid_inputs(oracle, lam, t, k, J, steps, w0, replicas)
    before = oracle.counts.copy()
    src = _HostNoise(cp, oracle) if noise == "host" else _DeviceNoise(cp, oracle)
    g = cp.asnumpy(_sid_xp(cp, oracle, inp, src))
    counts = oracle.counts - before
    # the device-noise path counts samples itself; evaluations are counted here
    made = ContractionCounts(zeta=counts.zeta, xi=counts.xi, phi=inp.t, vjp_w=inp.k,
                             vjp_lam=inp.J, grad_E=inp.J)
    oracle.counts.add_counts(ContractionCounts(phi=inp.t, vjp_w=inp.k, vjp_lam=inp.J,
                                               grad_E=inp.J))
    return Estimate(value=np.asarray(g[0] if inp.squeeze else g), counts=made)
