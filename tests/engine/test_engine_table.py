"""Every row of the transition table, driven on a real child process and checked in /proc."""

from __future__ import annotations

import os
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio
import pytest

from lifecycle import TRANSITIONS, Container, ContainerNotFoundError, Engine, State, Trigger

from ..oshelpers import eventually, group_alive, proc_state, whole_group_paused, write_freezer

pytestmark = pytest.mark.anyio

ROWS = [
    (source, trigger, dest)
    for source, row in TRANSITIONS.items()
    if source is not None
    for trigger, dest in row.items()
]


async def bring_to(container: Container, state: State) -> None:
    """Move a new container to ``state`` through real operations."""
    if state in (State.RUNNING, State.PAUSED, State.STOPPED):
        await container.start()
    if state is State.PAUSED:
        await container.pause()
    if state is State.STOPPED:
        await container.stop()


def assert_os_agrees(container: Container, group: int | None) -> None:
    """The container's state is what /proc says about its process group."""
    if container.state is State.RUNNING:
        assert container.pid is not None
        assert proc_state(container.pid) in {"R", "S", "D"}
    elif container.state is State.PAUSED:
        assert container.pid is not None
        assert whole_group_paused(container.pid)
    else:
        assert container.pid is None
        if group is not None:
            assert [] == group_alive(group)


async def make_it_die(container: Container, fifo: Path) -> None:
    """The process exits by itself when running; a paused one is killed from outside.

    A process frozen by a cgroup v1 freezer dies of SIGKILL only once thawed
    (the kernel's rule, and Docker's on such hosts): thawed from outside too.
    """
    assert container.pid is not None
    if container.state is State.PAUSED:
        os.kill(container.pid, signal.SIGKILL)
        write_freezer(container.pid, "THAWED")
    else:
        with fifo.open("w") as writer:  # the child is blocked reading it: it exits 4
            writer.write("go\n")
    await container.wait()


def action_for(trigger: Trigger, fifo: Path) -> Callable[[Container], Awaitable[object]]:
    actions: dict[Trigger, Callable[[Container], Awaitable[object]]] = {
        Trigger.START: lambda c: c.start(),
        Trigger.PAUSE: lambda c: c.pause(),
        Trigger.UNPAUSE: lambda c: c.unpause(),
        Trigger.STOP: lambda c: c.stop(),
        Trigger.KILL: lambda c: c.kill(),
        Trigger.RESTART: lambda c: c.restart(),
        Trigger.REMOVE: lambda c: c.remove(),
        Trigger.DIE: lambda c: make_it_die(c, fifo),
    }
    return actions[trigger]


@pytest.mark.parametrize(("source", "trigger", "dest"), ROWS, ids=str)
async def test_table_row_on_a_real_process(
    source: State, trigger: Trigger, dest: State, tmp_path: Path
) -> None:
    """Each legal (state, trigger) reaches DESIGN.md's target, and /proc agrees."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    # Reads the fifo (exit 4 when written to); SIGTERM kills it (143).
    command = ["sh", "-c", f"read line < {fifo}; exit 4"]
    with anyio.fail_after(20):
        async with Engine() as engine:
            container = await engine.create(command, name="row", stop_timeout=5)
            await bring_to(container, source)
            assert source == container.state
            before_pid = container.pid
            await action_for(trigger, fifo)(container)
            assert dest == container.state
            assert_os_agrees(container, before_pid)
            if trigger is Trigger.RESTART:
                assert container.pid is not None
                assert before_pid != container.pid
                if before_pid is not None:
                    await eventually(lambda: [] == group_alive(before_pid))
            expected_codes = {
                Trigger.STOP: 143,
                Trigger.KILL: 137,
                Trigger.DIE: 137 if source is State.PAUSED else 4,
            }
            if trigger in expected_codes:
                assert expected_codes[trigger] == container.exit_code
            if trigger is Trigger.REMOVE:
                with pytest.raises(ContainerNotFoundError):
                    engine.get("row")
                assert [] == engine.containers()
