"""The bilevel problem: its mathematics and its ground truth.

    min_x phi(x) = f(x, y*(x)),   y*(x) = argmin_y g(x, y)

A problem owns f, g and their derivatives, Hessian- and Jacobian-vector products, UniBiO's
generalized derivatives (docs/unibio.rst §1.4-1.6), the closed forms y*(x), phi(x), ∇phi(x),
and a :class:`Constants` record (docs/design.rst: "A problem owns its ground truth and its theory
constants").

Conventions (spec README.md, docs/unibio.rst §1.4, docs/fdehbo.rst §1):
- every method is batched: x has shape (..., d_x), y and v shape (..., d_y); leading axes
  (replicas) must be the same on every argument that has them (an argument without them,
  one point, is shared by every replica; an empty replica axis is refused); scalar outputs
  have shape (...);
- ∇²_xy g is the d_x × d_y matrix of ∂²g/∂x_i∂y_j; ``jvp_xy_g(x, y, v)`` = ∇²_xy g v ∈ R^{d_x}
  and ``jvp_yx_g(x, y, w)`` = ∇²_yx g w = (∇²_xy g)^T w ∈ R^{d_y};
- H = d∇_y g / d[y]^{∘(p-1)} in the Jacobian convention, H = ∇²_yy g D(y)^{-1};
  ``gen_hvp`` applies H and ``gen_hvp_T`` applies H^T (the vector hypergradient needs
  H^{-T}, docs/unibio.rst §1.6).

Subclasses implement the underscored methods on validated float64 arrays; the public methods
validate shapes and finiteness and raise ValueError naming the argument. Families write their
arithmetic with ``self.xp`` (the array module, :mod:`refbilevel.array_module`), so
``problem.on(cupy)`` evaluates the same mathematics on a GPU; such a moved problem does not
re-validate its inputs (the caller validates once, on the host).
"""

from __future__ import annotations

import abc
from typing import ClassVar

import numpy as np

from refbilevel.array_module import OnArrayModule, array_module
from refbilevel.power_map import power_map_jacobian_diag
from refbilevel.problems.constants import Constants
from refbilevel.validation import as_vector_batch, require_same_replicas


