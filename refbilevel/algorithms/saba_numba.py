"""SABA as one explicit Numba kernel (Dagréou et al. 2022; docs/baselines.rst §5;
docs/design.rst §Backends). Same mathematics, step sizes, SAGA tables, sign convention (+z inside,
v = −z at the boundary) and random-number order as the NumPy reference
:func:`refbilevel.algorithms.saba.run_saba`:

- per iteration one inner ``draw_batch`` (∇_y G, HVP, JVP on that batch), then one outer
  ``draw_batch`` (∇_y F, ∇_x F), each drawn as the oracle draws it (``draw_units`` of
  :mod:`refbilevel.algorithms._baselines_numba`): sampler "uniform", one
  ``rng.integers(0, n/B, R)`` per draw; sampler "shuffled", one ``rng.random((R, n/B))`` and a
  stable per-row argsort at the start of every pass (nothing within a pass). Both samplers
  are supported and consume the Generator exactly as the reference; the shuffled pass state
  is read from and written back to the oracle, so later draws on it continue the same pass;
- ``init_memory`` "zero" or "full" (one pass over every batch at (x_0, y_0, z_0), counted as
  the reference counts it: n_inner/B calls of each inner kind, n_outer/B of each outer kind,
  no samples);
- ``mode`` "tuned" or "theory": the step sizes come from :func:`saba.saba_params`.

Oracle: a :class:`~refbilevel.oracles.finite_sum.FiniteSumOracle` over a FiniteSumQuadratic
(SABA has no Gaussian-oracle form: ValueError as in the reference); other finite-sum problems
raise NotImplementedOnBackendError. The per-sample sums run in another order than NumPy's
BLAS, so the agreement is to rounding, not bit for bit (tests/test_saba_numba.py measures it).
Divergence handling: see :mod:`refbilevel.algorithms._baselines_numba` (a replica is also
declared diverged when one of its fresh oracle values is non-finite, as the reference's
``freeze`` checks them too).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from refbilevel.algorithms import _baselines as B
from refbilevel.algorithms._baselines_numba import (
    GRAD_Y_G,
    HVP,
    JVP,
    RunLength,
    all_finite,
    call_grad_x_f,
    call_grad_y_f,
    call_grad_y_g,
    call_hvp,
    call_jvp,
    finish_trace,
    kernel_inputs,
    next_units,
    oracle_row,
    outer_row,
    start_records,
    store_record,
    store_sampler_state,
    unit_idx,
    use_threads,
)
from refbilevel.algorithms.saba import check_saba_inputs, saba_params
from refbilevel.algorithms.soba import initial_z
from refbilevel.algorithms.trace import Trace
from refbilevel.backends.numba_jit import njit, prange
from refbilevel.backends.numba_problems import jit_pair
from refbilevel.backends.numba_rows import borrowed_row as row
from refbilevel.backends.registry import register

INNER_KINDS = ("grad_y_g", "hvp", "jvp")
OUTER_KINDS = ("grad_y_f", "grad_x_f")


@njit(cache=True, error_model="numpy")
def _direction(M, mean, phi, r, u, w, d, new_mean):
    """SAGA direction d = (φ − M[u]) + M̄ and new mean M̄ + w (φ − M[u]) of replica r, with
    the reference's operations in the reference's order (saba._Saga.direction)."""
    for i in range(phi.shape[1]):
        diff = phi[r, i] - M[r, u, i]
        d[i] = diff + mean[r, i]
        new_mean[i] = mean[r, i] + w * diff


@njit(cache=True, error_model="numpy")
def _commit(M, mean, phi, r, u, new_mean):
    """M[u] ← φ, M̄ ← new mean for replica r (saba._Saga.commit)."""
    for i in range(phi.shape[1]):
        M[r, u, i] = phi[r, i]
        mean[r, i] = new_mean[i]


@njit(cache=True, error_model="numpy")
def _fill_mean(M, mean, phi, u, w):
    """init_memory="full": M[:, u] ← φ and M̄ ← M̄ + w φ for every replica (saba._fill)."""
    for r in range(phi.shape[0]):
        for i in range(phi.shape[1]):
            M[r, u, i] = phi[r, i]
            mean[r, i] = mean[r, i] + w * phi[r, i]


class SABADraws(NamedTuple):
    """One SABA iteration's random numbers for all replicas: the inner and outer batch ids
    (R,), drawn in the reference's order, their minibatches (R, B) and an empty noise block
    (a finite sum draws none)."""

    inner_unit: np.ndarray
    outer_unit: np.ndarray
    inner: np.ndarray
    outer: np.ndarray
    no_noise: np.ndarray


class SABARows(NamedTuple):
    """The replicas' state (X, Y, Z, act, diverged_at), their fresh oracle values and their
    SAGA tables (R, n_units, d) with weighted means (R, d), one pair per oracle kind."""

    X: np.ndarray
    Y: np.ndarray
    Z: np.ndarray
    act: np.ndarray
    div: np.ndarray
    GY: np.ndarray
    HV: np.ndarray
    CR: np.ndarray
    FY: np.ndarray
    FX: np.ndarray
    Mgy: np.ndarray
    Mhv: np.ndarray
    Mcr: np.ndarray
    Mfy: np.ndarray
    Mfx: np.ndarray
    mgy: np.ndarray
    mhv: np.ndarray
    mcr: np.ndarray
    mfy: np.ndarray
    mfx: np.ndarray


@njit(cache=True, error_model="numpy", inline="always")
def saba_draws(rng, P, R):
    """The inner then the outer batch of every replica, drawn as the oracle draws them."""
    ui = next_units(rng, P, False, R)
    uo = next_units(rng, P, True, R)
    bsz = P.batch_size
    return SABADraws(ui, uo, unit_idx(ui, bsz), unit_idx(uo, bsz), np.empty((R, 0)))


@njit(cache=True, error_model="numpy")
def saba_row(P, noise, d, s, r, t, rho, gamma, w_in, w_out):
    """Replica r's SABA iteration t: its five fresh oracle rows, the SAGA directions, the
    update and the table commits (or the freeze)."""
    x, y, z = row(s.X, r), row(s.Y, r), row(s.Z, r)
    dx, dy = x.shape[0], y.shape[0]
    nz = row(d.no_noise, r)
    oracle_row(GRAD_Y_G, P, noise, row(d.inner, r), nz, x, y, y, row(s.GY, r))
    oracle_row(HVP, P, noise, row(d.inner, r), nz, x, y, z, row(s.HV, r))
    oracle_row(JVP, P, noise, row(d.inner, r), nz, x, y, z, row(s.CR, r))
    outer_row(P, noise, row(d.outer, r), nz, nz, x, y, row(s.FY, r), row(s.FX, r))
    a, b = d.inner_unit[r], d.outer_unit[r]
    dgy, ngy, dhv, nhv = np.empty(dy), np.empty(dy), np.empty(dy), np.empty(dy)
    dfy, nfy, yn, zn = np.empty(dy), np.empty(dy), np.empty(dy), np.empty(dy)
    dcr, ncr, dfx, nfx = np.empty(dx), np.empty(dx), np.empty(dx), np.empty(dx)
    xn = np.empty(dx)
    _direction(s.Mgy, s.mgy, s.GY, r, a, w_in, dgy, ngy)
    _direction(s.Mhv, s.mhv, s.HV, r, a, w_in, dhv, nhv)
    _direction(s.Mcr, s.mcr, s.CR, r, a, w_in, dcr, ncr)
    _direction(s.Mfy, s.mfy, s.FY, r, b, w_out, dfy, nfy)
    _direction(s.Mfx, s.mfx, s.FX, r, b, w_out, dfx, nfx)
    for i in range(dx):
        xn[i] = x[i] - gamma * (dfx[i] - dcr[i])
    for i in range(dy):
        yn[i] = y[i] - rho * dgy[i]
        zn[i] = z[i] - rho * (dhv[i] - dfy[i])
    # the reference's freeze checks the new (x, y, z) and the five fresh values
    if (all_finite(xn) and all_finite(yn) and all_finite(zn) and all_finite(row(s.GY, r))
            and all_finite(row(s.HV, r)) and all_finite(row(s.CR, r)) and all_finite(row(s.FY, r))
            and all_finite(row(s.FX, r))):
        x[:] = xn
        y[:] = yn
        z[:] = zn
        _commit(s.Mgy, s.mgy, s.GY, r, a, ngy)
        _commit(s.Mhv, s.mhv, s.HV, r, a, nhv)
        _commit(s.Mcr, s.mcr, s.CR, r, a, ncr)
        _commit(s.Mfy, s.mfy, s.FY, r, b, nfy)
        _commit(s.Mfx, s.mfx, s.FX, r, b, nfx)
    else:  # frozen at its last finite state; its tables are no longer written
        s.act[r] = False
        s.div[r] = t


class SABASteps(NamedTuple):
    """SABA's steps rho (y, z) and gamma (x), and whether the SAGA tables start full."""

    rho: float
    gamma: float
    full_memory: bool


