"""Linear-system hypergradient estimators (NumPy reference, batched over replicas).

Instead of a Neumann series, solve the linear system of the hypergradient by minimizing the
linear-system (LS) quadratic (docs/fdehbo.rst §1 eqs. (4)-(5); docs/baselines.rst §4, §6, §7)

    R(z) = ½ zᵀ ∇²_yy g z - zᵀ ∇_y f,   ∇R(z) = ∇²_yy g z - ∇_y f,   z* = [∇²_yy g]^{-1} ∇_y f,

and return ĝ = ∇_x F - ∇²_xy G z (Ghadimi-Wang with z in place of z*). With
``variant="generalized"`` the system is H^T z = f_u (UniBiO's H^{-T} form, docs/unibio.rst §1.6);
for p = 2 the two coincide.

Solvers:

- :func:`linear_system_sgd` — stochastic gradient steps on R (AmIGO's inner z-loop,
  docs/baselines.rst §7; SOBA's and MA-SOBA's z/v-update, §4, §6; FdeHBO's v-update,
  docs/fdehbo.rst §3): z <- Π_{B(0,r)}(z - beta (Ĥ z - b)), with an optional projection onto the
  ball of radius r (MA-SOBA, FdeHBO; r >= ||z*||, e.g. l_{f,0}/mu).
- :func:`linear_system_cg` — conjugate gradient on the exact products (deterministic
  reference; ∇²_yy g is symmetric positive definite, so only the classical system).
- :func:`linear_system_exact` — the exact solve (deterministic reference).

Sign convention. Internally z ≈ +[∇²_yy g]^{-1} ∇_y f and ĝ = ∇_x F - ∇²_xy G z (the "+z"
convention of stocBiO, AmIGO, MA-SOBA, BO-REP, FdeHBO; docs/baselines.rst §0.1). SOBA and SABA
carry v = -z and update v <- v - rho (Ĥ v + ∇_y F); with ``convention="-z"`` the warm start
``z0`` is read as SOBA's v and the returned ``z`` is SOBA's v. The conversion happens only
at this boundary (:func:`z_to_soba`, :func:`soba_to_z`); the iteration is the same.

Draw order of :func:`linear_system_sgd` (the Numba kernel reproduces it): ∇_x F, then
b = ∇_y F (or F_u) once (``fresh_rhs=False``, AmIGO: "fy fixed") or one fresh b per step
before that step's HVP (``fresh_rhs=True``, SOBA-like), the HVPs in order, the JVP.

Counts (per replica): 1 grad_x_f, 1 (or ``steps`` when fresh) grad_y_f/f_u, ``steps``
hvp/gen_hvp, 1 jvp; every call a fresh sample.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from refbilevel.backends.registry import register
from refbilevel.estimators._common import (
    batch_xy,
    counts,
    require_choice,
    require_oracle,
    require_positive,
    require_steps,
)
from refbilevel.estimators.result import Estimate
from refbilevel.projection import project_ball
from refbilevel.validation import require_range

CONVENTIONS = ("+z", "-z")
VARIANTS = ("classical", "generalized")


@dataclass
class LinearSystemEstimate(Estimate):
    """An :class:`Estimate` plus the linear-system iterate ``z`` (..., d_y), in the
    convention requested (warm start for the next outer iteration)."""

    z: np.ndarray | None = None


def z_to_soba(z):
    """SOBA/SABA's v = -z (docs/baselines.rst §0.1)."""
    return -z


def soba_to_z(v):
    """z = -v from SOBA/SABA's v (docs/baselines.rst §0.1)."""
    return -v


def check_sgd_args(steps, step_size, radius, variant, convention):
    steps = require_steps("steps", steps)
    step_size = require_positive("step_size", step_size)
    if radius is not None:
        radius = require_positive("radius", radius)
    variant = require_choice("variant", variant, VARIANTS)
    convention = require_choice("convention", convention, CONVENTIONS)
    return steps, step_size, radius, variant, convention


