"""Euclidean projection onto a ball, row-wise: the one shared by every algorithm and
estimator that projects (Epoch-SGD's shrinking balls, UniBiO Alg. 1 / BO-REP Alg. 2-3; the
z- and v-balls of MA-SOBA, BO-REP and FdeHBO; projected linear-system SGD).

    Π_{B(c, r)}(w) = c + (w - c) min(1, r / ||w - c||)

The scale is exactly 1 inside the ball, so points there are returned unchanged, and the
operations match the Numba kernels' loops (NumPy ↔ Numba parity).
"""

from __future__ import annotations

import numpy as np


def project_ball(w, radius: float, center=None, xp=np):
    """Π_{B(center, radius)}(w) on the last axis; ``center=None`` is the origin; ``xp`` is the
    array module (numpy or cupy)."""
    d = w if center is None else w - center
    nrm = xp.sqrt(xp.sum(d * d, axis=-1, keepdims=True))
    outside = nrm > radius
    scale = xp.where(outside, radius / xp.where(outside, nrm, 1.0), 1.0)
    return d * scale if center is None else center + scale * d
