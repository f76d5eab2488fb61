"""What a container is made of: every process it started, also those that left its process
group or were orphaned. Real processes, checked against /proc and the cgroup files, both
backends; cgroup containment needs root (skipped without, required in CI)."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio
import pytest

from lifecycle import Container, Engine, State
from lifecycle.containment import is_subreaper

from ..oshelpers import (
    all_processes,
    eventually,
    freezer_state,
    group_alive,
    proc_state,
    read_proc_stat,
    wait_for_file,
    write_freezer,
)
from .test_outside_stops import next_event, started, state_now, watched

pytestmark = pytest.mark.anyio

LIFECYCLE_FREEZER = Path("/sys/fs/cgroup/freezer/lifecycle")


def escaping(how: str, record: Path) -> list[str]:
    """A container whose child leaves the process group (``how``), records its pid, sleeps."""
    if how == "setsid":  # double fork + setsid: a new session, re-parented away from us
        child = f"(setsid sleep 300 & echo $! > {record}) ; exec sleep 300"
        return ["sh", "-c", child]
    script = (
        "import os, sys, time\n"
        "if os.fork() == 0:\n"
        "    os.setpgid(0, 0)\n"
        f"    open({str(record)!r}, 'w').write(str(os.getpid()))\n"
        "    time.sleep(300)\n"
        "    sys.exit(0)\n"
        "time.sleep(300)\n"
    )
    return [sys.executable, "-c", script]


def gone(pid: int) -> bool:
    """Neither running nor a zombie: nothing of ``pid`` is left."""
    return proc_state(pid) is None


def in_group(pgid: int) -> dict[int, str]:
    """Every process of group ``pgid``, zombies included."""
    return {pid: stat.state for pid, stat in all_processes().items() if stat.pgrp == pgid}


async def escapee(engine: Engine, how: str, tmp_path: Path) -> tuple[Container, int]:
    record = tmp_path / "escapee"
    container = await engine.create(escaping(how, record))
    await container.start()
    pid = int(await wait_for_file(record))
    assert container.pid is not None
    group = container.pid

    def left_the_group() -> bool:
        # The recorded pid calls setsid()/setpgid() a moment after it is written down.
        stat = read_proc_stat(pid)
        return stat is not None and stat.state in {"S", "R"} and stat.pgrp != group

    await eventually(left_the_group)
    return container, pid


def container_cgroups() -> list[Path]:
    """The container cgroups of this process's engines (directories, not control files)."""
    return [path for path in LIFECYCLE_FREEZER.glob(f"{os.getpid()}-*/*") if path.is_dir()]


Ending = Callable[[Container], Awaitable[object]]


async def _stop(container: Container) -> None:
    await container.stop(timeout=5)


async def _kill(container: Container) -> None:
    await container.kill()
    await container.wait()


async def _main_exits(container: Container) -> None:
    assert container.pid is not None
    os.kill(container.pid, signal.SIGKILL)  # PID 1 dies on its own: the rest dies with it
    await container.wait()


ENDINGS: dict[str, Ending] = {"stop": _stop, "kill": _kill, "main exits": _main_exits}


@pytest.mark.parametrize("how", ["setsid", "setpgid"])
@pytest.mark.parametrize("ending", sorted(ENDINGS))
@pytest.mark.usefixtures("cgroup_containment")
async def test_a_process_that_left_the_group_dies_with_its_container(
    tmp_path: Path, how: str, ending: str
) -> None:
    """With a cgroup, a child that called setsid() or setpgid(0, 0) is still the container's:
    stop(), kill() and its main process dying each end it; its cgroup is removed."""
    with anyio.fail_after(20):
        async with Engine() as engine:
            assert engine.statistics().containment == "cgroup v1 (freezer, pids)"
            container, pid = await escapee(engine, how, tmp_path)
            await ENDINGS[ending](container)
            assert gone(pid), (pid, proc_state(pid))
            assert State.STOPPED == container.state
            assert [] == container_cgroups()
    assert [] == list(LIFECYCLE_FREEZER.glob(f"{os.getpid()}-*"))


