"""Hypothesis profiles: "ci" (derandomized, the default, so CI runs are reproducible) and
"dev" (more examples, random); choose with HYPOTHESIS_PROFILE=dev."""

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci", derandomize=True, max_examples=60, deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("dev", max_examples=500, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
