"""Cancellation and engine exit never leave a zombie, a half transition, or a lie about the OS."""

from __future__ import annotations

import signal
from pathlib import Path

import anyio
import pytest

from lifecycle import Container, Engine, EngineClosedError, State

from ..oshelpers import group_alive, none_paused, term_ignoring, wait_for_file

pytestmark = pytest.mark.anyio


async def started(
    engine: Engine, command: list[str], ready: Path | None = None, **options: object
) -> Container:
    container = await engine.create(command, **options)  # type: ignore[arg-type]
    await container.start()
    if ready is not None:
        await wait_for_file(ready)
    return container


async def test_cancelled_in_the_middle_of_stop(tmp_path: Path) -> None:
    """A stop cancelled in its grace period kills and reaps at once; the container is stopped."""
    ready = tmp_path / "ready"
    with anyio.fail_after(10):
        async with Engine() as engine:
            container = await started(engine, term_ignoring(ready), ready, stop_timeout=30)
            group = container.pid
            assert group is not None
            scope = anyio.CancelScope()

            async def stop_it() -> None:
                with scope:
                    await container.stop()

            async with anyio.create_task_group() as tasks:
                tasks.start_soon(stop_it)
                await anyio.wait_all_tasks_blocked()
                assert State.RUNNING == container.state  # in its grace period
                scope.cancel()
            assert scope.cancelled_caught
            assert (State.STOPPED, 137) == (container.state, container.exit_code)
            assert [] == group_alive(group)


async def test_cancelled_restart_ends_stopped(tmp_path: Path) -> None:
    """A restart cancelled while stopping leaves the container stopped, nothing new spawned."""
    ready = tmp_path / "ready"
    with anyio.fail_after(10):
        async with Engine() as engine:
            container = await started(engine, term_ignoring(ready), ready, stop_timeout=30)
            group = container.pid
            assert group is not None
            with anyio.move_on_after(0.2) as scope:
                await container.restart()
            assert scope.cancelled_caught
            assert (State.STOPPED, 137, None) == (
                container.state,
                container.exit_code,
                container.pid,
            )
            assert [] == group_alive(group)


async def test_start_cancelled_before_it_begins_spawns_nothing() -> None:
    """start() in an already cancelled scope does nothing at all."""
    with anyio.fail_after(10):
        async with Engine() as engine:
            container = await engine.create(["sleep", "60"])
            with anyio.CancelScope() as scope:
                scope.cancel()
                await container.start()
            assert (State.CREATED, None, None) == (
                container.state,
                container.pid,
                container.started_at,
            )


async def cancel_while_queued(container: Container, holder: str, queued: str) -> bool:
    """Run ``holder`` (which holds the container's lock), queue ``queued`` behind it, cancel it.

    Returns whether the queued operation saw the cancellation.
    """
    queued_scope = anyio.CancelScope()

    async def run_queued() -> None:
        with queued_scope:
            await getattr(container, queued)()

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(getattr(container, holder))
        await anyio.wait_all_tasks_blocked()
        tasks.start_soon(run_queued)
        await anyio.wait_all_tasks_blocked()
        queued_scope.cancel()
    return queued_scope.cancelled_caught


@pytest.mark.parametrize(
    ("holder", "queued", "expected"),
    [("stop", "start", State.STOPPED), ("restart", "pause", State.RUNNING)],
)
async def test_operation_cancelled_while_queued_never_happens(
    holder: str, queued: str, expected: State, tmp_path: Path
) -> None:
    """A start (or pause) cancelled while waiting behind a slow operation does nothing."""
    ready = tmp_path / "ready"
    with anyio.fail_after(10):
        async with Engine() as engine:
            container = await started(engine, term_ignoring(ready), ready, stop_timeout=0.5)
            first_pid = container.pid
            assert await cancel_while_queued(container, holder, queued)
            assert expected == container.state
            assert 137 == container.exit_code  # the holder's stop escalated
            if expected is State.RUNNING:
                assert container.pid is not None
                assert first_pid != container.pid
                assert none_paused(container.pid)  # the pause never happened
            else:
                assert container.pid is None  # the start never happened


