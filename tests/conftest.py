"""Hypothesis profiles and shared fixtures.

Profiles (CONNECTOME_HYPOTHESIS_PROFILE selects one; default "ci" when $CI is set, else "dev"):
  ci   derandomize, no example database, no deadline; example counts sized so the whole
       suite stays within a few minutes on 2 cores
  dev  25 examples (quick local loop)
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

CI_MAX_EXAMPLES = 200

settings.register_profile(
    "ci",
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=CI_MAX_EXAMPLES,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "dev",
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
_default = "ci" if os.environ.get("CI") else "dev"
settings.load_profile(os.environ.get("CONNECTOME_HYPOTHESIS_PROFILE", _default))


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


@pytest.fixture
def threads():
    """Restore the global thread count after a test that changes it."""
    import connectome as cx

    before = cx.get_num_threads()
    yield cx
    cx.set_num_threads(before)


def pytest_report_header(config):
    import connectome

    return (
        f"connectome {connectome.__version__} from {os.path.dirname(connectome.__file__)}; "
        f"hypothesis profile {settings._current_profile!r}; threads {connectome.get_num_threads()}"
    )
