"""Stochastic oracle with MATRIX noise on a quadratic lower level (docs/fdehbo.rst §10.1).

The sampled lower and upper levels are those of docs/fdehbo.rst §10.1:

    g(x, y; ζ) = g(x, y) + ½ yᵀ S_ζ y − yᵀ N_ζ x,    S_ζ = ½(E_ζ + E_ζᵀ),
    f(x, y; ξ) = f(x, y) + ξ_xᵀ x + ξ_yᵀ y,

with E_ζ (d_y × d_y) and N_ζ (d_y × d_x) of i.i.d. N(0, s²) entries and ξ = (ξ_x, ξ_y) of
i.i.d. N(0, σ_u²) entries (σ_u = ``sigma_upper``). For the §10.1 problem
g = ½yᵀHy − yᵀKx − hᵀy this is exactly g(x, y; ζ) = ½yᵀH_ζy − yᵀK_ζx − hᵀy with
H_ζ = H + ½(E_ζ + E_ζᵀ) and K_ζ = K + N_ζ; the problem's own derivatives give the H, K part
and the ζ-part is an exact additive correction, so H and K are never needed.

Derivatives of the sampled functions in the repository's conventions
(:mod:`refbilevel.problems.base`: ∇²_xy g is the d_x × d_y matrix of ∂²g/∂x_i∂y_j; the
problem's quadratic has ∇²_xy g = −Kᵀ):

    ∇_y g(·; ζ)      = ∇_y g + S y − N x          (∈ R^{d_y})
    ∇_x g(·; ζ)      = ∇_x g − Nᵀ y              (∈ R^{d_x})
    ∇²_yy g(·; ζ) v  = ∇²_yy g v + S v
    ∇²_xy g(·; ζ) v  = ∇²_xy g v − Nᵀ v           (∂²(−yᵀNx)/∂x_i∂y_j = −N_ji)
    ∇_x f(·; ξ)      = ∇_x f + ξ_x,   ∇_y f(·; ξ) = ∇_y f + ξ_y

(``f_u``/``gen_hvp``/``gen_hvp_T`` of UniBiO are ∇_y f, ∇²_yy g v, ∇²_yy g v at p = 2, the
only exponent a quadratic g has; S is symmetric so gen_hvp_T = gen_hvp.) All outputs are
unbiased and, at a fixed point, Gaussian with covariances

    ∇_y g: (s²/2)(‖y‖² I + y yᵀ) + s²‖x‖² I,   ∇_x g: s²‖y‖² I,
    HVP:   (s²/2)(‖v‖² I + v vᵀ),               JVP:   s²‖v‖² I,     ∇_x f, ∇_y f: σ_u² I

(Cov(S_ij, S_kl) = (s²/2)(δ_ik δ_jl + δ_il δ_jk)). Unlike additive noise, the noise of a
same-sample difference ∇_y g(x₁, y₁; ζ) − ∇_y g(x₂, y₂; ζ) = H_ζ(y₁ − y₂) − K_ζ(x₁ − x₂)
scales with the distance between the points (mean-squared smoothness), which is the regime
STORM and the finite differences of FdeHBO are analysed in (docs/fdehbo.rst §2, §3, §10.1).

Sample families and the random-number layout. There are two families, not one per kind:

* lower level, kinds ``grad_x_g``, ``grad_y_g``, ``hvp``, ``jvp``, ``gen_hvp``: one sample
  ζ = (E, N) is one standard-normal block z of D_ζ = d_y² + d_y·d_x numbers per replica,
  E = s · z[:d_y²].reshape(d_y, d_y) and N = s · z[d_y²:].reshape(d_y, d_x), both in C
  order (E[i, j] = s z[i d_y + j], N[i, k] = s z[d_y² + i d_x + k]);
* upper level, kinds ``grad_x_f``, ``grad_y_f``, ``f_u``: one sample ξ = (ξ_x, ξ_y) is one
  block of D_ξ = d_x + d_y numbers, ξ_x = σ_u z[:d_x], ξ_y = σ_u z[d_x:].

``draw(kind, batch_shape)`` returns the standard-normal block of kind's family, shape
``batch_shape + (D,)``, drawn as ONE ``rng.standard_normal(batch_shape + (D,))`` call (C
order, replicas first); a family with zero noise (s = 0 or σ_u = 0) consumes no random
numbers and returns zeros, as :class:`~refbilevel.oracles.gaussian.GaussianOracle` does.
Randomness comes only from the Generator passed in. Because every lower-level kind maps to
the same family, FdeHBO's ``draw("grad_y_g")``/``draw("grad_x_g")`` and FMBO's
``draw("hvp")``/``draw("jvp")`` consume the same random numbers, and one ζ serves ∇_y g,
∇_x g, the HVP and the JVP alike (``shares_samples = True``, as for the minibatch
:class:`~refbilevel.oracles.finite_sum.FiniteSumOracle`: one sample may be passed to
several kinds of one level).

Counting (as GaussianOracle): every evaluation adds one call of its kind (per replica);
every ``draw`` adds one to ``samples``; an evaluation without ``sample=`` draws first. The
sampled values :meth:`MatrixNoiseOracle.g_value` / :meth:`MatrixNoiseOracle.f_value` are a
diagnostic aid (tests) and count nothing.

Quadratic check. The construction is the §10.1 model only when g is quadratic in (x, y);
the constructor checks, at fixed deterministic probe points (no random numbers), that ∇_y g
and ∇_x g are affine in (x, y) (zero second differences, the same increments at two base
points) and raises ValueError naming ``problem`` otherwise.

Backends. The class subclasses GaussianOracle only so that the algorithms' isinstance checks
(e.g. :func:`refbilevel.algorithms.fdehbo.check_storm_args`) accept it; it has no per-kind
additive std. Its ``noise`` attribute therefore raises
:class:`~refbilevel.backends.registry.NotImplementedOnBackendError`: every Numba/CuPy
wrapper that reads ``oracle.noise`` to inject additive noise inside a kernel refuses it
instead of silently running additive noise (the FdeHBO/FMBO Numba wrapper rejects it
explicitly). Matrix noise runs on the NumPy backend.

Cost: O(d_y² + d_y·d_x) random numbers and flops per replica per sample/evaluation (dense E
and N); meant for the small test dimensions of §10.1.
"""