def initial_z(problem, z0, batch, convention):
    """The internal (+z) start: zeros, or z0 (read as SOBA's v when convention is "-z")."""
    from refbilevel.validation import as_vector_batch

    if z0 is None:
        return np.zeros(batch + (problem.d_y,))
    z = as_vector_batch("z0", z0, problem.d_y)
    try:
        shape = np.broadcast_shapes(z.shape[:-1], batch)
    except ValueError:
        shape = None
    if shape != batch:
        raise ValueError(f"z0 must broadcast to the replica axes {batch}; got shape {z.shape}")
    z = np.broadcast_to(z, batch + (problem.d_y,)).copy()
    return soba_to_z(z) if convention == "-z" else z


def sgd_counts(steps: int, variant: str, fresh_rhs: bool):
    gen = variant == "generalized"
    n_rhs = steps if fresh_rhs else 1
    return counts(grad_x_f=1, grad_y_f=0 if gen else n_rhs, f_u=n_rhs if gen else 0,
                  hvp=0 if gen else steps, gen_hvp=steps if gen else 0, jvp=1,
                  samples=2 + n_rhs + steps)


def ls_sgd_core(oracle, x, y, z, steps, beta, radius, variant, fresh_rhs, xp=np):
    """SGD on the LS quadratic, on validated inputs (xp = numpy or cupy; see the module
    docstring for the order of the oracle calls). Returns (ĝ, z) in the +z convention."""
    gen = variant == "generalized"
    gx = oracle.grad_x_f(x, y)
    rhs = oracle.f_u if gen else oracle.grad_y_f
    product = oracle.gen_hvp_T if gen else oracle.hvp_yy_g
    b = None if fresh_rhs else rhs(x, y)
    for _ in range(steps):
        if fresh_rhs:
            b = rhs(x, y)
        z = z - beta * (product(x, y, z) - b)
        if radius is not None:
            z = project_ball(z, radius, xp=xp)
    return gx - oracle.jvp_xy_g(x, y, z), z


@register("estimator", "linear_system_sgd", "numpy")
def linear_system_sgd(oracle, x, y, steps: int, step_size: float, *, z0=None,
                      radius: float | None = None, variant: str = "classical",
                      fresh_rhs: bool = False, convention: str = "+z") -> LinearSystemEstimate:
    """``steps`` SGD steps of size ``step_size`` on the LS quadratic, then ĝ = ∇_x F - ∇²_xy G z.

    Parameters
    ----------
    oracle : GaussianOracle (its Generator supplies every random number).
    x, y : (..., d_x), (..., d_y); leading axes are replicas and broadcast.
    steps : number of SGD steps (>= 0; 0 returns the warm start's hypergradient).
    step_size : beta > 0 (stable for beta < 2/L_y on exact products).
    z0 : warm start (..., d_y), zeros by default; in SOBA's v = -z when convention="-z".
    radius : project z onto the ball of this radius after every step (None = no projection).
    variant : "classical" (∇²_yy g z = ∇_y f) or "generalized" (H^T z = f_u).
    fresh_rhs : draw a fresh ∇_y F every step (SOBA) instead of once (AmIGO).
    convention : "+z" (default) or "-z" (SOBA's v) for z0 and the returned z.
    """
    require_oracle(oracle)
    problem = oracle.problem
    steps, beta, radius, variant, convention = check_sgd_args(
        steps, step_size, radius, variant, convention)
    x, y, batch = batch_xy(problem, x, y)
    z = initial_z(problem, z0, batch, convention)
    value, z = ls_sgd_core(oracle, x, y, z, steps, beta, radius, variant, bool(fresh_rhs))
    return LinearSystemEstimate(value=value, counts=sgd_counts(steps, variant, bool(fresh_rhs)),
                                z=z_to_soba(z) if convention == "-z" else z)


