"""Shared test configuration."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

# One profile for every run. CI runs exactly the README's test command and sets
# no environment, so a profile chosen by a CI variable would never be the one CI
# uses. Property tests get 100 examples each; the fuzz tests set their own,
# larger counts (thousands in all: tests/vendor_adapter/test_core_fuzz.py), and
# `pytest -m slow` runs the long fuzzing. VRM_HYPOTHESIS_PROFILE=quick is for a
# fast local loop only.
settings.register_profile(
    "default", max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("quick", settings.get_profile("default"), max_examples=10)
settings.load_profile(os.environ.get("VRM_HYPOTHESIS_PROFILE", "default"))
