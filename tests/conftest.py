"""Shared test configuration.

Async tests are marked ``pytest.mark.anyio`` and run once per backend through
anyio's pytest plugin (the ``anyio_backend`` fixture below). pytest-asyncio,
in strict mode, only serves tests marked ``pytest.mark.asyncio``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from hypothesis import settings

# "ci" bounds the work so the suite stays fast; "soak" is for long local runs
# (HYPOTHESIS_PROFILE=soak make pytest). No deadline: a loaded CI machine
# must not turn a slow example into a failure.
settings.register_profile("ci", max_examples=300, deadline=None)
settings.register_profile("soak", max_examples=20_000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """Every anyio test runs on both backends."""
    backend: str = request.param
    return backend


@pytest.fixture(autouse=True)
def no_child_processes_left() -> Iterator[None]:
    """After every test: no child of the test process remains, running or zombie."""
    yield
    # Imported lazily: the /proc helpers are Linux-only, like the engine.
    from .oshelpers import children_of_this_process  # noqa: PLC0415

    leftovers = children_of_this_process()
    assert {} == leftovers, f"processes left behind (pid: state): {leftovers}"


@pytest.fixture(autouse=True)
def structlog_unconfigured() -> Iterator[None]:
    """Each test starts and ends with structlog unconfigured, as an application would find it.

    (structlog.testing.capture_logs restores the old processors but leaves
    structlog marked as configured.)
    """
    import structlog  # noqa: PLC0415

    structlog.reset_defaults()
    yield
    structlog.reset_defaults()
