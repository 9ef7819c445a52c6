"""Shared fixtures and the hypothesis profiles."""

import gc
import os
import warnings
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings

# Seeded and bounded for CI; `HYPOTHESIS_PROFILE=dev` explores more, `CTXSCHED_MAX_EXAMPLES` sets the count.
_max_examples = int(os.environ.get("CTXSCHED_MAX_EXAMPLES", "0")) or None
settings.register_profile(
    "ci",
    derandomize=True,
    max_examples=_max_examples or 150,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("dev", max_examples=_max_examples or 1000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture
def collect_framework_loops() -> Iterator[None]:
    """Collect what an agent framework left behind (event loops it made and did not close: their sockets) while
    its test is still running, so the ResourceWarning is not raised later inside an unrelated test."""
    yield
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()
