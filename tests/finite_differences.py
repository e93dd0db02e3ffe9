"""Central finite differences used by the tests as an independent reference (claim X1)."""

import numpy as np


def fd_directional(fun, z, direction, h=1e-6):
    """(fun(z + h d) - fun(z - h d)) / 2h. Error ~ h² |fun'''| / 6 + eps |fun| / h ≈ 1e-10
    for the smooth, O(1)-scaled functions tested, hence the tests' rtol of 1e-6."""
    return (fun(z + h * direction) - fun(z - h * direction)) / (2 * h)


def fd_gradient(fun, z, h=1e-6):
    """Gradient of a scalar batched function fun: (..., d) -> (...)."""
    d = z.shape[-1]
    return np.stack([fd_directional(fun, z, np.eye(d)[i], h) for i in range(d)], axis=-1)
