"""Shared test configuration.

Async tests are marked ``pytest.mark.anyio`` and run once per backend through
anyio's pytest plugin (the ``anyio_backend`` fixture below). pytest-asyncio,
in strict mode, only serves tests marked ``pytest.mark.asyncio``.
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from .oshelpers import (
    MARKER_VARIABLE,
    children_of_this_process,
    escaped_test_processes,
    require_root,
)

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


@pytest.fixture(params=["cgroup", "process-group"])
def native_containment(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run the test once with each containment of the native driver (cgroup: root only;
    skipped otherwise, a failure in CI where LIFECYCLE_REQUIRE_TOOLS=1)."""
    from lifecycle.runtime.native import _driver  # noqa: PLC0415

    containment: str = request.param
    if containment == "cgroup":
        require_root("cgroup containment")
    monkeypatch.setattr(_driver, "DEFAULT_CONTAINMENT", containment)
    return containment


@pytest.fixture
def cgroup_containment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The native driver must contain containers in cgroups (root; else skip, in CI fail)."""
    from lifecycle.runtime.native import _driver  # noqa: PLC0415

    require_root("cgroup containment")
    monkeypatch.setattr(_driver, "DEFAULT_CONTAINMENT", "cgroup")


# Marks every process this test run starts (children inherit os.environ), so
# the leftover check also finds processes that escaped the process tree.
TEST_RUN_MARKER = f"{os.getpid()}-{secrets.token_hex(8)}"
os.environ[MARKER_VARIABLE] = TEST_RUN_MARKER
# A process that escaped to init and was SIGKILLed by the test's last line
# may take a moment to be gone (init has to reap it).
ESCAPED_GRACE = 2.0


@pytest.fixture(autouse=True)
def no_child_processes_left() -> Iterator[None]:
    """After every test: no process it started remains. No child of the test process
    (running or zombie), and no process that escaped to init carrying this run's marker."""
    yield
    leftovers = children_of_this_process()
    assert {} == leftovers, f"processes left behind (pid: state): {leftovers}"
    deadline = time.monotonic() + ESCAPED_GRACE
    escaped = escaped_test_processes(TEST_RUN_MARKER)
    while escaped and time.monotonic() < deadline:
        time.sleep(0.01)  # polling a condition with a deadline
        escaped = escaped_test_processes(TEST_RUN_MARKER)
    assert {} == escaped, f"processes escaped to init and left behind (pid: state): {escaped}"


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """After the whole run: no overlay mount the tests made is left (a leak fails the run)."""
    with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as mountinfo:
        leaked = [line.split()[4] for line in mountinfo if "pytest-of-" in line.split()[4]]
    if leaked:
        print(f"\nmounts left behind by the tests: {leaked}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    # Nor an OCI runtime's container, bundle or cgroup, nor a native container's cgroup.
    left: list[str] = []
    for runtime in ("runc", "crun"):
        state = Path("/run/lifecycle") / runtime
        if state.is_dir():
            left += [f"{runtime} container {entry.name}" for entry in state.iterdir()]
    bundles = Path("/run/lifecycle/bundles")
    if bundles.is_dir():
        left += [f"bundle directory {entry}" for entry in bundles.iterdir()]
    exits = Path("/run/lifecycle/exits")  # live_restore's monitors write them
    if exits.is_dir():
        left += [f"exit file {entry}" for entry in exits.iterdir()]
    for hierarchy in ("freezer", "pids", "memory"):
        for parent in ("lifecycle-oci", f"lifecycle/{os.getpid()}-*"):
            left += [
                f"cgroup {path}"
                for path in Path("/sys/fs/cgroup", hierarchy).glob(f"{parent}/*")
                if path.is_dir()
            ]
    if left:
        print(f"\nleft behind by the tests: {left}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


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