from __future__ import annotations

import numpy as np

from refbilevel.backends.registry import NotImplementedOnBackendError
from refbilevel.oracles.counters import ORACLE_KINDS, OracleCounts
from refbilevel.oracles.gaussian import GaussianOracle, NoiseConfig
from refbilevel.validation import require_batch_shape, require_range

__all__ = ["LOWER_KINDS", "UPPER_KINDS", "MatrixNoiseOracle"]

#: kinds whose sample is the lower-level ζ = (E, N)
LOWER_KINDS = ("grad_x_g", "grad_y_g", "hvp", "jvp", "gen_hvp")
#: kinds whose sample is the upper-level ξ = (ξ_x, ξ_y)
UPPER_KINDS = ("grad_x_f", "grad_y_f", "f_u")

#: relative tolerance of the quadratic check (exact arithmetic gives 0; rounding ~1e-15)
_QUAD_RTOL = 1e-8


def _probe(n: int, c: float) -> np.ndarray:
    """A fixed, generic, O(1) probe vector (deterministic: no random numbers)."""
    k = np.arange(1, n + 1, dtype=np.float64)
    return np.sin(c * k + 0.37 * c) + 0.25 * np.cos(1.7 * c * k)


def _lead(*arrays: np.ndarray) -> tuple[int, ...]:
    return np.broadcast_shapes(*(a.shape[:-1] for a in arrays))