def _saba_kernel(P, noise, rng, X, Y, Z, run, steps):
    """T SABA iterations in place on X (R, d_x), Y, Z (R, d_y) (+z convention); P is a
    FiniteSumRecord (SABA is finite-sum only: no noise blocks), whose shuffled-sampler pass
    state is advanced in place. Returns (X records, Y records, diverged_at)."""
    T, every = run.T, run.every
    rho, gamma, full = steps.rho, steps.gamma, steps.full_memory
    bsz = P.batch_size
    nu_in, nu_out = P.n_inner // bsz, P.n_outer // bsz
    w_in, w_out = bsz / P.n_inner, bsz / P.n_outer
    R, dx = X.shape
    dy = Y.shape[1]
    # SAGA tables (R, n_units, d) and their weighted means (R, d), one pair per family
    Mgy = np.zeros((R, nu_in, dy))
    Mhv = np.zeros((R, nu_in, dy))
    Mcr = np.zeros((R, nu_in, dx))
    Mfy = np.zeros((R, nu_out, dy))
    Mfx = np.zeros((R, nu_out, dx))
    mgy = np.zeros((R, dy))
    mhv = np.zeros((R, dy))
    mcr = np.zeros((R, dx))
    mfy = np.zeros((R, dy))
    mfx = np.zeros((R, dx))
    GY = np.zeros((R, dy))
    HV = np.zeros((R, dy))
    CR = np.zeros((R, dx))
    FY = np.zeros((R, dy))
    FX = np.zeros((R, dx))
    act = np.ones(R, dtype=np.bool_)
    if full:
        # one pass over the batches in the reference's order: every inner batch u = 0, 1, ...
        # (∇_y G, HVP, JVP), then every outer batch; no random numbers
        units = np.empty(R, dtype=np.int64)
        for u in range(nu_in):
            units[:] = u
            idx = unit_idx(units, bsz)
            call_grad_y_g(P, noise, rng, idx, X, Y, GY, act)
            call_hvp(P, noise, rng, idx, X, Y, Z, HV, act)
            call_jvp(P, noise, rng, idx, X, Y, Z, CR, act)
            _fill_mean(Mgy, mgy, GY, u, w_in)
            _fill_mean(Mhv, mhv, HV, u, w_in)
            _fill_mean(Mcr, mcr, CR, u, w_in)
        for u in range(nu_out):
            units[:] = u
            idx = unit_idx(units, bsz)
            call_grad_y_f(P, noise, rng, idx, X, Y, FY, act)
            call_grad_x_f(P, noise, rng, idx, X, Y, FX, act)
            _fill_mean(Mfy, mfy, FY, u, w_out)
            _fill_mean(Mfx, mfx, FX, u, w_out)
    Xr, Yr, div = start_records(T, every, X, Y)
    k = 1
    s = SABARows(X, Y, Z, act, div, GY, HV, CR, FY, FX, Mgy, Mhv, Mcr, Mfy, Mfx, mgy, mhv,
                 mcr, mfy, mfx)
    for t in range(1, T + 1):
        d = saba_draws(rng, P, R)
        for r in prange(R):
            if s.act[r]:
                saba_row(P, noise, d, s, r, t, rho, gamma, w_in, w_out)
        k = store_record(t, T, every, k, Xr, Yr, X, Y)
    return Xr, Yr, div


