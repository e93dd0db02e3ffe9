"""Lower-level solutions for problems whose y*(x) has no closed form.

Some LLUC problems of the spec have no closed-form minimizer (the non-separable instance of
docs/unibio.rst §1.6, the ℓ_p hyper-cleaning lower level of §6.2). Their y*(x) is computed by
a damped Newton method on the strictly convex g(x, ·), run to machine precision, so the
"ground truth" is exact up to float64 rounding. Batched over leading axes.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def damped_newton(
    value: Callable[[np.ndarray], np.ndarray],
    grad: Callable[[np.ndarray], np.ndarray],
    solve: Callable[[np.ndarray, np.ndarray], np.ndarray],
    y0: np.ndarray,
    *,
    gtol: float = 1e-13,
    max_iter: int = 200,
) -> np.ndarray:
    """Minimize a strictly convex function from y0 by Newton steps with Armijo backtracking.

    ``solve(y, r)`` returns [∇²value(y)]^{-1} r. Stops when every replica's gradient norm is
    below ``gtol * max(1, ||grad(y0)||)`` or no replica can decrease further; raises
    RuntimeError if the gradient is still large (the ground truth would be wrong).
    """
    y = np.array(y0, dtype=np.float64, copy=True)
    g = grad(y)
    scale = np.maximum(1.0, np.linalg.norm(g, axis=-1))
    for _ in range(max_iter):
        gnorm = np.linalg.norm(g, axis=-1)
        active = gnorm > gtol * scale
        if not np.any(active):
            return y
        step = solve(y, g)
        f0 = value(y)
        t = np.ones(y.shape[:-1])
        slope = np.sum(g * step, axis=-1)
        for _ in range(60):
            y_new = y - t[..., None] * step
            ok = value(y_new) <= f0 - 1e-4 * t * slope + 1e-15 * np.abs(f0)
            if np.all(ok | ~active):
                break
            t = np.where(ok | ~active, t, 0.5 * t)
        y = np.where(active[..., None], y - t[..., None] * step, y)
        g_new = grad(y)
        if np.all(np.linalg.norm(g_new, axis=-1) >= gnorm) and np.all(t < 1e-12):
            g = g_new
            break
        g = g_new
    if np.any(np.linalg.norm(g, axis=-1) > 1e3 * gtol * scale):
        raise RuntimeError(
            "damped_newton did not reach the requested accuracy; the lower-level ground "
            f"truth would be wrong (max gradient norm {np.max(np.linalg.norm(g, axis=-1)):.3e})"
        )
    return y