class BilevelProblem(OnArrayModule, abc.ABC):
    """Base class of every closed-form bilevel problem (see the module docstring)."""

    #: registry name, e.g. "unibio-example3"
    name: ClassVar[str] = "abstract"
    #: False for a family whose underscored methods use ``np`` rather than ``self.xp``
    supports_array_modules: ClassVar[bool] = False
    #: True when the generalized Hessian H does not depend on y (Lemma B.2's hypothesis,
    #: docs/unibio.rst §3.2): then ||H v|| >= mu ||v|| is a theorem, not only lambda_min >= mu.
    hessian_independent_of_y: ClassVar[bool] = False

    d_x: int
    d_y: int
    p: float
    constants: Constants

    # ---- validation -------------------------------------------------------------------
    def _x(self, x: object) -> np.ndarray:
        if self.xp is not np:  # a device copy: inputs were validated once on the host
            return x  # type: ignore[return-value]
        return as_vector_batch("x", x, self.d_x)

    def _y(self, y: object, name: str = "y") -> np.ndarray:
        if self.xp is not np:
            return y  # type: ignore[return-value]
        return as_vector_batch(name, y, self.d_y)

    def _xy(self, x: object, y: object) -> tuple[np.ndarray, np.ndarray]:
        """x and y validated, with the same replica axes (validation.require_same_replicas)."""
        xa, ya = self._x(x), self._y(y)
        if self.xp is np:  # a device copy trusts its inputs (module docstring)
            require_same_replicas(x=xa, y=ya)
        return xa, ya

    def _xyv(self, x: object, y: object, v: object, name: str = "v",
             dim: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """x, y and a direction ``name`` of dimension ``dim`` (default d_y), validated, with
        the same replica axes."""
        if self.xp is not np:  # a device copy trusts its inputs (module docstring)
            return x, y, v  # type: ignore[return-value]
        xa, ya = self._x(x), self._y(y)
        va = as_vector_batch(name, v, self.d_y if dim is None else dim)
        require_same_replicas(**{"x": xa, "y": ya, name: va})
        return xa, ya, va

    def structured_points(self, rng: np.random.Generator, n: int):
        """``n`` points (x, y), y = y*(x), where the family's distinctive structure is active
        (e.g. a bump's support), for checks that probe at random points; None (the default)
        when the check's own point distribution already covers it."""
        return None

    # ---- values and first derivatives (public, validated) ------------------------------
    def f(self, x, y) -> np.ndarray:
        """Upper-level objective f(x, y), shape (...)."""
        return self._f(*self._xy(x, y))

    def g(self, x, y) -> np.ndarray:
        """Lower-level objective g(x, y), shape (...)."""
        return self._g(*self._xy(x, y))

    def grad_x_f(self, x, y) -> np.ndarray:
        return self._grad_x_f(*self._xy(x, y))

    def grad_y_f(self, x, y) -> np.ndarray:
        return self._grad_y_f(*self._xy(x, y))

    def grad_x_g(self, x, y) -> np.ndarray:
        return self._grad_x_g(*self._xy(x, y))

    def grad_y_g(self, x, y) -> np.ndarray:
        return self._grad_y_g(*self._xy(x, y))

    # ---- second-order products ----------------------------------------------------------
    def hvp_yy_g(self, x, y, v) -> np.ndarray:
        """∇²_yy g(x, y) v."""
        return self._hvp_yy_g(*self._xyv(x, y, v))

    def jvp_xy_g(self, x, y, v) -> np.ndarray:
        """∇²_xy g(x, y) v ∈ R^{d_x} for v ∈ R^{d_y} (the "cross" product of docs/baselines.rst
        §0.1)."""
        return self._jvp_xy_g(*self._xyv(x, y, v))

    def jvp_yx_g(self, x, y, w) -> np.ndarray:
        """∇²_yx g(x, y) w = (∇²_xy g)^T w ∈ R^{d_y} for w ∈ R^{d_x}."""
        return self._jvp_yx_g(*self._xyv(x, y, w, "w", self.d_x))

    # ---- generalized derivatives (UniBiO, docs/unibio.rst §1.4-1.6) -----------------------
    def f_u(self, x, y) -> np.ndarray:
        """Generalized derivative df/d[y]^{∘(p-1)} (docs/unibio.rst §1.5)."""
        return self._f_u(*self._xy(x, y))

    def gen_hvp(self, x, y, v) -> np.ndarray:
        """H v with H = d∇_y g / d[y]^{∘(p-1)} (Jacobian convention, docs/unibio.rst §1.4)."""
        return self._gen_hvp(*self._xyv(x, y, v))

    def gen_hvp_T(self, x, y, v) -> np.ndarray:
        """H^T v (the hypergradient uses H^{-T}, docs/unibio.rst §1.6)."""
        return self._gen_hvp_T(*self._xyv(x, y, v))

    # ---- ground truth -----------------------------------------------------------------
    def y_star(self, x) -> np.ndarray:
        """The lower-level solution y*(x)."""
        return self._y_star(self._x(x))

    def phi(self, x) -> np.ndarray:
        """The hyperobjective phi(x) = f(x, y*(x))."""
        return self._phi(self._x(x))

    def grad_phi(self, x) -> np.ndarray:
        """The exact hypergradient ∇phi(x) (closed form)."""
        return self._grad_phi(self._x(x))

    # ---- dense matrices (small d; tests and exact solves) ------------------------------
    def hessian_yy(self, x, y) -> np.ndarray:
        """∇²_yy g as a (..., d_y, d_y) array, built column by column from ``hvp_yy_g``."""
        x, y = self._xy(x, y)
        return _columns(lambda e: self._hvp_yy_g(x, y, e), y, self.d_y)

    def cross_matrix(self, x, y) -> np.ndarray:
        """∇²_xy g as a (..., d_x, d_y) array."""
        x, y = self._xy(x, y)
        return _columns(lambda e: self._jvp_xy_g(x, y, e), y, self.d_y)

    def generalized_hessian(self, x, y) -> np.ndarray:
        """H as a (..., d_y, d_y) array."""
        x, y = self._xy(x, y)
        return _columns(lambda e: self._gen_hvp(x, y, e), y, self.d_y)

    def solve_hessian_yy(self, x, y, rhs) -> np.ndarray:
        """[∇²_yy g]^{-1} rhs. Dense by default; structured problems override."""
        x, y, rhs = self._xyv(x, y, rhs, "rhs")
        return self._solve_hessian_yy(x, y, rhs)

    def _solve_hessian_yy(self, x, y, rhs):
        Hm = self.hessian_yy(x, y)
        Hm, rhs = np.broadcast_arrays(Hm, rhs[..., None])
        return np.linalg.solve(Hm, rhs)[..., 0]

    # ---- subclass interface -----------------------------------------------------------
    @abc.abstractmethod
    def _f(self, x, y): ...
    @abc.abstractmethod
    def _g(self, x, y): ...
    @abc.abstractmethod
    def _grad_x_f(self, x, y): ...
    @abc.abstractmethod
    def _grad_y_f(self, x, y): ...
    @abc.abstractmethod
    def _grad_x_g(self, x, y): ...
    @abc.abstractmethod
    def _grad_y_g(self, x, y): ...
    @abc.abstractmethod
    def _hvp_yy_g(self, x, y, v): ...
    @abc.abstractmethod
    def _jvp_xy_g(self, x, y, v): ...
    @abc.abstractmethod
    def _jvp_yx_g(self, x, y, w): ...
    @abc.abstractmethod
    def _y_star(self, x): ...

    def _phi(self, x):
        return self._f(x, self._y_star(x))

    def _grad_phi(self, x):
        """Ghadimi–Wang at y*(x); subclasses with a simpler closed form override."""
        ys = self._y_star(x)
        z = self._solve_hessian_yy(x, ys, self._grad_y_f(x, ys))
        return self._grad_x_f(x, ys) - self._jvp_xy_g(x, ys, z)

    # Generalized derivatives by the chain rule of docs/unibio.rst §1.5. At coordinates where
    # y_i = 0 and p > 2 these divide by zero; problems whose H and f_u have finite analytic
    # limits there (Examples 3/4) override them with the limit.
    def _f_u(self, x, y):
        return self._grad_y_f(x, y) / power_map_jacobian_diag(y, self.p)

    def _gen_hvp(self, x, y, v):
        return self._hvp_yy_g(x, y, v / power_map_jacobian_diag(y, self.p))

    def _gen_hvp_T(self, x, y, v):
        return self._hvp_yy_g(x, y, v) / power_map_jacobian_diag(y, self.p)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(d_x={self.d_x}, d_y={self.d_y}, p={self.p:g})"


def batch_broadcast(value: np.ndarray, *args: np.ndarray) -> np.ndarray:
    """``value`` (..., m) broadcast to the common leading (replica) shape of ``args``.

    Quantities that do not depend on some argument (e.g. ∇_y f of Example 4 does not depend
    on x) must still carry every replica axis, so batched callers get one row per replica.
    """
    lead = np.broadcast_shapes(value.shape[:-1], *(a.shape[:-1] for a in args))
    xp = array_module(value)
    return xp.broadcast_to(value, lead + value.shape[-1:]).copy()


def _columns(apply, y: np.ndarray, d: int) -> np.ndarray:
    """Stack apply(e_j) for the unit vectors e_j as the columns of (..., m, d)."""
    cols = []
    for j in range(d):
        e = np.zeros(y.shape[:-1] + (d,))
        e[..., j] = 1.0
        cols.append(apply(e))
    return np.stack(cols, axis=-1)