saba_kernel, saba_kernel_parallel = jit_pair(_saba_kernel)


@register("algorithm", "saba", "numba")
def run_saba_numba(oracle, x0, y0, *, T: int, mode: str = "tuned", step_size: float = 0.1,
                   outer_ratio: float = 1.0, init_memory: str = "zero", v0=None,
                   theory_constants: dict | None = None, record_every: int = 1,
                   seed: int | None = None) -> Trace:
    """Numba twin of :func:`refbilevel.algorithms.saba.run_saba` (same arguments, same random
    numbers from ``oracle.rng``, same Trace with ``backend == "numba"``)."""
    check_saba_inputs(oracle, init_memory)
    rho, gamma, params = saba_params(oracle, mode, step_size, outer_ratio, theory_constants)
    params["init_memory"] = init_memory
    T = B.iterations(T)
    x, y, R = B.start_points(oracle, x0, y0)
    z = initial_z(oracle, v0, R)
    every = B.recorder(oracle, R, record_every).record_every
    full = init_memory == "full"
    if T > 0 or full:
        # B must divide n_inner and n_outer (contiguous batches): the reference's draw_batch /
        # unit_batch raise this ValueError at their first call, i.e. only when there is one
        oracle.require_batches_divide()
    k = kernel_inputs(oracle, "saba", R, draws=T > 0 or full)
    nu_in, nu_out = oracle.n_units("inner"), oracle.n_units("outer")
    kernel = (saba_kernel_parallel if use_threads(k, x.shape[0], x.shape[1], y.shape[1])
              else saba_kernel)
    Xr, Yr, div = kernel(k.P, k.noise, oracle.rng, x, y, z, RunLength(T, every),
                         SABASteps(float(rho), float(gamma), full))
    store_sampler_state(oracle, k, R, T > 0)
    if full:  # the memory pass, counted before the record at t = 0 as in the reference
        for kind in INNER_KINDS:
            oracle.counts.add(kind, nu_in)
        for kind in OUTER_KINDS:
            oracle.counts.add(kind, nu_out)
    per = dict.fromkeys(INNER_KINDS + OUTER_KINDS, 1)
    per["samples"] = 2
    with np.errstate(over="ignore", invalid="ignore"):
        # metrics of huge-but-finite iterates may overflow to inf (not NaN): no warning, as in
        # the reference (which builds its trace inside the same errstate)
        return finish_trace(oracle, "saba", params, seed, T, every, Xr, Yr, div, per, v=-z)
