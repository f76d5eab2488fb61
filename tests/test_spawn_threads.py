"""Concurrent starts fork in worker threads: they overlap, leak no descriptor into each other's
children, and a cancellation during a threaded spawn still ends in a true state."""

from __future__ import annotations

import os
import threading
from typing import Any

import anyio
import anyio.lowlevel
import anyio.to_thread
import pytest

from lifecycle import Container, Engine, State, _process

from .oshelpers import proc_state

pytestmark = pytest.mark.anyio


@pytest.fixture
def spawning_threads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The thread each fork and exec ran on (the real _start_child, wrapped)."""
    threads: list[int] = []
    real = _process._start_child

    def recorded(*args: Any) -> Any:
        threads.append(threading.get_ident())
        return real(*args)

    monkeypatch.setattr(_process, "_start_child", recorded)
    return threads


def open_descriptors(pid: int) -> set[int]:
    return {int(fd) for fd in os.listdir(f"/proc/{pid}/fd")}


async def test_a_lone_start_forks_on_the_loop_thread(spawning_threads: list[int]) -> None:
    """One start at a time: no thread hop (the cheapest way on an idle loop)."""
    with anyio.fail_after(10):
        async with Engine() as engine:
            for _ in range(3):
                container = await engine.create(["sleep", "60"])
                await container.start()
            assert [threading.get_ident()] * 3 == spawning_threads


async def test_concurrent_starts_fork_in_worker_threads(spawning_threads: list[int]) -> None:
    """30 starts at once: forks leave the loop thread; every child runs with only 0, 1, 2 open."""
    containers: list[Container] = []
    with anyio.fail_after(20):
        async with Engine() as engine:
            for _ in range(30):
                containers.append(await engine.create(["sleep", "60"]))
            async with anyio.create_task_group() as group:
                for container in containers:
                    group.start_soon(container.start)
            loop_thread = threading.get_ident()
            assert 30 == len(spawning_threads)
            assert any(thread != loop_thread for thread in spawning_threads)
            pids = {container.pid for container in containers}
            assert 30 == len(pids)
            for container in containers:
                assert container.pid is not None
                assert State.RUNNING == container.state
                assert proc_state(container.pid) in {"R", "S", "D"}
                # The output pipes of the other 29 spawns (made close-on-exec) never
                # reach this child, whichever thread forked it.
                assert {0, 1, 2} == open_descriptors(container.pid)


async def test_cancelled_during_threaded_spawns(monkeypatch: pytest.MonkeyPatch) -> None:
    """Both forks complete and are committed; the cancellation then goes through; nothing leaks."""
    release = threading.Event()
    inside = threading.Semaphore(0)
    real = _process._start_child

    def held(*args: Any) -> Any:
        inside.release()
        if not release.wait(10):
            raise AssertionError("never released")
        return real(*args)

    monkeypatch.setattr(_process, "_start_child", held)

    def both_inside() -> None:
        for _ in range(2):
            if not inside.acquire(timeout=10):
                raise AssertionError("the spawns did not both reach a worker thread")

    started: list[Container] = []
    went_on: list[Container] = []

    async def start_and_go_on(container: Container) -> None:
        await container.start()
        started.append(container)
        await anyio.lowlevel.checkpoint()  # where the cancellation is delivered
        went_on.append(container)

    with anyio.fail_after(20):
        async with Engine() as engine:
            containers = [await engine.create(["sleep", "60"]) for _ in range(2)]
            with anyio.CancelScope() as scope:
                async with anyio.create_task_group() as group:
                    for container in containers:
                        group.start_soon(start_and_go_on, container)
                    await anyio.to_thread.run_sync(both_inside)
                    scope.cancel()  # both forks are under way in worker threads
                    release.set()
            assert (2, []) == (len(started), went_on)
            for container in containers:
                assert State.RUNNING == container.state
                assert container.pid is not None
                assert proc_state(container.pid) in {"R", "S", "D"}
        assert [State.STOPPED] * 2 == [container.state for container in containers]