# ---- deterministic references ----------------------------------------------------------------
def cg_core(problem, x, y, z, iters, tol, xp=np):
    """Batched conjugate gradient on ∇²_yy g z = ∇_y f with exact products.

    Every replica runs its own CG; a replica stops (its z frozen) once ||r|| <= tol ||b||,
    r = 0, or the curvature pᵀAp is not positive. Products are evaluated on the batch until
    every replica has stopped. Returns (z, b, number of batched products).
    """
    b = problem.grad_y_f(x, y)
    r = b - problem.hvp_yy_g(x, y, z)
    n_products = 1
    p = r.copy()
    rr = xp.sum(r * r, axis=-1)
    stop = xp.sqrt(rr) <= tol * xp.sqrt(xp.sum(b * b, axis=-1))
    stop = stop | (rr == 0.0)
    for _ in range(iters):
        if bool(xp.all(stop)):
            break
        Ap = problem.hvp_yy_g(x, y, p)
        n_products += 1
        pAp = xp.sum(p * Ap, axis=-1)
        stop = stop | ~(pAp > 0.0)
        a = xp.where(stop, 0.0, rr / xp.where(stop, 1.0, pAp))
        z = z + a[..., None] * p
        r = r - a[..., None] * Ap
        rr_new = xp.sum(r * r, axis=-1)
        beta_cg = xp.where(stop, 0.0, rr_new / xp.where(stop, 1.0, rr))
        p = xp.where(stop[..., None], p, r + beta_cg[..., None] * p)
        rr = xp.where(stop, rr, rr_new)
        stop = stop | (xp.sqrt(rr) <= tol * xp.sqrt(xp.sum(b * b, axis=-1))) | (rr == 0.0)
    return z, b, n_products


def check_cg_args(iters, tol):
    return require_steps("iters", iters), require_range("tol", tol, low=0.0)


@register("estimator", "linear_system_cg", "numpy")
def linear_system_cg(problem, x, y, iters: int, *, tol: float = 0.0,
                     z0=None) -> LinearSystemEstimate:
    """Conjugate gradient (at most ``iters`` iterations, relative residual ``tol``) on
    ∇²_yy g z = ∇_y f with exact products, then ĝ = ∇_x f - ∇²_xy g z (deterministic).

    Takes the problem, not an oracle: a deterministic reference. The counts report the
    batched products evaluated (1 for the initial residual + one per iteration run).
    """
    iters, tol = check_cg_args(iters, tol)
    x, y, batch = batch_xy(problem, x, y)
    z = initial_z(problem, z0, batch, "+z")
    z, _, n = cg_core(problem, x, y, z, iters, tol)
    value = problem.grad_x_f(x, y) - problem.jvp_xy_g(x, y, z)
    return LinearSystemEstimate(value=value, z=z, counts=counts(
        grad_x_f=1, grad_y_f=1, hvp=n, jvp=1, samples=0))


@register("estimator", "linear_system_exact", "numpy")
def linear_system_exact(problem, x, y, *, variant: str = "classical") -> LinearSystemEstimate:
    """The exact solve z* (classical: [∇²_yy g]^{-1} ∇_y f; generalized: H^{-T} f_u) and
    ĝ = ∇_x f - ∇²_xy g z*: the exact surrogate ∇̄f(x, y) (docs/unibio.rst §3.4), = ∇phi at y*."""
    variant = require_choice("variant", variant, VARIANTS)
    x, y, _ = batch_xy(problem, x, y)
    if variant == "classical":
        z = problem.solve_hessian_yy(x, y, problem.grad_y_f(x, y))
    else:
        Ht = np.swapaxes(problem.generalized_hessian(x, y), -1, -2)
        Ht, rhs = np.broadcast_arrays(Ht, problem.f_u(x, y)[..., None])
        z = np.linalg.solve(Ht, rhs)[..., 0]
    value = problem.grad_x_f(x, y) - problem.jvp_xy_g(x, y, z)
    gen = variant == "generalized"
    return LinearSystemEstimate(value=value, z=z, counts=counts(
        grad_x_f=1, grad_y_f=0 if gen else 1, f_u=1 if gen else 0, jvp=1, samples=0))
