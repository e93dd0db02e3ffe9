"""Moved: the central differences of claim X1 live in :mod:`refbilevel.problems.derivative_check`
(the theory check X1 uses them too). Re-exported here for old imports."""

from refbilevel.problems.derivative_check import fd_directional, fd_gradient

__all__ = ["fd_directional", "fd_gradient"]
