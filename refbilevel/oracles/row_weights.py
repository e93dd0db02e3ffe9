"""Row-weight (multiplicative) noise over a finite-sum problem such as logistic hyper-cleaning
(docs/fdehbo.rst §5 Assumption 3, §10.2).

A lower-level sample ζ is a minibatch of B rows drawn uniformly with replacement, written as
row weights w ∈ R^N, w_i = (N/B)·#{draws of row i} (E w_i = 1); the sampled lower level is
g(x, y; ζ) = (1/N)Σ_i w_i σ(x_i)ℓ_i(y) + (μ/2)||y||², and ∇_y g, ∇_x g, the HVP and the JVP
of one ζ are the derivatives of that one function. An upper-level sample ξ draws B_f of the
m validation rows the same way. So the noise is not additive: it multiplies each row's
contribution, its size depends on (x, y), and a STORM correction
∇g(x_t, y_t; ζ) − ∇g(x_{t−1}, y_{t−1}; ζ) on one sample still carries noise (unlike with
:class:`~refbilevel.oracles.gaussian.GaussianOracle`, whose same-sample differences are
noise-free). Every realization is μ-strongly convex and satisfies the problem's smoothness
bounds times N/B (a bounded factor), as Assumption 3's per-realization smoothness requires.

Families and draw order: every lower-level kind (∇_y g, ∇_x g, HVP, JVP, generalized HVP)
draws from the lower family, every upper-level kind (∇_x f, ∇_y f, f_u) from the upper
family, one ``rng.integers(0, rows, batch_shape + (B,))`` call per ``draw``; so FdeHBO's
``draw("grad_y_g")`` and FMBO's ``draw("hvp")`` consume the same numbers and the two
algorithms run on a common sample stream (``shares_samples = True``). A batch of ``None``
means the full data: weights 1, no random numbers (exact oracles).

Counting as GaussianOracle: one call of its kind per evaluation, one sample per ``draw``.
The problem must provide ``*_weighted`` methods
(:class:`~refbilevel.problems.logistic_cleaning.LogisticCleaning`). NumPy backend only: the
``noise`` attribute raises :class:`~refbilevel.backends.registry.NotImplementedOnBackendError`
so that no kernel can silently run additive noise instead.
"""

from __future__ import annotations

import numpy as np

from refbilevel.backends.registry import NotImplementedOnBackendError
from refbilevel.oracles.counters import ORACLE_KINDS, OracleCounts
from refbilevel.oracles.gaussian import GaussianOracle, NoiseConfig
from refbilevel.validation import require_batch_shape, require_int

__all__ = ["RowWeightOracle"]

LOWER_KINDS = ("grad_x_g", "grad_y_g", "hvp", "jvp", "gen_hvp")
UPPER_KINDS = ("grad_x_f", "grad_y_f", "f_u")
_METHODS = ("g_weighted", "grad_y_g_weighted", "grad_x_g_weighted", "hvp_yy_g_weighted",
            "jvp_xy_g_weighted", "grad_y_f_weighted", "grad_x_f_weighted")


