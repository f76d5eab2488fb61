"""On a busy machine concurrent starts fork in worker threads: they overlap, leak no descriptor
into each other's children, and a cancellation during a threaded spawn still ends in a true
state. On an idle machine, or one start at a time, forks stay on the loop thread."""

from __future__ import annotations

import functools
import os
import threading
from typing import Any

import anyio
import anyio.lowlevel
import anyio.to_thread
import pytest

from lifecycle import Container, Engine, State
from lifecycle.runtime.native import _process

from ...oshelpers import eventually, proc_state

pytestmark = pytest.mark.anyio


class Spawns:
    """Wraps the real fork-and-exec: records the thread each ran on, and can report it as
    slower than it was (a busy machine, as the engine measures it) or hold it."""

    def __init__(self) -> None:
        self.threads: list[int] = []
        self.extra_seconds = 0.0
        self.inside = threading.Semaphore(0)
        self.release: threading.Event | None = None

    def wrap(self, real: Any) -> Any:
        def start_child(*args: Any, **options: Any) -> Any:
            self.threads.append(threading.get_ident())
            if self.release is not None:
                self.inside.release()
                if not self.release.wait(10):
                    raise AssertionError("never released")
            popen, pidfd, outputs, took = real(*args, **options)
            return popen, pidfd, outputs, took + self.extra_seconds

        return start_child


@pytest.fixture
def spawns(monkeypatch: pytest.MonkeyPatch) -> Spawns:
    recorder = Spawns()
    monkeypatch.setattr(_process, "_start_child", recorder.wrap(_process._start_child))
    return recorder


async def make_busy(engine: Engine, spawns: Spawns) -> None:
    """Two sequential starts that look slow (3 ms each): the engine now thinks it is busy."""
    spawns.extra_seconds = 0.003
    for _ in range(2):
        await (await engine.create(["sleep", "60"])).start()
    spawns.threads.clear()


async def start_all(containers: list[Container]) -> None:
    async with anyio.create_task_group() as group:
        for container in containers:
            group.start_soon(container.start)


def open_descriptors(pid: int) -> set[int]:
    return {int(fd) for fd in os.listdir(f"/proc/{pid}/fd")}


def only_standard_descriptors(pid: int) -> bool:
    return {0, 1, 2} == open_descriptors(pid)


async def test_a_lone_start_forks_on_the_loop_thread(spawns: Spawns) -> None:
    """One start at a time, even on a busy machine: no thread hop."""
    with anyio.fail_after(10):
        async with Engine() as engine:
            await make_busy(engine, spawns)
            for _ in range(3):
                container = await engine.create(["sleep", "60"])
                await container.start()
            assert [threading.get_ident()] * 3 == spawns.threads


async def test_concurrent_starts_on_an_idle_machine_fork_on_the_loop_thread(
    spawns: Spawns,
) -> None:
    """Fast forks (well under 1 ms): concurrent starts stay on the loop thread too."""
    with anyio.fail_after(20):
        async with Engine() as engine:
            spawns.extra_seconds = -1.0  # whatever the machine's load, forks look fast
            await start_all([await engine.create(["sleep", "60"]) for _ in range(10)])
            assert [threading.get_ident()] * 10 == spawns.threads


async def test_concurrent_starts_on_a_busy_machine_fork_in_worker_threads(
    spawns: Spawns,
) -> None:
    """30 starts at once when forks are slow: they leave the loop thread; every child runs
    with only 0, 1, 2 open (the other spawns' pipes are close-on-exec)."""
    with anyio.fail_after(20):
        async with Engine() as engine:
            await make_busy(engine, spawns)
            containers = [await engine.create(["sleep", "60"]) for _ in range(30)]
            await start_all(containers)
            loop_thread = threading.get_ident()
            assert 30 == len(spawns.threads)
            assert any(thread != loop_thread for thread in spawns.threads)
            assert 30 == len({container.pid for container in containers})
            for container in containers:
                assert container.pid is not None
                assert State.RUNNING == container.state
                assert proc_state(container.pid) in {"R", "S", "D"}
                # Polled: just after exec, sleep's own start-up (setlocale) may hold a
                # descriptor for a moment; an inherited one would stay, and fail this.
                await eventually(functools.partial(only_standard_descriptors, container.pid))


async def test_cancelled_during_threaded_spawns(spawns: Spawns) -> None:
    """Both forks complete and are committed; the cancellation then goes through; nothing leaks."""
    started: list[Container] = []
    went_on: list[Container] = []

    async def start_and_go_on(container: Container) -> None:
        await container.start()
        started.append(container)
        await anyio.lowlevel.checkpoint()  # where the cancellation is delivered
        went_on.append(container)

    def both_inside() -> None:
        for _ in range(2):
            if not spawns.inside.acquire(timeout=10):
                raise AssertionError("the spawns did not both reach a worker thread")

    with anyio.fail_after(20):
        async with Engine() as engine:
            await make_busy(engine, spawns)
            release = spawns.release = threading.Event()
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