class MatrixNoiseOracle(GaussianOracle):
    """Unbiased matrix-noise oracle over a problem with quadratic g (module docstring).

    Parameters
    ----------
    problem : a :class:`~refbilevel.problems.base.BilevelProblem` whose g is quadratic in
        (x, y), e.g. :class:`~refbilevel.problems.quadratic.StronglyConvexQuadratic`.
    s : standard deviation of the entries of E_ζ and N_ζ (lower-level matrix noise), >= 0.
    sigma_upper : standard deviation of the entries of ξ_x, ξ_y (upper-level noise), >= 0.
    rng : the ``numpy.random.Generator`` every sample is drawn from.
    """

    shares_samples = True

    def __init__(self, problem, s: float, sigma_upper: float, rng: np.random.Generator):
        # GaussianOracle.__init__ is not called: there is no per-kind NoiseConfig here.
        if not isinstance(rng, np.random.Generator):
            raise ValueError(
                "rng must be a numpy.random.Generator (randomness is always passed in), "
                f"got {type(rng).__name__}"
            )
        self.s = require_range("s", s, low=0.0)
        self.sigma_upper = require_range("sigma_upper", sigma_upper, low=0.0)
        _check_quadratic(problem)
        self.problem = problem
        self.rng = rng
        self.counts = OracleCounts()
        self.d_x, self.d_y = int(problem.d_x), int(problem.d_y)
        self.dim_lower = self.d_y * self.d_y + self.d_y * self.d_x
        self.dim_upper = self.d_x + self.d_y

    # ---- no additive per-kind std --------------------------------------------------------
    @property
    def noise(self) -> NoiseConfig:
        raise NotImplementedOnBackendError(
            "MatrixNoiseOracle has matrix noise (docs/fdehbo.rst §10.1), not a per-kind additive "
            "std: kernels that draw additive Gaussian noise from oracle.noise (the Numba and "
            "CuPy backends) cannot run it; matrix noise runs on the NumPy backend")

    @noise.setter
    def noise(self, value: NoiseConfig) -> None:
        raise AttributeError("MatrixNoiseOracle has no additive NoiseConfig; its noise "
                             "levels are the attributes s and sigma_upper")

    # ---- samples -------------------------------------------------------------------------
    def family(self, kind: str) -> str:
        """``"lower"`` (ζ = (E, N)) or ``"upper"`` (ξ = (ξ_x, ξ_y)) for an oracle kind."""
        if kind in LOWER_KINDS:
            return "lower"
        if kind in UPPER_KINDS:
            return "upper"
        raise ValueError(f"unknown oracle kind {kind!r}; allowed: {', '.join(ORACLE_KINDS)}")

    def _family_dim_std(self, fam: str) -> tuple[int, float]:
        if fam == "lower":
            return self.dim_lower, self.s
        return self.dim_upper, self.sigma_upper

    def draw(self, kind: str, batch_shape: tuple[int, ...]) -> np.ndarray:
        """One standard-normal sample of kind's family for a batch, shape
        ``batch_shape + (D,)`` (D = d_y² + d_y d_x lower, d_x + d_y upper; layout in the
        module docstring). A noise-free family consumes no random numbers (zeros)."""
        fam = self.family(kind)
        shape = require_batch_shape(batch_shape)
        self.counts.add("samples")
        dim, std = self._family_dim_std(fam)
        if std == 0.0:
            return np.zeros(shape + (dim,))
        return self.rng.standard_normal(shape + (dim,))

    def _sample(self, kind: str, sample, lead: tuple[int, ...]) -> np.ndarray:
        """The validated sample of ``kind`` for leading (replica) shape ``lead``."""
        fam = self.family(kind)
        dim, _ = self._family_dim_std(fam)
        if sample is None:
            return self.draw(kind, lead)
        arr = np.asarray(sample)
        want = lead + (dim,)
        if arr.shape != want:
            what = ("ζ = (E, N), d_y² + d_y·d_x" if fam == "lower" else "ξ = (ξ_x, ξ_y), d_x + d_y")
            raise ValueError(
                f"sample for {kind!r} must have shape {want} (one {fam}-level sample {what} "
                f"numbers per replica), got {arr.shape}")
        if arr.dtype.kind != "f":
            raise ValueError(f"sample for {kind!r} must be a float array (a standard-normal "
                             f"block from draw), got dtype {arr.dtype}")
        return arr

    def _lower(self, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(E, N) of a lower-level block z (..., D_ζ), scaled by s."""
        dy, dx = self.d_y, self.d_x
        lead = z.shape[:-1]
        E = self.s * z[..., : dy * dy].reshape(lead + (dy, dy))
        N = self.s * z[..., dy * dy:].reshape(lead + (dy, dx))
        return E, N

    def _upper(self, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(ξ_x, ξ_y) of an upper-level block z (..., D_ξ), scaled by σ_u."""
        return self.sigma_upper * z[..., : self.d_x], self.sigma_upper * z[..., self.d_x:]

    def matrices(self, sample: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(S, N) = (½(E + Eᵀ), N) of a lower-level sample: H_ζ = H + S, K_ζ = K + N."""
        z = np.asarray(sample, dtype=np.float64)
        if z.ndim < 1 or z.shape[-1] != self.dim_lower:
            raise ValueError(f"sample must have last axis {self.dim_lower} (a lower-level "
                             f"sample), got shape {z.shape}")
        E, N = self._lower(z)
        return 0.5 * (E + np.swapaxes(E, -1, -2)), N

    @staticmethod
    def _sym_apply(E: np.ndarray, v: np.ndarray) -> np.ndarray:
        """½(E + Eᵀ) v on the last axes."""
        return 0.5 * (np.einsum("...ij,...j->...i", E, v) + np.einsum("...ji,...j->...i", E, v))

    # ---- evaluations (the GaussianOracle interface) ----------------------------------------
    def _eval(self, kind: str, exact: np.ndarray, sample, noise) -> np.ndarray:
        self.counts.add(kind)
        z = self._sample(kind, sample, exact.shape[:-1])
        if self._family_dim_std(self.family(kind))[1] == 0.0:  # noise-free family: exact
            return exact
        return exact + noise(z)

    def grad_x_f(self, x, y, sample=None):
        exact = self.problem.grad_x_f(x, y)
        return self._eval("grad_x_f", exact, sample, lambda z: self._upper(z)[0])

    def grad_y_f(self, x, y, sample=None):
        exact = self.problem.grad_y_f(x, y)
        return self._eval("grad_y_f", exact, sample, lambda z: self._upper(z)[1])

    def f_u(self, x, y, sample=None):
        self._require_p2("f_u")
        exact = self.problem.f_u(x, y)
        return self._eval("f_u", exact, sample, lambda z: self._upper(z)[1])

    def grad_y_g(self, x, y, sample=None):
        exact = self.problem.grad_y_g(x, y)
        x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)

        def noise(z):
            E, N = self._lower(z)
            return self._sym_apply(E, y) - np.einsum("...ik,...k->...i", N, x)

        return self._eval("grad_y_g", exact, sample, noise)

    def grad_x_g(self, x, y, sample=None):
        exact = self.problem.grad_x_g(x, y)
        y = np.asarray(y, dtype=np.float64)

        def noise(z):
            _, N = self._lower(z)
            return -np.einsum("...ik,...i->...k", N, y)

        return self._eval("grad_x_g", exact, sample, noise)

    def hvp_yy_g(self, x, y, v, sample=None):
        exact = self.problem.hvp_yy_g(x, y, v)
        v = np.asarray(v, dtype=np.float64)
        return self._eval("hvp", exact, sample, lambda z: self._sym_apply(self._lower(z)[0], v))

    def jvp_xy_g(self, x, y, v, sample=None):
        exact = self.problem.jvp_xy_g(x, y, v)
        v = np.asarray(v, dtype=np.float64)
        return self._eval("jvp", exact, sample,
                          lambda z: -np.einsum("...ik,...i->...k", self._lower(z)[1], v))

    def gen_hvp(self, x, y, v, sample=None):
        self._require_p2("gen_hvp")
        exact = self.problem.gen_hvp(x, y, v)
        v = np.asarray(v, dtype=np.float64)
        return self._eval("gen_hvp", exact, sample,
                          lambda z: self._sym_apply(self._lower(z)[0], v))

    def gen_hvp_T(self, x, y, v, sample=None):
        self._require_p2("gen_hvp_T")
        exact = self.problem.gen_hvp_T(x, y, v)
        v = np.asarray(v, dtype=np.float64)  # S symmetric: the same correction as gen_hvp
        return self._eval("gen_hvp", exact, sample,
                          lambda z: self._sym_apply(self._lower(z)[0], v))

    def _require_p2(self, name: str) -> None:
        if getattr(self.problem, "p", 2.0) != 2.0:
            raise ValueError(f"{name} of MatrixNoiseOracle needs p = 2 (the generalized "
                             f"derivatives are the classical ones only there); "
                             f"problem has p = {self.problem.p:g}")

    # ---- sampled values (diagnostics/tests; count nothing) --------------------------------
    def g_value(self, x, y, sample) -> np.ndarray:
        """g(x, y; ζ) = g(x, y) + ½ yᵀ S y − yᵀ N x for a lower-level ``sample``, shape (...)."""
        exact = self.problem.g(x, y)
        x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
        lead = _lead(x, y)
        z = self._check_value_sample(sample, lead, self.dim_lower)
        S, N = self.matrices(z)
        quad = 0.5 * np.einsum("...i,...ij,...j->...", y, S, y)
        return exact + quad - np.einsum("...i,...ik,...k->...", y, N, x)

    def f_value(self, x, y, sample) -> np.ndarray:
        """f(x, y; ξ) = f(x, y) + ξ_xᵀ x + ξ_yᵀ y for an upper-level ``sample``, shape (...)."""
        exact = self.problem.f(x, y)
        x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
        z = self._check_value_sample(sample, _lead(x, y), self.dim_upper)
        xi_x, xi_y = self._upper(z)
        return exact + np.sum(xi_x * x, axis=-1) + np.sum(xi_y * y, axis=-1)

    @staticmethod
    def _check_value_sample(sample, lead, dim) -> np.ndarray:
        z = np.asarray(sample, dtype=np.float64)
        if z.shape != lead + (dim,):
            raise ValueError(f"sample must have shape {lead + (dim,)}, got {z.shape}")
        return z

    def __repr__(self) -> str:
        return (f"MatrixNoiseOracle({self.problem!r}, s={self.s:g}, "
                f"sigma_upper={self.sigma_upper:g})")


def _check_quadratic(problem) -> None:
    """ValueError naming ``problem`` unless ∇_y g and ∇_x g are affine in (x, y)."""
    need = ("d_x", "d_y", "grad_x_g", "grad_y_g", "hvp_yy_g", "jvp_xy_g", "grad_x_f",
            "grad_y_f", "g", "f")
    missing = [m for m in need if not hasattr(problem, m)]
    if missing:
        raise ValueError(f"problem must be a BilevelProblem with a quadratic g; "
                         f"{type(problem).__name__} has no {', '.join(missing)}")
    dx, dy = int(problem.d_x), int(problem.d_y)
    x0, y0 = _probe(dx, 0.9), _probe(dy, 1.3)
    x1, y1 = _probe(dx, 2.1), _probe(dy, 0.7)
    ux, uy = _probe(dx, 1.1), _probe(dy, 1.9)
    bad = []
    with np.errstate(all="ignore"):
        for name in ("grad_y_g", "grad_x_g"):
            fun = getattr(problem, name)
            try:
                a0, ap, am = fun(x0, y0), fun(x0 + ux, y0 + uy), fun(x0 - ux, y0 - uy)
                b0, bp = fun(x1, y1), fun(x1 + ux, y1 + uy)
            except (ValueError, FloatingPointError, ZeroDivisionError):
                bad.append(f"{name} failed at the probe points")
                continue
            vals = np.stack([a0, ap, am, b0, bp])
            scale = 1.0 + float(np.max(np.abs(vals))) if np.all(np.isfinite(vals)) else np.inf
            second = float(np.max(np.abs(ap + am - 2.0 * a0)))  # 0 for an affine map
            shift = float(np.max(np.abs((bp - b0) - (ap - a0))))  # same increment elsewhere
            if not (max(second, shift) <= _QUAD_RTOL * scale):
                bad.append(f"{name} is not affine in (x, y) (second difference "
                           f"{second:.3g}, increment mismatch {shift:.3g})")
    if bad:
        raise ValueError(
            f"problem must have g quadratic in (x, y) for matrix noise (docs/fdehbo.rst §10.1); "
            f"{type(problem).__name__}: {'; '.join(bad)}")
