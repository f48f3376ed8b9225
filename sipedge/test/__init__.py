"""
Tests for sipedge.

Registers the hypothesis profiles (cf. C{twisted/trial/test/__init__.py}):
C{sipedge-ci} (the default: deterministic, no deadline) and C{explore} (more
examples, random) chosen with C{SIPEDGE_HYPOTHESIS_PROFILE=explore}.
"""

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "sipedge-ci",
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=True,
    database=None,
)
settings.register_profile(
    "explore",
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    max_examples=2000,
)
settings.load_profile(os.environ.get("SIPEDGE_HYPOTHESIS_PROFILE", "sipedge-ci"))
