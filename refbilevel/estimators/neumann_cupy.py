"""CuPy backend of the Neumann-series estimators (docs/unibio.rst §3.5, docs/baselines.rst §1-§3).

The algorithm is the NumPy reference's :func:`~refbilevel.estimators.neumann.neumann_core`,
which is written against an array module ``xp`` (docs/design.rst §Backends: "taking the array
module from the inputs where the reference code allows"), run with ``xp = cupy`` over a
:class:`~refbilevel.backends.cupy_oracle.DeviceOracle`; inputs (NumPy or CuPy arrays) are
moved to the device. CuPy is imported lazily, so this
module imports without it; the registry reports a missing CuPy or GPU clearly.

``noise="host"`` reproduces the NumPy reference's random numbers (agreement to rounding);
``noise="device"`` draws on the GPU (agreement in distribution). The value is returned as a
device array (``cupy.asnumpy`` brings it back); counts are the reference's.
"""

from __future__ import annotations

from refbilevel.backends.cupy_oracle import DeviceOracle, _cupy, device_batch
from refbilevel.backends.registry import register
from refbilevel.estimators._common import require_oracle
from refbilevel.estimators.neumann import check_neumann_args, neumann_core, neumann_counts
from refbilevel.estimators.result import Estimate


def neumann_device(oracle, x, y, Q, *, alpha=None, truncation="fixed", variant="classical",
                   start=0, noise="host", device_rng=None, xp=None) -> Estimate:
    """The device path on the array module ``xp`` (default: CuPy). ``xp=numpy`` runs the
    same code on the CPU (used by the tests where no GPU is available)."""
    require_oracle(oracle)
    xp = _cupy() if xp is None else xp
    Q, alpha, truncation, variant, start = check_neumann_args(
        oracle.problem, Q, alpha, truncation, variant, start)
    dev = DeviceOracle(oracle, xp, noise=noise, device_rng=device_rng)
    x, y, _, batch = device_batch(oracle.problem, xp, x, y)
    value = neumann_core(dev, x, y, batch, Q, alpha, truncation, variant, start, xp=xp)
    return Estimate(value=value, counts=neumann_counts(Q, variant))


@register("estimator", "neumann", "cupy")
def neumann_hypergradient_cupy(oracle, x, y, Q: int, *, alpha: float | None = None,
                               truncation: str = "fixed", variant: str = "classical",
                               start: int = 0, noise: str = "host",
                               device_rng=None) -> Estimate:
    """CuPy backend of :func:`refbilevel.estimators.neumann.neumann_hypergradient`; extra
    arguments ``noise`` ("host" or "device") and ``device_rng`` (a cupy Generator)."""
    return neumann_device(oracle, x, y, Q, alpha=alpha, truncation=truncation,
                          variant=variant, start=start, noise=noise, device_rng=device_rng)