async def test_engine_exit_stops_running_and_paused_containers(tmp_path: Path) -> None:
    """Leaving the engine stops every live container concurrently and reaps every process."""
    ready = tmp_path / "ready"
    with anyio.fail_after(10):
        async with Engine() as engine:
            running = await started(engine, ["sleep", "60"])
            paused = await started(engine, ["sleep", "60"])
            await paused.pause()
            stubborn = await started(engine, term_ignoring(ready), ready, stop_timeout=0.5)
            created = await engine.create(["sleep", "60"])
            groups = [c.pid for c in (running, paused, stubborn)]
    assert [State.STOPPED] * 3 + [State.CREATED] == [
        c.state for c in (running, paused, stubborn, created)
    ]
    assert [143, 143, 137] == [c.exit_code for c in (running, paused, stubborn)]
    for group in groups:
        assert group is not None
        assert [] == group_alive(group)


async def test_engine_exit_by_exception_still_stops_everything() -> None:
    """An exception leaving the engine block propagates after every container is stopped."""
    containers: list[Container] = []

    async def run_and_fail() -> None:
        async with Engine() as engine:
            containers.append(await started(engine, ["sleep", "60"]))
            raise RuntimeError("boom")

    with anyio.fail_after(10), pytest.raises(RuntimeError, match="boom"):
        await run_and_fail()
    assert [State.STOPPED] == [c.state for c in containers]


async def test_engine_exit_by_cancellation_still_stops_everything(tmp_path: Path) -> None:
    """Cancelling the code around the engine still stops (with grace) and reaps every container."""
    ready = tmp_path / "ready"
    containers: list[Container] = []
    with anyio.fail_after(10):
        with anyio.CancelScope() as outer:
            async with Engine() as engine:
                containers.append(await started(engine, ["sleep", "60"]))
                containers.append(
                    await started(engine, term_ignoring(ready), ready, stop_timeout=0.3)
                )
                await containers[0].pause()
                outer.cancel()
                await anyio.sleep_forever()
        assert outer.cancelled_caught
    assert [(State.STOPPED, 143), (State.STOPPED, 137)] == [
        (c.state, c.exit_code) for c in containers
    ]


async def test_closed_engine_refuses_operations() -> None:
    """Before entry and after exit, the engine and its containers raise EngineClosedError."""
    engine = Engine()
    with pytest.raises(EngineClosedError, match="has not been entered"):
        await engine.create(["true"])
    with anyio.fail_after(10):
        async with engine:
            container = await engine.create(["true"])
    with pytest.raises(EngineClosedError, match="has shut down"):
        await container.start()
    with pytest.raises(EngineClosedError):
        await engine.create(["true"])
    with pytest.raises(RuntimeError, match="only once"):
        async with engine:
            pass


async def test_kill_sigkill_on_a_paused_container() -> None:
    """kill() on a paused container stops it with 137 (SIGKILL needs no SIGCONT)."""
    with anyio.fail_after(10):
        async with Engine() as engine:
            container = await started(engine, ["sleep", "60"])
            await container.pause()
            await container.kill(signal.SIGKILL)
            assert (State.STOPPED, 137) == (container.state, container.exit_code)


async def test_operation_queued_before_shutdown_does_not_run_after_it(tmp_path: Path) -> None:
    """A start queued behind a slow stop when the engine block ends is refused, not run."""
    ready = tmp_path / "ready"
    outcome: list[BaseException] = []
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tasks, Engine() as engine:
            container = await started(engine, term_ignoring(ready), ready, stop_timeout=0.5)

            async def start_later() -> None:
                try:
                    await container.start()
                except EngineClosedError as error:
                    outcome.append(error)

            tasks.start_soon(container.stop)
            await anyio.wait_all_tasks_blocked()
            tasks.start_soon(start_later)
            await anyio.wait_all_tasks_blocked()
            # Leaving the engine block while the stop holds the lock and the start waits.
    assert 1 == len(outcome)
    assert (State.STOPPED, None, 137) == (container.state, container.pid, container.exit_code)
