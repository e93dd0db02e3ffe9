"""The stochastic oracle of the linear-contraction problem (docs/sid_bsgm.rst §4.1, §14.1).

A sample ζ = (Z, Y, ε) has independent parts: Z ∈ R^{d×d} and Y ∈ R^{d×n} with i.i.d.
N(0, s_Z²) and N(0, s_Y²) entries, ε ~ N(0, s_ε² I_d). A sample ξ ~ N(0, Σ_ξ) lives in
R^{d+n}. Then (docs/sid_bsgm.rst §14.1, "Stochastic oracle")

    Φ(w, λ; ζ)     = (A+Z) w + (B+Y) λ + c + ε,
    ∂₁Φ(·; ζ)ᵀ v   = (A+Z)ᵀ v,          ∂₂Φ(·; ζ)ᵀ v = (B+Y)ᵀ v,
    ∇E(w, λ; ξ)    = ∇E(w, λ) + ξ       (first d coordinates → ∇₁, last n → ∇₂).

Everything is batched: leading axes of ``w``, ``lam``, ``v`` are replicas (docs/design.rst).

Random-number contract (the parity contract with the Numba kernel of
:mod:`refbilevel.estimators.sid_numba`): randomness comes only from the Generator passed in,
and only through :meth:`ContractionOracle.draw_zeta` and :meth:`ContractionOracle.draw_xi`.

* ``draw_zeta(batch, parts)`` makes exactly one call ``rng.standard_normal(batch + (m,))``
  (C order, replicas first). Each row of m numbers is laid out as
  ``[Z row-major (d·d) | Y row-major (d·n) | ε (d)]``, where a part is present only if it is
  requested in ``parts`` *and* its noise level is non-zero; then each part is multiplied by
  its standard deviation. If m = 0 nothing is drawn. An exact part is returned as ``None``
  and means zero.
* ``draw_xi(batch)`` makes exactly one call ``u = rng.standard_normal(batch + (d+n,))``
  unless Σ_ξ = 0 (then nothing is drawn and ξ = 0). ξ = u · σ elementwise when Σ_ξ is
  diagonal (σ = sqrt(diag Σ_ξ)), else ξ = u @ Lᵀ with L the lower Cholesky factor of Σ_ξ
  (or U diag(sqrt λ) for a singular Σ_ξ, from its eigendecomposition).

Only the parts a computation needs are drawn: the LS of SID uses Z only, the ∂₂Φ mini-batch
uses Y only. Because Z, Y and ε are independent within a sample (docs/sid_bsgm.rst §14.1), drawing
the
unused parts would change the random stream but not the law of any estimate.

Counters: per replica, as in :mod:`refbilevel.oracles.counters` (a call on a batch of R
replicas is one call of each replica's trajectory); ``zeta`` and ``xi`` count samples, the
others count oracle evaluations. SID uses t + k + J copies of ζ and J of ξ (docs/sid_bsgm.rst §4.2).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from refbilevel.sid_moments import problem_data
from refbilevel.validation import as_vector_batch

ZETA_PARTS = "ZYe"  # Z, Y, ε in draw order
CONTRACTION_COUNT_KINDS = ("zeta", "xi", "phi", "vjp_w", "vjp_lam", "grad_E")


@dataclass
class ContractionCounts:
    """Samples and oracle evaluations of the contraction oracle (per replica).

    ``zeta``/``xi``: independent samples drawn; ``phi``, ``vjp_w``, ``vjp_lam``, ``grad_E``:
    evaluations. ``samples`` = zeta + xi is Definition 15's sample count (docs/sid_bsgm.rst §11).
    """

    zeta: int = 0
    xi: int = 0
    phi: int = 0
    vjp_w: int = 0
    vjp_lam: int = 0
    grad_E: int = 0

    def add(self, kind: str, n: int = 1) -> None:
        if kind not in CONTRACTION_COUNT_KINDS:
            raise ValueError(f"unknown count kind {kind!r}; allowed: "
                             f"{', '.join(CONTRACTION_COUNT_KINDS)}")
        setattr(self, kind, getattr(self, kind) + n)

    @property
    def samples(self) -> int:
        return self.zeta + self.xi

    @property
    def total_calls(self) -> int:
        return self.phi + self.vjp_w + self.vjp_lam + self.grad_E

    def add_counts(self, other: ContractionCounts) -> None:
        """Add another record field by field (backends that count a whole run at once)."""
        self.zeta += other.zeta
        self.xi += other.xi
        self.phi += other.phi
        self.vjp_w += other.vjp_w
        self.vjp_lam += other.vjp_lam
        self.grad_E += other.grad_E

    def as_dict(self) -> dict[str, int]:
        return {kind: getattr(self, kind) for kind in CONTRACTION_COUNT_KINDS}

    def copy(self) -> ContractionCounts:
        return ContractionCounts(**self.as_dict())

    def __sub__(self, other: ContractionCounts) -> ContractionCounts:
        return ContractionCounts(*(getattr(self, k) - getattr(other, k)
                                   for k in CONTRACTION_COUNT_KINDS))


class ZetaSample(NamedTuple):
    """One ζ per replica: ``Z`` (..., d, d), ``Y`` (..., d, n), ``eps`` (..., d), already
    scaled by their standard deviations; ``None`` = exactly zero (exact part or not drawn).
    ``parts`` records which parts were requested, so that a computation needing a part that
    was not drawn fails instead of silently using zero."""

    Z: np.ndarray | None
    Y: np.ndarray | None
    eps: np.ndarray | None
    parts: str
    batch: tuple[int, ...]


def _batch_shape(batch: Any) -> tuple[int, ...]:
    if isinstance(batch, (int, np.integer)) and not isinstance(batch, bool):
        shape: tuple[int, ...] = (int(batch),)
    elif isinstance(batch, tuple) and all(isinstance(b, (int, np.integer)) for b in batch):
        shape = tuple(int(b) for b in batch)
    else:
        raise ValueError(f"batch must be an int or a tuple of ints, got {batch!r}")
    if any(b < 0 for b in shape):
        raise ValueError(f"batch sizes must be >= 0, got {shape}")
    return shape


def xi_factor(Sigma_xi: np.ndarray) -> tuple[int, np.ndarray]:
    """(mode, factor) turning standard normals into ξ ~ N(0, Σ_ξ).

    mode 0: Σ_ξ = 0 (nothing drawn); mode 1: diagonal, factor = sqrt(diag) (ξ = u·σ);
    mode 2: full, factor F with F Fᵀ = Σ_ξ (ξ = u @ Fᵀ).
    """
    sig = np.asarray(Sigma_xi, dtype=np.float64)
    if not np.any(sig):
        return 0, np.zeros(sig.shape[0])
    if np.count_nonzero(sig - np.diag(np.diagonal(sig))) == 0:
        diag = np.diagonal(sig)
        if np.any(diag < 0):
            raise ValueError("Sigma_xi must be positive semidefinite (negative diagonal)")
        return 1, np.sqrt(diag)
    try:
        return 2, np.linalg.cholesky(sig)
    except np.linalg.LinAlgError:
        vals, vecs = np.linalg.eigh(sig)
        if vals.min() < -1e-12 * max(1.0, vals.max()):
            raise ValueError(
                f"Sigma_xi must be positive semidefinite; smallest eigenvalue {vals.min():g}"
            ) from None
        return 2, vecs * np.sqrt(np.clip(vals, 0.0, None))


# ---- the stochastic maps' arithmetic, written once for NumPy and CuPy ---------------------
# Plain array arithmetic (operators and array methods only), so the CuPy path of SID
# (refbilevel/estimators/sid_cupy.py) runs these same lines on device copies of the data.
# Floating-point order is the Numba kernel's (see the methods below).
def phi_map_values(D: Any, w, lam, Z, Y, eps):
    """Φ(w, λ; ζ) = ((A w + Z w) + (B λ + Y λ)) + c + ε; Z, Y, eps may be None (not drawn)."""
    out = w @ D.A.T
    if Z is not None:
        out = out + (Z @ w[..., None])[..., 0]
    lt = lam @ D.B.T
    if Y is not None:
        lt = lt + (Y @ lam[..., None])[..., 0]
    out = out + lt + D.c
    if eps is not None:
        out = out + eps
    return out


def vjp_w_values(D: Any, v, Z):
    """∂₁Φ(w, λ; ζ)ᵀ v = Aᵀv + Zᵀv."""
    out = v @ D.A
    if Z is not None:
        out = out + (Z.swapaxes(-1, -2) @ v[..., None])[..., 0]
    return out


def vjp_lam_values(D: Any, v, Y):
    """∂₂Φ(w, λ; ζ)ᵀ v = Bᵀv + Yᵀv."""
    out = v @ D.B
    if Y is not None:
        out = out + (Y.swapaxes(-1, -2) @ v[..., None])[..., 0]
    return out


def grad_E_values(D: Any, w, lam, xi):
    """(∇₁E, ∇₂E) = (((P w + Q λ) + p) + ξ[:d], ((Qᵀ w + S λ) + s) + ξ[d:])."""
    g1 = w @ D.P.T + lam @ D.Q.T + D.p + xi[..., :D.d]
    g2 = w @ D.Q + lam @ D.S.T + D.s + xi[..., D.d:]
    return g1, g2


class ContractionOracle:
    """Stochastic oracle over a LinearContraction (docs/sid_bsgm.rst §4.1, §14.1).

    ``problem`` is a :class:`refbilevel.problems.contraction.LinearContraction` (or any
    object with its attributes A, B, c, P, Q, S, p, s, s_Z, s_Y, s_eps, Sigma_xi); ``rng`` is
    the Generator every draw comes from (see the module docstring for the draw order).
    """

    def __init__(self, problem: Any, rng: np.random.Generator):
        if not isinstance(rng, np.random.Generator):
            raise ValueError(
                "rng must be a numpy.random.Generator (randomness is always passed in), "
                f"got {type(rng).__name__}"
            )
        self.problem = problem
        self.data = problem_data(problem)
        self.rng = rng
        self.counts = ContractionCounts()
        D = self.data
        self.d, self.n = D.d, D.n
        self.xi_mode, self.xi_factor = xi_factor(D.Sigma_xi)
        # the Numba kernel reads a 2-D factor in every mode (diagonal: a column of stds)
        self.xi_factor_2d = np.ascontiguousarray(
            self.xi_factor if self.xi_mode == 2 else self.xi_factor.reshape(-1, 1))
        #: the problem data in the argument order of the Numba kernels (built once: at one
        #: replica the kernels' run time is comparable to Python attribute lookups)
        self.kernel_data = (D.A, D.B, D.c, D.P, D.Q, D.S, D.p, D.s, D.s_Z, D.s_Y, D.s_eps,
                            self.xi_mode, self.xi_factor_2d)

    # ---- sampling ----------------------------------------------------------------------
    def zeta_width(self, parts: str = ZETA_PARTS) -> int:
        """Standard normals per replica that ``draw_zeta(batch, parts)`` consumes."""
        D = self.data
        return ((D.d * D.d if "Z" in parts and D.s_Z > 0 else 0)
                + (D.d * D.n if "Y" in parts and D.s_Y > 0 else 0)
                + (D.d if "e" in parts and D.s_eps > 0 else 0))

    @property
    def xi_width(self) -> int:
        """Standard normals per replica that ``draw_xi`` consumes."""
        return 0 if self.xi_mode == 0 else self.d + self.n

    def draw_zeta(self, batch: Any, parts: str = ZETA_PARTS) -> ZetaSample:
        """One ζ per replica (one sample counted); see the module docstring for the order."""
        if not parts or any(ch not in ZETA_PARTS for ch in parts):
            raise ValueError(f"parts must be a non-empty subset of {ZETA_PARTS!r} "
                             f"(Z, Y, e=ε), got {parts!r}")
        shape = _batch_shape(batch)
        D = self.data
        d, n = D.d, D.n
        self.counts.add("zeta")
        m = self.zeta_width(parts)
        if m == 0:
            return ZetaSample(None, None, None, parts, shape)
        block = self.rng.standard_normal(shape + (m,))
        off = 0
        Z = Y = eps = None
        if "Z" in parts and D.s_Z > 0:
            Z = D.s_Z * block[..., off:off + d * d].reshape(shape + (d, d))
            off += d * d
        if "Y" in parts and D.s_Y > 0:
            Y = D.s_Y * block[..., off:off + d * n].reshape(shape + (d, n))
            off += d * n
        if "e" in parts and D.s_eps > 0:
            eps = D.s_eps * block[..., off:off + d]
        return ZetaSample(Z, Y, eps, parts, shape)

    def draw_xi(self, batch: Any) -> np.ndarray:
        """One ξ ~ N(0, Σ_ξ) per replica, shape batch + (d+n,) (one sample counted)."""
        shape = _batch_shape(batch)
        self.counts.add("xi")
        if self.xi_mode == 0:
            return np.zeros(shape + (self.d + self.n,))
        u = self.rng.standard_normal(shape + (self.d + self.n,))
        if self.xi_mode == 1:
            return u * self.xi_factor
        return u @ self.xi_factor.T

    # ---- evaluations -------------------------------------------------------------------
    def _check_sample(self, sample: ZetaSample | None, need: str, lead: tuple[int, ...],
                      parts: str) -> ZetaSample:
        if sample is None:
            return self.draw_zeta(lead, parts)
        if not isinstance(sample, ZetaSample):
            raise ValueError(f"sample must be a ZetaSample from draw_zeta, got "
                             f"{type(sample).__name__}")
        missing = [ch for ch in need if ch not in sample.parts]
        if missing:
            raise ValueError(f"sample lacks part(s) {''.join(missing)} (drawn with "
                             f"parts={sample.parts!r}); draw it with parts={need!r}")
        try:
            np.broadcast_shapes(sample.batch, lead)
        except ValueError:
            raise ValueError(f"sample batch {sample.batch} does not match the inputs' "
                             f"leading shape {lead}") from None
        return sample

    def phi_map(self, w: Any, lam: Any, sample: ZetaSample | None = None) -> np.ndarray:
        """Φ(w, λ; ζ) = (A+Z)w + (B+Y)λ + c + ε, shape (..., d) (docs/sid_bsgm.rst §14.1).

        Floating-point order (mirrored by the Numba kernel):
        ((A w + Z w) + (B λ + Y λ)) + c + ε.
        """
        D = self.data
        w = as_vector_batch("w", w, D.d)
        lam = as_vector_batch("lam", lam, D.n)
        lead = np.broadcast_shapes(w.shape[:-1], lam.shape[:-1])
        sample = self._check_sample(sample, "ZYe", lead, ZETA_PARTS)
        self.counts.add("phi")
        return phi_map_values(D, w, lam, sample.Z, sample.Y, sample.eps)

    def vjp_w(self, w: Any, lam: Any, v: Any, sample: ZetaSample | None = None) -> np.ndarray:
        """∂₁Φ(w, λ; ζ)ᵀ v = Aᵀv + Zᵀv, shape (..., d)."""
        D = self.data
        as_vector_batch("w", w, D.d)
        as_vector_batch("lam", lam, D.n)
        v = as_vector_batch("v", v, D.d)
        sample = self._check_sample(sample, "Z", v.shape[:-1], "Z")
        self.counts.add("vjp_w")
        return vjp_w_values(D, v, sample.Z)

    def vjp_lam(self, w: Any, lam: Any, v: Any,
                sample: ZetaSample | None = None) -> np.ndarray:
        """∂₂Φ(w, λ; ζ)ᵀ v = Bᵀv + Yᵀv, shape (..., n)."""
        D = self.data
        as_vector_batch("w", w, D.d)
        as_vector_batch("lam", lam, D.n)
        v = as_vector_batch("v", v, D.d)
        sample = self._check_sample(sample, "Y", v.shape[:-1], "Y")
        self.counts.add("vjp_lam")
        return vjp_lam_values(D, v, sample.Y)

    def grad_E(self, w: Any, lam: Any,
               sample: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(∇₁E(w,λ;ξ), ∇₂E(w,λ;ξ)), both from the same ξ (docs/sid_bsgm.rst §4.1).

        ∇₁E = P w + Q λ + p + ξ[:d],  ∇₂E = Qᵀ w + S λ + s + ξ[d:]; floating-point order
        ((P w + Q λ) + p) + ξ₁ and ((Qᵀ w + S λ) + s) + ξ₂.
        """
        D = self.data
        w = as_vector_batch("w", w, D.d)
        lam = as_vector_batch("lam", lam, D.n)
        lead = np.broadcast_shapes(w.shape[:-1], lam.shape[:-1])
        if sample is None:
            sample = self.draw_xi(lead)
        else:
            sample = np.asarray(sample, dtype=np.float64)
            if sample.shape[-1:] != (D.d + D.n,):
                raise ValueError(f"xi sample must have shape (..., {D.d + D.n}), got "
                                 f"{sample.shape}")
        self.counts.add("grad_E")
        return grad_E_values(D, w, lam, sample)