class RowWeightOracle(GaussianOracle):
    """Unbiased multiplicative row-weight oracle (module docstring).

    Parameters
    ----------
    problem : a problem with the ``*_weighted`` methods, N = d_x training rows and ``m``
        validation rows.
    batch_lower, batch_upper : rows per sample (integers >= 1), or None for the full data.
    rng : the ``numpy.random.Generator`` every row index is drawn from.
    """

    shares_samples = True

    def __init__(self, problem, batch_lower: int | None, batch_upper: int | None,
                 rng: np.random.Generator):
        # GaussianOracle.__init__ is not called: there is no per-kind NoiseConfig here.
        if not isinstance(rng, np.random.Generator):
            raise ValueError("rng must be a numpy.random.Generator (randomness is always "
                             f"passed in), got {type(rng).__name__}")
        missing = [m for m in _METHODS if not hasattr(problem, m)]
        if missing or not hasattr(problem, "m"):
            raise ValueError(f"problem must provide row-weighted functions (e.g. "
                             f"LogisticCleaning); {type(problem).__name__} has no "
                             f"{', '.join(missing or ['m'])}")
        self.problem = problem
        self.rng = rng
        self.counts = OracleCounts()
        self.dim = {"lower": int(problem.d_x), "upper": int(problem.m)}
        self.batch = {"lower": None if batch_lower is None
                      else require_int("batch_lower", batch_lower, low=1),
                      "upper": None if batch_upper is None
                      else require_int("batch_upper", batch_upper, low=1)}

    @property
    def noise(self) -> NoiseConfig:
        raise NotImplementedOnBackendError(
            "RowWeightOracle has multiplicative row-weight noise, not a per-kind additive std: "
            "kernels that draw additive Gaussian noise from oracle.noise (Numba, CuPy) cannot "
            "run it; it runs on the NumPy backend")

    @noise.setter
    def noise(self, value: NoiseConfig) -> None:
        raise AttributeError("RowWeightOracle has no additive NoiseConfig; its noise levels "
                             "are the batch sizes")

    @staticmethod
    def family(kind: str) -> str:
        if kind in LOWER_KINDS:
            return "lower"
        if kind in UPPER_KINDS:
            return "upper"
        raise ValueError(f"unknown oracle kind {kind!r}; allowed: {', '.join(ORACLE_KINDS)}")

    def draw(self, kind: str, batch_shape: tuple[int, ...]) -> np.ndarray:
        """Row weights of ``kind``'s family for a batch, shape ``batch_shape + (N or m,)``."""
        fam = self.family(kind)
        lead = require_batch_shape(batch_shape)
        rows, B = self.dim[fam], self.batch[fam]
        self.counts.add("samples")
        if B is None:
            return np.ones(lead + (rows,))
        idx = self.rng.integers(0, rows, lead + (B,))
        w = np.zeros((int(np.prod(lead, dtype=np.int64)), rows))
        flat = idx.reshape(w.shape[0], B)
        np.add.at(w, (np.arange(w.shape[0])[:, None], flat), rows / B)
        return w.reshape(lead + (rows,))

    def _weights(self, kind: str, sample, lead: tuple[int, ...]) -> np.ndarray:
        self.counts.add(kind)
        if sample is None:
            return self.draw(kind, lead)
        w = np.asarray(sample, dtype=np.float64)
        want = lead + (self.dim[self.family(kind)],)
        if w.shape != want:
            raise ValueError(f"sample for {kind!r} must have shape {want} (one weight per "
                             f"row and replica), got {w.shape}")
        return w

    @staticmethod
    def _lead(*arrays) -> tuple[int, ...]:
        return np.broadcast_shapes(*(np.shape(a)[:-1] for a in arrays))

    def grad_x_f(self, x, y, sample=None):
        u = self._weights("grad_x_f", sample, self._lead(x, y))
        return self.problem.grad_x_f_weighted(x, y, u)

    def grad_y_f(self, x, y, sample=None):
        u = self._weights("grad_y_f", sample, self._lead(x, y))
        return self.problem.grad_y_f_weighted(x, y, u)

    def f_u(self, x, y, sample=None):  # p = 2: f_u = ∇_y f
        u = self._weights("f_u", sample, self._lead(x, y))
        return self.problem.grad_y_f_weighted(x, y, u)

    def grad_x_g(self, x, y, sample=None):
        w = self._weights("grad_x_g", sample, self._lead(x, y))
        return self.problem.grad_x_g_weighted(x, y, w)

    def grad_y_g(self, x, y, sample=None):
        w = self._weights("grad_y_g", sample, self._lead(x, y))
        return self.problem.grad_y_g_weighted(x, y, w)

    def hvp_yy_g(self, x, y, v, sample=None):
        w = self._weights("hvp", sample, self._lead(x, y, v))
        return self.problem.hvp_yy_g_weighted(x, y, v, w)

    def jvp_xy_g(self, x, y, v, sample=None):
        w = self._weights("jvp", sample, self._lead(x, y, v))
        return self.problem.jvp_xy_g_weighted(x, y, v, w)

    def gen_hvp(self, x, y, v, sample=None):  # p = 2: H = ∇²_yy g (symmetric)
        w = self._weights("gen_hvp", sample, self._lead(x, y, v))
        return self.problem.hvp_yy_g_weighted(x, y, v, w)

    gen_hvp_T = gen_hvp

    def __repr__(self) -> str:
        return (f"RowWeightOracle({self.problem!r}, batch_lower={self.batch['lower']}, "
                f"batch_upper={self.batch['upper']})")
