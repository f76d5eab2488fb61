"""The native driver on its own, without an engine: what it promises through the protocol,
checked against /proc with real processes."""

from __future__ import annotations

import dataclasses
import os
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import pytest

from lifecycle.logs import Stream
from lifecycle.model import ContainerSpec
from lifecycle.runtime import RuntimeDriver, RuntimeHandle, SpawnFailure
from lifecycle.runtime.native import NativeDriver

from ...oshelpers import group_alive, group_states, none_paused, wait_for_file, whole_group_paused

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("native_containment")]


class Recorder:
    """An OutputSink that keeps what it was fed, and what the exit callback saw."""

    def __init__(self) -> None:
        self.chunks: dict[Stream, bytearray] = {"stdout": bytearray(), "stderr": bytearray()}
        self.finished: list[Stream] = []
        self.exits: list[tuple[bytes, list[int]]] = []
        self.exited = anyio.Event()
        self.pgid = 0

    def feed(self, stream: Stream, chunk: bytes) -> None:
        self.chunks[stream] += chunk

    def finish(self, stream: Stream) -> None:
        self.finished.append(stream)

    def on_exit(self) -> None:
        # What holds at the moment the driver reports the exit.
        self.exits.append((bytes(self.chunks["stdout"]), group_alive(self.pgid)))
        self.exited.set()


@asynccontextmanager
async def opened() -> AsyncIterator[NativeDriver]:
    async with anyio.create_task_group() as group:
        driver = NativeDriver()
        driver.open(group)
        try:
            yield driver
        finally:
            with anyio.CancelScope(shield=True):
                await driver.aclose(5)


async def spawn(driver: NativeDriver, command: list[str], sink: Recorder) -> RuntimeHandle:
    handle = await driver.spawn(
        ContainerSpec.build(command), environment=None, output=sink, on_exit=sink.on_exit
    )
    sink.pgid = handle.pid
    return handle


def test_the_native_driver_satisfies_the_protocol() -> None:
    """NativeDriver is a RuntimeDriver named "native"."""
    driver = NativeDriver()
    assert isinstance(driver, RuntimeDriver)
    assert "native" == driver.name


async def test_exit_is_reported_once_with_its_code_after_output_and_leftovers() -> None:
    """The main process exits 3 with a child left in its group: on_exit comes once, after the
    last output reached the sink and after the leftover is gone."""
    sink = Recorder()
    with anyio.fail_after(10):
        async with opened() as driver:
            handle = await spawn(driver, ["sh", "-c", "sleep 60 & echo last; exit 3"], sink)
            assert handle.pid == os.getpgid(handle.pid)  # its own process group
            assert 3 == await handle.wait()
            await sink.exited.wait()
    assert [(b"last\n", [])] == sink.exits
    assert {"stdout", "stderr"} == set(sink.finished)
    assert (True, 3) == (handle.exited, handle.exit_code)


async def test_freeze_stops_the_whole_group_and_thaw_resumes_it(tmp_path: Path) -> None:
    """freeze() returns True once every member is stopped (/proc) or frozen (its cgroup);
    thaw() lets them run."""
    ready = tmp_path / "ready"
    sink = Recorder()
    with anyio.fail_after(15):
        async with opened() as driver:
            handle = await spawn(driver, ["sh", "-c", f"sleep 60 & echo $! > {ready}; wait"], sink)
            child = int(await wait_for_file(ready))
            assert await handle.freeze(5) is True
            assert whole_group_paused(handle.pid)
            assert {handle.pid, child} == set(group_states(handle.pid))
            assert (True, True) == (handle.frozen_now(), handle.stopped_now())
            await handle.thaw()
            assert none_paused(handle.pid)
            assert handle.frozen_now() is False
            assert handle.signal(signal.SIGKILL)
            assert 137 == await handle.wait()
            await sink.exited.wait()
    assert [] == group_alive(handle.pid)
    assert handle.frozen_now() is None  # exited: no answer any more


async def test_a_missing_executable_is_a_spawn_failure_and_leaks_nothing() -> None:
    """127 for a command that does not exist; no descriptor stays open, no process started."""
    sink = Recorder()
    with anyio.fail_after(10):
        async with opened() as driver:
            before = set(os.listdir("/proc/self/fd"))
            for _ in range(20):
                with pytest.raises(SpawnFailure) as raised:
                    await spawn(driver, ["/no/such/binary"], sink)
                assert 127 == raised.value.exit_code
            assert before == set(os.listdir("/proc/self/fd"))
    assert [] == sink.exits


async def test_no_failed_spawn_leaks_a_descriptor(tmp_path: Path) -> None:
    """200 failed spawns of every kind (not found, not executable, no working directory, an
    argument exec cannot take) leave the descriptor table as it was."""
    not_executable = tmp_path / "script"
    not_executable.write_text("#!/bin/sh\n")
    # Built directly (ContainerSpec.build refuses these): the driver must not rely on it.
    unencodable = ContainerSpec.build(["true"])
    failing: list[tuple[ContainerSpec, type[BaseException]]] = [
        (ContainerSpec.build(["/no/such/binary"]), SpawnFailure),
        (ContainerSpec.build([str(not_executable)]), SpawnFailure),
        (ContainerSpec.build(["true"], cwd=tmp_path / "gone"), SpawnFailure),
        (dataclasses.replace(unencodable, command=("echo", "\ud800")), UnicodeEncodeError),
        (dataclasses.replace(unencodable, env={"K": "\ud800"}), UnicodeEncodeError),
    ]
    sink = Recorder()
    with anyio.fail_after(30):
        async with opened() as driver:
            before = sorted(os.listdir("/proc/self/fd"))
            for attempt in range(200):
                spec, error = failing[attempt % len(failing)]
                with pytest.raises(error):
                    await driver.spawn(
                        spec,
                        environment=None if not spec.env else dict(spec.env),
                        output=sink,
                        on_exit=sink.on_exit,
                    )
            assert before == sorted(os.listdir("/proc/self/fd"))
    assert [] == sink.exits
