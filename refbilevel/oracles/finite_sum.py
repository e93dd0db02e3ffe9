"""Minibatch oracle over a finite-sum problem (docs/baselines.rst §0.2, §10.2).

The randomness of a finite-sum problem g = (1/n) Σ_i g_i, f = (1/m) Σ_j f_j is the choice of
a minibatch, not additive noise: an oracle call returns the mean over B sampled indices of
the per-sample quantity. It is unbiased whenever each index of the minibatch is marginally
uniform on {0, ..., n-1}, which holds for both samplers below.

Levels. ∇_x F, ∇_y F (and F_u = ∇_y F at p = 2) use the *outer* data (n_outer samples);
∇_x G, ∇_y G, ∇²_yy G v and ∇²_xy G v (and the generalized H v = ∇²_yy G v at p = 2) use the
*inner* data (n_inner samples).

Samplers (``sampler=``), each with its own order of consumption of the Generator ``rng``:

- ``"uniform"`` (the sampling of the theorems): :meth:`FiniteSumOracle.draw` returns B
  indices per replica drawn i.i.d. uniformly *with replacement*, one call
  ``rng.integers(0, n, size=batch_shape + (B,))``. :meth:`FiniteSumOracle.draw_batch`
  (the SAGA unit sampler SABA needs) picks one contiguous batch per replica uniformly among
  the n/B batches, one call ``rng.integers(0, n/B, size=batch_shape)``: each sample is then
  also marginally uniform, and SAGA's direction φ_u − M[u] + M̄ is unbiased.
- ``"shuffled"`` (benchmark_bilevel, docs/baselines.rst §0.2 CODE): the data are split into n/B
  contiguous batches visited in a random order, reshuffled after each pass (the first pass
  is shuffled too, as at the benchmark's HEAD; the numba era used the natural order first).
  At the start of every pass, one call ``rng.random(batch_shape + (n/B,))`` and a stable
  argsort along the last axis give each replica its own permutation; calls within a pass
  consume nothing. The state is kept per level and per batch shape, and ``draw`` and
  ``draw_batch`` of one level advance the same state. The HEAD quirks (last batch of a pass
  returned twice, last incomplete batch clamped) are not reproduced; instead B must divide
  n_inner and n_outer, so every batch has weight B/n.

Per-sample access (SABA, docs/baselines.rst §5): :meth:`draw_batch` returns a :class:`Minibatch`
with the indices, the batch id ``unit`` and its ``weight`` B/n; the batch ids are those of
the contiguous partition {uB, ..., uB + B − 1}.

Counting (the only place calls are counted, docs/design.rst): every evaluation adds one call of
its kind (per replica); every ``draw``/``draw_batch`` adds one to ``samples`` (one minibatch
per replica), and an evaluation without ``sample=`` draws a fresh minibatch first. A
``sample`` drawn once may be passed to several evaluations *of the same level* (SOBA's one
inner batch for ∇_y G, the HVP and the cross product; docs/baselines.rst §4 CODE): that counts the
calls but only one sample. ``shares_samples = True`` tells the algorithms that samples may be
shared across kinds (a GaussianOracle's per-kind noise blocks may not).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from refbilevel.oracles.counters import ORACLE_KINDS, OracleCounts
from refbilevel.validation import require_batch_shape, require_int

SAMPLERS = ("uniform", "shuffled")
LEVELS = ("inner", "outer")

#: the data level each oracle kind reads
KIND_LEVEL = {
    "grad_x_f": "outer", "grad_y_f": "outer", "f_u": "outer",
    "grad_x_g": "inner", "grad_y_g": "inner", "hvp": "inner", "jvp": "inner",
    "gen_hvp": "inner",
}

_BATCH_METHODS = ("grad_x_f_batch", "grad_y_f_batch", "grad_x_g_batch", "grad_y_g_batch",
                  "hvp_yy_g_batch", "jvp_xy_g_batch")


class Minibatch(NamedTuple):
    """One minibatch per replica: ``idx`` (..., B) sample indices, ``unit`` (...) the id of
    the contiguous batch they form, ``weight`` (...) = B/n, and the data ``level``."""

    idx: np.ndarray
    unit: np.ndarray
    weight: np.ndarray
    level: str


class FiniteSumOracle:
    """Unbiased minibatch oracle over a finite-sum problem (see the module docstring).

    Parameters
    ----------
    problem : a :class:`~refbilevel.problems.finite_sum_quadratic.FiniteSumQuadratic` (or any
        problem with ``n_inner``, ``n_outer`` and the ``*_batch(x, y, [v,] idx)`` methods).
    batch_size : B, an integer >= 1 (benchmark default 64). With ``sampler="shuffled"`` (and
        for :meth:`draw_batch`) B must divide both n_inner and n_outer.
    rng : the ``numpy.random.Generator`` every index is drawn from.
    sampler : ``"uniform"`` or ``"shuffled"``.
    """

    shares_samples = True
    #: no additive noise: the randomness is the minibatch (kept so code that inspects
    #: ``oracle.noise`` of a GaussianOracle sees that there is none)
    noise = None

    def __init__(self, problem, batch_size: int, rng: np.random.Generator,
                 sampler: str = "uniform"):
        if not isinstance(rng, np.random.Generator):
            raise ValueError(
                "rng must be a numpy.random.Generator (randomness is always passed in), "
                f"got {type(rng).__name__}"
            )
        missing = [m for m in ("n_inner", "n_outer", *_BATCH_METHODS) if not hasattr(problem, m)]
        if missing:
            raise ValueError(
                f"problem must be a finite-sum problem (e.g. FiniteSumQuadratic); "
                f"{type(problem).__name__} has no {', '.join(missing)}"
            )
        if sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {', '.join(map(repr, SAMPLERS))}; "
                             f"got {sampler!r}")
        self.problem = problem
        self.batch_size = require_int("batch_size", batch_size, low=1)
        self.rng = rng
        self.sampler = sampler
        self.counts = OracleCounts()
        self.n = {"inner": int(problem.n_inner), "outer": int(problem.n_outer)}
        if sampler == "shuffled":
            self.require_batches_divide()
        # shuffled-sampler state: (level, batch_shape) -> [permutations (..., n_units), pos]
        self._passes: dict[tuple[str, tuple[int, ...]], list] = {}

    # ---- sampling ----------------------------------------------------------------------
    def require_batches_divide(self) -> None:
        """ValueError unless the batch size divides n_inner and n_outer (contiguous batches:
        the shuffled sampler, draw_batch and unit_batch need it)."""
        B = self.batch_size
        for level, n in self.n.items():
            if n % B:
                divisors = [k for k in range(1, n + 1) if n % k == 0 and self.n[
                    "outer" if level == "inner" else "inner"] % k == 0]
                raise ValueError(
                    f"batch_size must divide n_inner = {self.n['inner']} and n_outer = "
                    f"{self.n['outer']} for contiguous batches (shuffled sampler, draw_batch); "
                    f"got {B}, allowed: {divisors[-8:]} (largest shown)"
                )

    def n_units(self, level: str) -> int:
        """Number of contiguous batches of a level (n / B; needs B | n)."""
        return self.n[self._level(level)] // self.batch_size

    def shuffle_state(self, level: str, batch_shape: tuple[int, ...]) -> list | None:
        """The shuffled sampler's current pass for (level, batch shape): [permutations
        (..., n_units), position], or None before the first draw. Compiled backends read it
        and hand it back with :meth:`set_shuffle_state`, so that a run on any backend
        continues the pass where the previous run on this oracle left it."""
        return self._passes.get((self._level(level), tuple(batch_shape)))

    def set_shuffle_state(self, level: str, batch_shape: tuple[int, ...],
                          permutations: np.ndarray, position: int) -> None:
        self._passes[(self._level(level), tuple(batch_shape))] = [permutations, int(position)]

    @staticmethod
    def _level(level: str) -> str:
        if level not in LEVELS:
            raise ValueError(f"level must be one of {', '.join(map(repr, LEVELS))}; "
                             f"got {level!r}")
        return level

    def _next_units(self, level: str, shape: tuple[int, ...]) -> np.ndarray:
        """Shuffled sampler: the next batch id of every replica (see the module docstring)."""
        nu = self.n_units(level)
        key = (level, shape)
        state = self._passes.get(key)
        if state is None or state[1] >= nu:
            perm = np.argsort(self.rng.random(shape + (nu,)), axis=-1, kind="stable")
            state = [perm, 0]
            self._passes[key] = state
        units = state[0][..., state[1]]
        state[1] += 1
        return np.asarray(units, dtype=np.int64)

    def _contiguous(self, units: np.ndarray) -> np.ndarray:
        return units[..., None] * self.batch_size + np.arange(self.batch_size, dtype=np.int64)

    def draw_batch(self, level: str, batch_shape) -> Minibatch:
        """One contiguous batch per replica with its id and weight (SAGA units for SABA)."""
        level = self._level(level)
        shape = require_batch_shape(batch_shape)
        self.require_batches_divide()
        self.counts.add("samples")
        if self.sampler == "shuffled":
            units = self._next_units(level, shape)
        else:
            units = self.rng.integers(0, self.n_units(level), size=shape)
        weight = np.full(shape, self.batch_size / self.n[level])
        return Minibatch(self._contiguous(units), units, weight, level)

    def unit_batch(self, level: str, units) -> Minibatch:
        """The contiguous batches with the given ids, as a :class:`Minibatch` (no random
        numbers, no sample counted: SABA's full memory initialisation walks them all)."""
        level = self._level(level)
        self.require_batches_divide()
        units = np.asarray(units, dtype=np.int64)
        if units.size and (units.min() < 0 or units.max() >= self.n_units(level)):
            raise ValueError(f"units must lie in [0, {self.n_units(level) - 1}], got range "
                             f"[{units.min()}, {units.max()}]")
        return Minibatch(self._contiguous(units), units,
                         np.full(units.shape, self.batch_size / self.n[level]), level)

    def draw(self, kind: str, batch_shape) -> np.ndarray:
        """One minibatch of indices for ``kind``'s level, shape batch_shape + (B,)."""
        if kind not in KIND_LEVEL:
            raise ValueError(f"unknown oracle kind {kind!r}; allowed: {', '.join(ORACLE_KINDS)}")
        level = KIND_LEVEL[kind]
        shape = require_batch_shape(batch_shape)
        if self.sampler == "shuffled":
            return self.draw_batch(level, shape).idx
        self.counts.add("samples")
        return self.rng.integers(0, self.n[level], size=shape + (self.batch_size,))

    def _idx(self, kind: str, lead: tuple[int, ...], sample) -> np.ndarray:
        if sample is None:
            return self.draw(kind, lead)
        if isinstance(sample, Minibatch):
            if sample.level != KIND_LEVEL[kind]:
                raise ValueError(f"sample is a {sample.level}-level minibatch but {kind} "
                                 f"reads the {KIND_LEVEL[kind]} data")
            return sample.idx
        return np.asarray(sample)

    def _lead(self, *arrays) -> tuple[int, ...]:
        return np.broadcast_shapes(*(np.shape(a)[:-1] for a in arrays))

    # ---- evaluations (same names as GaussianOracle) --------------------------------------
    def _eval(self, kind, method, args, sample):
        idx = self._idx(kind, self._lead(*args), sample)
        out = method(*args, idx)
        self.counts.add(kind)
        return out

    def grad_x_f(self, x, y, sample=None):
        return self._eval("grad_x_f", self.problem.grad_x_f_batch, (x, y), sample)

    def grad_y_f(self, x, y, sample=None):
        return self._eval("grad_y_f", self.problem.grad_y_f_batch, (x, y), sample)

    def grad_x_g(self, x, y, sample=None):
        return self._eval("grad_x_g", self.problem.grad_x_g_batch, (x, y), sample)

    def grad_y_g(self, x, y, sample=None):
        return self._eval("grad_y_g", self.problem.grad_y_g_batch, (x, y), sample)

    def hvp_yy_g(self, x, y, v, sample=None):
        return self._eval("hvp", self.problem.hvp_yy_g_batch, (x, y, v), sample)

    def jvp_xy_g(self, x, y, v, sample=None):
        return self._eval("jvp", self.problem.jvp_xy_g_batch, (x, y, v), sample)

    # p = 2 (the finite-sum quadratic): generalized derivatives are the classical ones
    # (docs/unibio.rst §1.5, D = I); counted under their own kinds as a GaussianOracle does
    def f_u(self, x, y, sample=None):
        self._require_p2("f_u")
        return self._eval("f_u", self.problem.grad_y_f_batch, (x, y), sample)

    def gen_hvp(self, x, y, v, sample=None):
        self._require_p2("gen_hvp")
        return self._eval("gen_hvp", self.problem.hvp_yy_g_batch, (x, y, v), sample)

    gen_hvp_T = gen_hvp  # H = ∇²_yy g is symmetric at p = 2

    def _require_p2(self, name: str) -> None:
        if getattr(self.problem, "p", 2.0) != 2.0:
            raise ValueError(f"{name} of a finite-sum oracle needs p = 2 (the generalized "
                             f"derivative is then the classical one); got p = {self.problem.p}")

    def __repr__(self) -> str:
        return (f"FiniteSumOracle({self.problem!r}, batch_size={self.batch_size}, "
                f"sampler={self.sampler!r})")
