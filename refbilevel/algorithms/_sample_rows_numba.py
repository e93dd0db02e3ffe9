"""One replica's oracle evaluation on a sample drawn beforehand, for the Numba kernels that
evaluate several points on ONE sample (FdeHBO/FMBO's STORM corrections and finite
differences, docs/fdehbo.rst §3; BO-REP's shared (ξ_t, ζ_t) of lines 4-5, docs/borep.rst §4;
docs/design.rst §Backends).

Not an algorithm: the leading underscore keeps it out of the auto-import of
``refbilevel/algorithms/__init__.py``.

The batched ``call_*`` functions of :mod:`refbilevel.algorithms._baselines_numba` draw a
Gaussian noise block inside each call, which suits methods that evaluate each sample once.
These kernels instead draw every sample of an iteration first (``draw_sample`` of that
module, as the NumPy references do with ``oracle.draw``) and then evaluate it at several
points replica by replica (``sample=``), with the functions here. A sample is the pair
(idx row, Z row):

- a family record P (GaussianOracle): the family's primitive, to which the kernel adds
  ``std * z`` (``idx`` is the dummy of :func:`~refbilevel.algorithms._baselines_numba.
  draw_idx`);
- a :class:`~refbilevel.algorithms._baselines_numba.FiniteSumRecord` (FiniteSumOracle): the
  per-sample factor arithmetic of ``SampleQuadratics`` on the replica's minibatch ``idx``
  (inner level for the g-kinds, outer for the f-kinds; the regulariser on ∇_y G and the HVP);
  its noise stds are 0, so nothing is added.

Dispatch is by the type of P at compile time. The six oracle kinds' rows (``row_grad_y_g``
... ``row_jvp``) are defined in :mod:`refbilevel.algorithms._baselines_numba`, whose
``oracle_row`` adds the Gaussian noise to them, and are re-exported here with the rows of
UniBiO's f_u and H^T v. (The batched twin, all replicas at once on a
drawn sample, is ``call_on_sample`` of :mod:`refbilevel.algorithms._baselines_numba`.)
"""

from __future__ import annotations

from numba.extending import overload

from refbilevel.algorithms._baselines_numba import (
    _is_finite_sum_type,
    add_noise,
    fs_grad_y,
    fs_grad_y_shared,
    fs_hvp,
    inner_level,
    outer_level,
    row_grad_x_f,
    row_grad_x_g,
    row_grad_y_f,
    row_grad_y_g,
    row_hvp,
    row_jvp,
)
from refbilevel.backends.numba_problems import f_u, gen_hvp_T, grad_y_g

__all__ = ["row_f_u", "row_gen_hvp_T", "row_grad_x_f", "row_grad_x_g", "row_grad_y_f",
           "row_grad_y_g", "row_hvp", "row_jvp", "rows_grad_y_g"]



def rows_grad_y_g(P, std, idx, z, X, Y, OUT, act, S):
    """OUT[m] = ∇_y G(X[m], Y[m]) on ONE replica's sample (minibatch idx, or the closed form
    plus std times the noise row z) for every active row m: several points of one replica
    on its sample (PZOBO's main and perturbed paths). For the finite sum each block of
    samples is read once for all rows, and the y-independent sums are kept in S (a
    ``FixedXSums``; invalidate it when X changes) while the minibatch repeats
    (``fs_grad_y_shared``, bit for bit the one-row results); the closed form ignores S."""
    raise NotImplementedError("compiled code only")


def row_f_u(P, idx, x, y, out):
    """out = F_u(x, y) (docs/unibio.rst §1.5) on the sample; for the finite sum (p = 2) the
    outer minibatch's ∇_y F, as FiniteSumOracle.f_u."""
    raise NotImplementedError("compiled code only")


def row_gen_hvp_T(P, idx, x, y, v, out):
    """out = H^T v (docs/unibio.rst §1.6) on the sample; for the finite sum (p = 2) the inner
    minibatch's ∇²_yy G v, as FiniteSumOracle.gen_hvp_T."""
    raise NotImplementedError("compiled code only")


@overload(row_f_u, jit_options={"error_model": "numpy"}, inline="always")
def _row_f_u(P, idx, x, y, out):
    if _is_finite_sum_type(P):
        def fs(P, idx, x, y, out):
            fs_grad_y(outer_level(P), 0.0, idx, x, y, out)
        return fs

    def closed(P, idx, x, y, out):
        f_u(P, x, y, out)
    return closed


@overload(row_gen_hvp_T, jit_options={"error_model": "numpy"}, inline="always")
def _row_gen_hvp_T(P, idx, x, y, v, out):
    if _is_finite_sum_type(P):
        def fs(P, idx, x, y, v, out):
            fs_hvp(inner_level(P), P.reg, idx, v, out)
        return fs

    def closed(P, idx, x, y, v, out):
        gen_hvp_T(P, x, y, v, out)
    return closed



@overload(rows_grad_y_g, jit_options={"error_model": "numpy"}, inline="always")
def _rows_grad_y_g(P, std, idx, z, X, Y, OUT, act, S):
    if _is_finite_sum_type(P):
        def fs(P, std, idx, z, X, Y, OUT, act, S):
            fs_grad_y_shared(inner_level(P), P.reg, idx, X, Y, OUT, act, S)
        return fs

    def closed(P, std, idx, z, X, Y, OUT, act, S):
        for m in range(X.shape[0]):
            if act[m]:
                grad_y_g(P, X[m], Y[m], OUT[m])
                add_noise(OUT[m], std, z)
    return closed





