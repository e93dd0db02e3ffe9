"""Stochastic oracles with additive Gaussian noise over a closed-form problem.

Each oracle returns the exact quantity plus ``std * N(0, I)`` noise: unbiased, with
E||noise||² = std² · dim (the sigma² of the assumptions: docs/unibio.rst §2.3, docs/borep.rst §8
"Stochastic oracles", docs/fdehbo.rst §5), and light-tailed as the Epoch-SGD analysis needs
(docs/unibio.rst §2.3: sub-Gaussian LL gradient noise). ``std`` is per coordinate.

Randomness comes only from the Generator passed in. The noise of one call is drawn as one
``standard_normal(shape)`` block in C order, replicas first; the Numba kernels draw in the
same order, which is what makes NumPy ↔ Numba parity exact.

Same-sample evaluations (STORM corrections, central finite differences; docs/fdehbo.rst §2) pass
the standard-normal block of an earlier ``draw`` as ``sample=``; that counts a call but no
new sample.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import numpy as np

from refbilevel.oracles.counters import ORACLE_KINDS, OracleCounts
from refbilevel.problems.base import BilevelProblem
from refbilevel.validation import require_batch_shape, require_range


@dataclass(frozen=True)
class NoiseConfig:
    """Per-coordinate noise standard deviation of each oracle kind (0 = exact oracle)."""

    grad_x_f: float = 0.0
    grad_y_f: float = 0.0
    grad_x_g: float = 0.0
    grad_y_g: float = 0.0
    hvp: float = 0.0
    jvp: float = 0.0
    gen_hvp: float = 0.0
    f_u: float = 0.0

    def __post_init__(self) -> None:
        for fld in fields(self):
            require_range(f"noise std {fld.name}", getattr(self, fld.name), low=0.0)

    @classmethod
    def uniform(cls, std: float) -> NoiseConfig:
        """The same std for every oracle kind."""
        return cls(**{k: std for k in ORACLE_KINDS})

    @classmethod
    def levels(cls, *, upper: float = 0.0, lower: float = 0.0, second_order: float = 0.0):
        """std ``upper`` for ∇F and F_u, ``lower`` for ∇G, ``second_order`` for products."""
        return cls(grad_x_f=upper, grad_y_f=upper, f_u=upper, grad_x_g=lower, grad_y_g=lower,
                   hvp=second_order, jvp=second_order, gen_hvp=second_order)

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


#: what the oracle calls on its problem (the generalized products only where used)
_PROBLEM_METHODS = ("grad_x_f", "grad_y_f", "grad_x_g", "grad_y_g", "hvp_yy_g", "jvp_xy_g")


class GaussianOracle:
    """Unbiased Gaussian-noise oracle over a :class:`BilevelProblem` (see module docstring)."""

    def __init__(self, problem: BilevelProblem, noise: NoiseConfig | float,
                 rng: np.random.Generator):
        # duck-typed, like the estimators' oracle check: the CuPy backend passes a device
        # copy of the problem that has the same methods but is not a BilevelProblem
        lacking = [a for a in ("d_x", "d_y", *_PROBLEM_METHODS) if not hasattr(problem, a)]
        if lacking:
            raise ValueError(
                "problem must be a refbilevel BilevelProblem (e.g. make_problem(name)), got "
                f"{type(problem).__name__}, which has no {', '.join(lacking[:3])}"
                f"{', ...' if len(lacking) > 3 else ''}")
        if not isinstance(noise, NoiseConfig) and (
                isinstance(noise, bool) or not isinstance(noise, (int, float, np.floating))):
            raise ValueError("noise must be a NoiseConfig or a standard deviation >= 0, got "
                             f"{noise!r}")
        if not isinstance(rng, np.random.Generator):
            raise ValueError(
                "rng must be a numpy.random.Generator (randomness is always passed in), "
                f"got {type(rng).__name__}"
            )
        self.problem = problem
        self.noise = noise if isinstance(noise, NoiseConfig) else NoiseConfig.uniform(noise)
        self.rng = rng
        self.counts = OracleCounts()

    def draw(self, kind: str, batch_shape: tuple[int, ...]) -> np.ndarray:
        """One sample of the standard-normal noise of ``kind`` for a batch.

        An exact oracle (std 0) consumes no random numbers and returns zeros, so passing the
        result as ``sample=`` works the same way for exact and noisy oracles.
        """
        if kind not in ORACLE_KINDS:
            raise ValueError(f"unknown oracle kind {kind!r}; allowed: {', '.join(ORACLE_KINDS)}")
        self.counts.add("samples")
        dim = self.problem.d_x if kind in ("grad_x_f", "grad_x_g", "jvp") else self.problem.d_y
        shape = require_batch_shape(batch_shape) + (dim,)
        if getattr(self.noise, kind) == 0.0:
            return np.zeros(shape)
        return self.rng.standard_normal(shape)

    def _noisy(self, kind: str, exact: np.ndarray, sample: np.ndarray | None) -> np.ndarray:
        self.counts.add(kind)
        std = getattr(self.noise, kind)
        if std == 0.0:
            if sample is None:
                self.counts.add("samples")
            return exact
        if sample is None:
            sample = self.draw(kind, exact.shape[:-1])
        elif sample.shape != exact.shape:
            raise ValueError(f"sample must have shape {exact.shape}, got {sample.shape}")
        return exact + std * sample

    def grad_x_f(self, x, y, sample=None):
        return self._noisy("grad_x_f", self.problem.grad_x_f(x, y), sample)

    def grad_y_f(self, x, y, sample=None):
        return self._noisy("grad_y_f", self.problem.grad_y_f(x, y), sample)

    def grad_x_g(self, x, y, sample=None):
        return self._noisy("grad_x_g", self.problem.grad_x_g(x, y), sample)

    def grad_y_g(self, x, y, sample=None):
        return self._noisy("grad_y_g", self.problem.grad_y_g(x, y), sample)

    def hvp_yy_g(self, x, y, v, sample=None):
        return self._noisy("hvp", self.problem.hvp_yy_g(x, y, v), sample)

    def jvp_xy_g(self, x, y, v, sample=None):
        return self._noisy("jvp", self.problem.jvp_xy_g(x, y, v), sample)

    def f_u(self, x, y, sample=None):
        return self._noisy("f_u", self.problem.f_u(x, y), sample)

    def gen_hvp(self, x, y, v, sample=None):
        return self._noisy("gen_hvp", self.problem.gen_hvp(x, y, v), sample)

    def gen_hvp_T(self, x, y, v, sample=None):
        return self._noisy("gen_hvp", self.problem.gen_hvp_T(x, y, v), sample)
