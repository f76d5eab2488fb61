"""Stops and resumes from outside the engine: a group stopped by anyone reads as paused, a
paused group resumed by anyone reads as running, each with its event. Real processes, /proc,
both backends."""

from __future__ import annotations

import os
import signal
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import anyio.to_thread
import pytest

from lifecycle import Container, Engine, Event, State, Subscription

from ..oshelpers import (
    eventually,
    proc_state,
    wait_for_file,
    whole_group_paused,
    write_freezer,
)

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("native_containment")]


def state_now(container: Container) -> State:
    """A fresh read of ``container.state`` (each read looks at /proc; a type checker that
    narrows the property after one assert would call the next one unreachable)."""
    return container.state


def stopped(pid: int) -> bool:
    return proc_state(pid) == "T"


@asynccontextmanager
async def watched(
    observe_interval: float | None, actions: Iterable[str] | None = None
) -> AsyncIterator[tuple[Engine, Subscription]]:
    """An engine and a subscription to its events."""
    async with (
        Engine(observe_interval=observe_interval) as engine,
        engine.subscribe(actions=actions) as events,
    ):
        yield engine, events


async def next_event(events: Subscription) -> Event:
    with anyio.fail_after(5):
        return await events.__anext__()


async def started(engine: Engine, command: list[str]) -> tuple[Container, int]:
    container = await engine.create(command)
    await container.start()
    assert container.pid is not None
    return container, container.pid


async def test_a_group_stopped_from_outside_reads_paused_and_unpauses() -> None:
    """SIGSTOP to the group from outside: state is paused (pause event, external); unpause works."""
    with anyio.fail_after(15):
        async with watched(None, {"pause", "unpause"}) as (engine, events):
            container, pid = await started(engine, ["sleep", "60"])
            os.killpg(pid, signal.SIGSTOP)
            await eventually(lambda: stopped(pid))
            assert State.PAUSED == state_now(container)
            event = await next_event(events)
            assert ("pause", State.RUNNING, State.PAUSED) == (
                event.action,
                event.from_state,
                event.to_state,
            )
            assert "true" == event.attributes["external"]
            await container.unpause()
            assert proc_state(pid) in {"R", "S", "D"}
            assert State.RUNNING == state_now(container)
            event = await next_event(events)
            assert ("unpause", None) == (event.action, event.attributes.get("external"))


async def test_a_paused_group_resumed_from_outside_reads_running(native_containment: str) -> None:
    """A paused container resumed from outside (SIGCONT; with a cgroup, its freezer thawed):
    running again (unpause event, external)."""
    with anyio.fail_after(15):
        async with watched(None, {"pause", "unpause"}) as (engine, events):
            container, pid = await started(engine, ["sleep", "60"])
            await container.pause()
            assert None is (await next_event(events)).attributes.get("external")
            if native_containment == "cgroup":
                assert write_freezer(pid, "THAWED")
            else:
                os.killpg(pid, signal.SIGCONT)
            assert State.RUNNING == state_now(container)
            assert proc_state(pid) in {"R", "S", "D"}
            event = await next_event(events)
            assert ("unpause", State.PAUSED, State.RUNNING, "true") == (
                event.action,
                event.from_state,
                event.to_state,
                event.attributes.get("external"),
            )
            await container.pause()  # and the engine can pause it again
            assert whole_group_paused(pid)


async def test_the_engine_notices_when_nobody_reads_the_state() -> None:
    """With observe_interval, subscribers hear of an outside stop and resume on their own."""
    with anyio.fail_after(15):
        async with watched(0.05, {"pause", "unpause"}) as (engine, events):
            container, pid = await started(engine, ["sleep", "60"])
            os.killpg(pid, signal.SIGSTOP)
            event = await next_event(events)
            assert ("pause", "true") == (event.action, event.attributes["external"])
            assert stopped(pid)
            os.killpg(pid, signal.SIGCONT)
            event = await next_event(events)
            assert ("unpause", "true") == (event.action, event.attributes["external"])
            assert State.RUNNING == state_now(container)


async def test_an_operation_starts_from_what_the_os_says(tmp_path: Path) -> None:
    """unpause() right after an outside SIGSTOP, with no read in between, is accepted."""
    with anyio.fail_after(15):
        async with watched(None) as (engine, events):
            container, pid = await started(engine, ["sleep", "60"])
            os.killpg(pid, signal.SIGSTOP)
            await eventually(lambda: stopped(pid))
            await container.unpause()
            assert proc_state(pid) in {"R", "S", "D"}
            actions = [(await next_event(events)).action for _ in range(4)]
            assert ["create", "start", "pause", "unpause"] == actions


async def test_a_group_stopped_only_in_part_stays_running(tmp_path: Path) -> None:
    """Paused means every process of the group is stopped: one running member keeps it running."""
    ready = tmp_path / "ready"
    command = ["sh", "-c", f"sleep 60 & a=$!; sleep 60 & echo $a $! > {ready}; wait"]
    with anyio.fail_after(15):
        async with Engine(observe_interval=None) as engine:
            container, pid = await started(engine, command)
            first, second = (int(word) for word in (await wait_for_file(ready)).split())
            os.kill(pid, signal.SIGSTOP)
            os.kill(first, signal.SIGSTOP)
            await eventually(lambda: stopped(pid) and stopped(first))
            assert State.RUNNING == state_now(container)
            os.kill(second, signal.SIGSTOP)
            await eventually(lambda: stopped(second))
            assert State.PAUSED == state_now(container)
            os.kill(first, signal.SIGCONT)
            assert State.RUNNING == state_now(container)
            await container.stop(timeout=5)
            assert (State.STOPPED, 143) == (container.state, container.exit_code)


async def test_a_read_from_another_thread_commits_nothing() -> None:
    """Off the event loop's thread, state is the last committed one; the loop's read commits."""
    with anyio.fail_after(15):
        async with Engine(observe_interval=None) as engine:
            container, pid = await started(engine, ["sleep", "60"])
            os.killpg(pid, signal.SIGSTOP)
            await eventually(lambda: stopped(pid))
            assert State.RUNNING == await anyio.to_thread.run_sync(lambda: container.state)
            assert State.PAUSED == state_now(container)
            assert State.PAUSED == await anyio.to_thread.run_sync(lambda: container.state)


async def test_the_observer_reaches_every_container_of_a_fleet() -> None:
    """The periodic look works through the fleet in slices (checkpoints between them), and
    still reaches every container: the last of 300 stopped from outside becomes paused,
    with its event, without anyone reading its state; and the fleet graph counts it
    paused from the committed state alone."""
    async with watched(0.05, actions={"pause"}) as (engine, events):
        fleet = [await engine.create(["sleep", "60"]) for _ in range(300)]
        for container in fleet:
            await container.start()
        last = fleet[-1]
        assert last.pid is not None
        os.kill(last.pid, signal.SIGSTOP)
        event = await next_event(events)
        assert (last.id, "true") == (event.container_id, event.attributes["external"])
        assert 'paused [label="paused (1)"' in engine.graph().source
        for container in fleet:
            await container.kill()
