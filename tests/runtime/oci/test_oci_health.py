"""Health probes under an OCI runtime: `runc exec` (and crun's) inside the container's
namespaces, with its PID 1's environment; a probe past its timeout leaves nothing in the
container's cgroup. runc and crun, both backends."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from lifecycle import Engine
from lifecycle.model import Healthcheck

from ...oshelpers import eventually, freezer_cgroup
from .test_oci_driver import engine, runtime, store  # noqa: F401 -- the fixtures

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]


def _cgroup_processes(pid: int) -> list[int]:
    path = freezer_cgroup(pid)
    assert path is not None
    text = Path(f"/sys/fs/cgroup/freezer{path}/cgroup.procs").read_text()
    return sorted(int(line) for line in text.split())


async def test_the_probe_runs_inside_the_container(engine: Engine) -> None:
    inside = 'echo "$(hostname) $GREETING $(cat /proc/1/cmdline | tr "\\0" " ")"; [ $$ -ne 1 ]'
    check = Healthcheck(("CMD-SHELL", inside), interval=0.05, start_interval=0.05, timeout=10)
    with anyio.fail_after(30):
        container = await engine.create(
            ["sleep", "60"], image="busybox", env={"GREETING": "hello"}, healthcheck=check
        )
        await container.start()
        await container.wait_healthy(timeout=20)
        output = container.health.log[-1].output
        assert f"{container.short_id} hello sleep 60 \n" == output
        await container.stop(timeout=0)


async def test_a_probe_past_its_timeout_leaves_nothing_in_the_container(engine: Engine) -> None:
    check = Healthcheck(
        ("CMD", "sleep", "30"), interval=0.05, start_interval=0.05, timeout=0.3, retries=1
    )
    with anyio.fail_after(30):
        container = await engine.create(["sleep", "60"], image="busybox", healthcheck=check)
        await container.start()
        pid = container.pid
        assert pid is not None
        await eventually(lambda: container.health.status == "unhealthy", timeout=20)
        assert -1 == container.health.log[0].exit_code
        assert "Health check exceeded timeout (300ms)" == container.health.log[0].output
        # The probe is gone: only PID 1 (or PID 1 and a probe just begun) is in the cgroup,
        # and once the monitor is stopped by the stop, nothing but PID 1 was ever left.
        await eventually(lambda: len(_cgroup_processes(pid)) <= 2)
        await container.stop(timeout=0)