@pytest.mark.parametrize("how", ["setsid", "setpgid"])
@pytest.mark.usefixtures("cgroup_containment")
async def test_a_process_that_left_the_group_dies_at_engine_exit(tmp_path: Path, how: str) -> None:
    """Leaving the engine's block stops the container, and the escaped child with it."""
    with anyio.fail_after(20):
        async with Engine() as engine:
            container, pid = await escapee(engine, how, tmp_path)
    assert gone(pid)
    assert State.STOPPED == container.state


@pytest.mark.usefixtures("cgroup_containment")
async def test_pause_freezes_and_signals_reach_a_process_that_left_the_group(
    tmp_path: Path,
) -> None:
    """The freezer holds the escaped child too (FROZEN), and kill() reaches it."""
    with anyio.fail_after(20):
        async with Engine() as engine:
            container, pid = await escapee(engine, "setsid", tmp_path)
            await container.pause()
            assert "FROZEN" == freezer_state(pid) == freezer_state(container.pid or 0)
            await container.unpause()
            assert "THAWED" == freezer_state(pid)
            await container.kill(signal.SIGTERM)  # sleep dies of it, escapee included
            await eventually(lambda: gone(pid))
            await container.wait()


async def test_an_orphan_in_the_group_keeps_the_container_running_and_dies_with_it(
    native_containment: str,
) -> None:
    """A group member whose parent exited (re-parented) still counts: stopping only the main
    process leaves the container running; after stop() nothing of the group is left, not
    even a zombie."""
    with anyio.fail_after(20):
        async with Engine() as engine:
            container = await engine.create(["sh", "-c", "(sleep 300 &) ; exec sleep 300"])
            await container.start()
            main = container.pid
            assert main is not None
            await eventually(lambda: len(group_alive(main)) == 2)
            orphan = next(pid for pid in group_alive(main) if pid != main)
            assert all_processes()[orphan].ppid != main  # re-parented: no descendant of main
            os.kill(main, signal.SIGSTOP)
            await eventually(lambda: proc_state(main) == "T")
            assert State.RUNNING == container.state  # the orphan still runs
            await container.stop(timeout=5)
            assert {} == in_group(main)


async def test_the_engine_is_a_child_subreaper_while_it_runs(native_containment: str) -> None:
    """Orphans of a container come back to the engine (to be reaped), only while it runs."""
    before = is_subreaper()
    with anyio.fail_after(10):
        async with Engine() as engine:
            await engine.create(["true"])
            assert is_subreaper()
            assert native_containment in {"cgroup", "process-group"}
            expected = "process group" if native_containment == "process-group" else "cgroup"
            assert expected in (engine.statistics().containment or "")
    assert before == is_subreaper()


@pytest.mark.usefixtures("cgroup_containment")
async def test_with_a_cgroup_sigcont_does_not_unpause_but_the_freezer_does() -> None:
    """Docker's rule with a cgroup: a paused (frozen) container stays paused through SIGCONT;
    frozen from outside (the freezer written by hand) it reads paused, thawed it reads running."""
    with anyio.fail_after(15):
        async with watched(None, {"pause", "unpause"}) as (engine, events):
            container, pid = await started(engine, ["sleep", "60"])
            await container.pause()
            await next_event(events)
            os.killpg(pid, signal.SIGCONT)
            assert "FROZEN" == freezer_state(pid)
            assert State.PAUSED == state_now(container)
            await container.unpause()
            await next_event(events)
            write_freezer(pid, "FROZEN")
            await eventually(lambda: freezer_state(pid) == "FROZEN")
            assert State.PAUSED == state_now(container)
            event = await next_event(events)
            assert ("pause", "true") == (event.action, event.attributes["external"])
            write_freezer(pid, "THAWED")
            assert State.RUNNING == state_now(container)
            event = await next_event(events)
            assert ("unpause", "true") == (event.action, event.attributes["external"])
            await container.stop()
