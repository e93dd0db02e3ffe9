"""Hypothesis profiles: "ci" (derandomized, the default, so CI runs are reproducible) and
"dev" (more examples, random); choose with HYPOTHESIS_PROFILE=dev."""

import os
from pathlib import Path

# Under pytest-xdist (the README's test command runs `-n 2` on CI's two cores) each worker
# compiles into its own Numba cache directory: two processes writing one cache at once can
# leave an index entry that points at the other's machine code (a segfault on load). Inside
# the checkout (git-ignored), so a fresh clone starts cold, and set before any test module
# imports Numba; subprocesses started by tests inherit it.
_WORKER = os.environ.get("PYTEST_XDIST_WORKER")
if _WORKER and "NUMBA_CACHE_DIR" not in os.environ:
    os.environ["NUMBA_CACHE_DIR"] = str(Path(__file__).parents[1] / ".numba-cache" / _WORKER)

from hypothesis import HealthCheck, settings  # noqa: E402

settings.register_profile(
    "ci", derandomize=True, max_examples=60, deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("dev", max_examples=500, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
