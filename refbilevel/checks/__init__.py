"""Shared machinery of the theory checks: claim records, verdicts, the runner and report.

A theory check (one script per claim in theory_checks/, docs/checks.rst) defines ``CLAIM``
(a :class:`ClaimInfo`), ``measure(mode, seed, backend) -> Measurement`` and
``plot(measurement, fig)``. The runner times it, writes ``<id>.json`` and ``<id>.png`` and a
summary table; a check fails when its claim fails **or** its negative control is not
rejected (a check that cannot fail proves nothing).

Every measured value says how uncertain it is: random ones (they depend on the seed) carry
an interval at a stated level with its method, deterministic ones are marked exact; each
check lists which is which under ``measured["uncertainty"]`` (helpers:
:mod:`refbilevel.checks.intervals`).
"""

from refbilevel.checks.verdict import ClaimInfo, Evidence, Measurement, Verdict

__all__ = ["ClaimInfo", "Evidence", "Measurement", "Verdict"]
