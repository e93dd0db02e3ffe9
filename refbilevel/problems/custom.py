"""A problem from closed-form callables: the documented way to add a problem without
subclassing.

Example (the p = 2 case of UniBiO Example 3, docs/unibio.rst §6.1)::

    import numpy as np
    from refbilevel.problems.custom import ClosedFormProblem
    from refbilevel.problems.constants import Constants

    P = ClosedFormProblem(
        d_x=1, d_y=1,
        f=lambda x, y: np.sin(np.clip(y, -np.pi / 2, np.pi / 2))[..., 0],
        g=lambda x, y: (0.5 * y**2 - y * np.sin(x))[..., 0],
        grad_x_f=lambda x, y: np.zeros_like(x),
        grad_y_f=lambda x, y: np.where(np.abs(y) <= np.pi / 2, np.cos(y), 0.0),
        grad_x_g=lambda x, y: -y * np.cos(x),
        grad_y_g=lambda x, y: y - np.sin(x),
        hvp_yy_g=lambda x, y, v: v + 0 * y,
        jvp_xy_g=lambda x, y, v: -np.cos(x) * v,
        jvp_yx_g=lambda x, y, w: -np.cos(x) * w,
        y_star=lambda x: np.sin(x),
        constants=Constants(mu=1.0, p=2.0, l_g1=1.0),
    )

Every callable takes arrays batched over leading axes, x of shape (..., d_x) and y, v of
shape (..., d_y), and returns the shapes documented in :class:`BilevelProblem` (or shapes
that broadcast to them; any other shape is a ValueError naming the callable, at its first
call). ``phi`` and ``grad_phi`` default to f(x, y*(x)) and the Ghadimi–Wang formula at y*;
pass closed forms when you have them, so the checks compare against an independent ground
truth. ``f_u``, ``gen_hvp`` and ``gen_hvp_T`` default to the chain rule of docs/unibio.rst
§1.5 for the given ``p``; pass their analytic limits when D(y) can vanish.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from refbilevel.problems.base import BilevelProblem
from refbilevel.problems.constants import Constants
from refbilevel.validation import require_int, require_range

_REQUIRED = ("f", "g", "grad_x_f", "grad_y_f", "grad_x_g", "grad_y_g", "hvp_yy_g",
             "jvp_xy_g", "jvp_yx_g", "y_star")
_OPTIONAL = ("phi", "grad_phi", "f_u", "gen_hvp", "gen_hvp_T")
#: the last axis of each callable's result (None: a value, shape (...) only)
_OUTPUT_DIM = {"f": None, "g": None, "phi": None,
               "grad_x_f": "d_x", "grad_x_g": "d_x", "jvp_xy_g": "d_x", "grad_phi": "d_x",
               "grad_y_f": "d_y", "grad_y_g": "d_y", "hvp_yy_g": "d_y", "jvp_yx_g": "d_y",
               "y_star": "d_y", "f_u": "d_y", "gen_hvp": "d_y", "gen_hvp_T": "d_y"}


class ClosedFormProblem(BilevelProblem):
    """A :class:`BilevelProblem` assembled from user callables (see the module docstring)."""

    name = "closed-form"

    def __init__(self, *, d_x: int, d_y: int, p: float = 2.0,
                 constants: Constants | None = None, hessian_independent_of_y: bool = False,
                 **callables: Callable[..., np.ndarray]):
        self.d_x = require_int("d_x", d_x, low=1)
        self.d_y = require_int("d_y", d_y, low=1)
        self.p = require_range("p", p, low=2.0)
        missing = [k for k in _REQUIRED if k not in callables]
        unknown = [k for k in callables if k not in _REQUIRED + _OPTIONAL]
        if missing or unknown:
            raise ValueError(
                f"ClosedFormProblem needs callables {', '.join(_REQUIRED)} (optional: "
                f"{', '.join(_OPTIONAL)}); missing: {missing or 'none'}, unknown: "
                f"{unknown or 'none'}")
        for k, fn in callables.items():
            if not callable(fn):
                raise ValueError(f"{k} must be callable, got {type(fn).__name__}")
        self._fns = callables
        self.hessian_independent_of_y = hessian_independent_of_y  # type: ignore[misc]
        self.constants = constants if constants is not None else Constants(p=self.p)

    def _call(self, key, *args):
        """``key``'s callable on validated arrays, its result checked against the documented
        shape: (...) for values, (..., d_x) or (..., d_y) for vectors, where (...) are the
        replica axes of the arguments. A result that broadcasts to it (e.g. a constant) is
        broadcast, so every replica gets its row; anything else is an error naming the
        callable here, not a failure later inside a linear solve."""
        result = self._fns[key](*args)
        try:
            out = np.asarray(result, dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"ClosedFormProblem callable {key!r} must return real numbers "
                             "(an array of float)") from None
        lead = np.broadcast_shapes(*(a.shape[:-1] for a in args))
        dim_name = _OUTPUT_DIM[key]
        want = lead if dim_name is None else lead + (getattr(self, dim_name),)
        if out.shape == want:
            return out
        if dim_name is None or out.shape[-1:] == want[-1:]:
            try:
                return np.broadcast_to(out, want).copy()
            except ValueError:
                pass  # reported below with the expected shape
        dim = "a value per replica" if dim_name is None else f"{dim_name} = {want[-1]}"
        given = ", ".join(f"shape {a.shape}" for a in args)
        raise ValueError(f"ClosedFormProblem callable {key!r} returned shape {out.shape}; "
                         f"expected {want} ({dim}) for arguments of {given}")

    def _f(self, x, y):
        return self._call("f", x, y)

    def _g(self, x, y):
        return self._call("g", x, y)

    def _grad_x_f(self, x, y):
        return self._call("grad_x_f", x, y)

    def _grad_y_f(self, x, y):
        return self._call("grad_y_f", x, y)

    def _grad_x_g(self, x, y):
        return self._call("grad_x_g", x, y)

    def _grad_y_g(self, x, y):
        return self._call("grad_y_g", x, y)

    def _hvp_yy_g(self, x, y, v):
        return self._call("hvp_yy_g", x, y, v)

    def _jvp_xy_g(self, x, y, v):
        return self._call("jvp_xy_g", x, y, v)

    def _jvp_yx_g(self, x, y, w):
        return self._call("jvp_yx_g", x, y, w)

    def _y_star(self, x):
        return self._call("y_star", x)

    def _phi(self, x):
        return self._call("phi", x) if "phi" in self._fns else super()._phi(x)

    def _grad_phi(self, x):
        return self._call("grad_phi", x) if "grad_phi" in self._fns else super()._grad_phi(x)

    def _f_u(self, x, y):
        return self._call("f_u", x, y) if "f_u" in self._fns else super()._f_u(x, y)

    def _gen_hvp(self, x, y, v):
        return (self._call("gen_hvp", x, y, v) if "gen_hvp" in self._fns
                else super()._gen_hvp(x, y, v))

    def _gen_hvp_T(self, x, y, v):
        return (self._call("gen_hvp_T", x, y, v) if "gen_hvp_T" in self._fns
                else super()._gen_hvp_T(x, y, v))
