"""Faults: children that misbehave, an engine cancelled mid-flight, callbacks that fail or
block, running out of file descriptors, and PID reuse pressure. Real processes, both backends."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import anyio.to_thread
import pytest

from lifecycle import Container, Engine, Event, SpawnError, State

from ..oshelpers import eventually, group_alive, proc_state, wait_for_file

pytestmark = pytest.mark.anyio


async def test_a_child_that_forks_50_grandchildren_and_exits(tmp_path: Path) -> None:
    """All 50 grandchildren die with their parent: the group is empty when die is published."""
    pids = tmp_path / "pids"
    script = f"for i in $(seq 50); do sleep 60 & echo $! >> {pids}; done; exit 7"
    with anyio.fail_after(20):
        async with Engine() as engine:
            container = await engine.create(["sh", "-c", script])
            await container.start()
            group = container.pid
            assert group is not None
            assert 7 == await container.wait()
            grandchildren = [int(pid) for pid in pids.read_text().split()]
            assert 50 == len(grandchildren)
            assert [] == group_alive(group)
            assert all(proc_state(pid) in {None, "Z"} for pid in grandchildren)


async def test_a_grandchild_that_escapes_with_setsid(
    tmp_path: Path, native_containment: str
) -> None:
    """A setsid() grandchild leaves the process group. In a cgroup (root) it is still the
    container's and dies with it; with process-group containment it outlives the container:
    the documented limit without root.

    Either way the container stops when its own group is gone, and waits at
    most 2 s for output pipes the escapee still holds.
    """
    escaped = tmp_path / "escaped"
    script = f"setsid sh -c 'echo $$ > {escaped}; exec sleep 60' & sleep 60"
    with anyio.fail_after(20):
        async with Engine() as engine:
            container = await engine.create(["sh", "-c", script], capture_output=False)
            await container.start()
            runaway = int(await wait_for_file(escaped))
            group = container.pid
            assert group is not None
            assert os.getpgid(runaway) == runaway != group
            await container.stop()
            assert (State.STOPPED, 143) == (container.state, container.exit_code)
            assert [] == group_alive(group)
            if native_containment == "cgroup":
                assert proc_state(runaway) is None  # killed with its container, and reaped
                return
            assert proc_state(runaway) in {"S", "R"}  # the escapee lives on
    os.kill(runaway, signal.SIGKILL)
    # Re-parented to us (the engine was a child subreaper): ours to reap.
    await anyio.to_thread.run_sync(os.waitpid, runaway, 0)


async def test_a_child_that_closes_its_output_early() -> None:
    """Closed stdout/stderr end the capture early; the exit is still seen with its code."""
    with anyio.fail_after(10):
        async with Engine() as engine:
            container = await engine.create(
                ["sh", "-c", "echo bye; exec >&- 2>&-; sleep 0.2; exit 4"]
            )
            await container.start()
            assert 4 == await container.wait()
            assert ["bye"] == [line.text for line in container.logs()]


async def test_a_child_that_floods_output_can_still_be_stopped() -> None:
    """A child writing as fast as it can (and never reading stdin) stops promptly."""
    with anyio.fail_after(20):
        async with Engine() as engine:
            container = await engine.create(["sh", "-c", "yes flood"], log_bytes=256 * 1024)
            await container.start()
            await eventually(lambda: container.log_statistics().dropped_lines > 10_000)
            await container.stop()
            assert 143 == container.exit_code
            assert {"flood"} == {line.text for line in container.logs()}


async def test_a_child_that_stops_itself(tmp_path: Path) -> None:
    """A child that SIGSTOPs itself reads paused, and stops gracefully (SIGCONT follows SIGTERM)."""
    ready = tmp_path / "ready"
    script = (
        "import os, pathlib, signal, sys\n"
        "signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))\n"
        f"pathlib.Path({str(ready)!r}).write_text('ready')\n"
        "os.kill(os.getpid(), signal.SIGSTOP)\n"
        "signal.pause()\n"
    )
    with anyio.fail_after(20):
        async with Engine() as engine:
            container = await engine.create([sys.executable, "-c", script], stop_timeout=10)
            await container.start()
            await wait_for_file(ready)
            assert container.pid is not None
            await eventually(lambda: proc_state(container.pid or 0) == "T")
            # Its whole group (itself) is stopped: that is what paused means.
            assert State.PAUSED == container.state
            started = time.monotonic()
            await container.stop()
            assert (State.STOPPED, 0) == (container.state, container.exit_code)
            assert time.monotonic() - started < 5  # it did not wait out the timeout


async def test_engine_cancelled_in_the_middle_of_100_concurrent_operations() -> None:
    """Cancelled mid-flight: every container ends created or stopped, nothing runs."""
    containers: list[Container] = []

    async def churn(engine: Engine, index: int) -> None:
        container = await engine.create(["sleep", "60"], name=f"c{index}", stop_timeout=1)
        containers.append(container)
        await container.start()
        await container.pause()
        await container.unpause()
        await container.restart()
        await container.stop()

    with anyio.fail_after(30):
        with anyio.CancelScope() as scope:
            async with Engine() as engine, anyio.create_task_group() as group:
                for index in range(100):
                    group.start_soon(churn, engine, index)
                # Cancel once the operations are under way (some live, some not yet).
                await eventually(
                    lambda: sum(c.state in (State.RUNNING, State.PAUSED) for c in containers) >= 10
                )
                scope.cancel()
    assert containers
    assert {State.CREATED, State.STOPPED} >= {c.state for c in containers}
    assert all(c.pid is None for c in containers)


async def test_a_blocking_async_callback_does_not_hold_up_the_engine(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A callback that never returns lags and drops; operations and other subscribers go on."""
    monkeypatch.setattr("lifecycle.engine._engine.SHUTDOWN_GRACE", 0.5)
    blocked: list[str] = []

    async def stuck(event: Event) -> None:
        blocked.append(event.action)
        await anyio.sleep_forever()

    with anyio.fail_after(20):
        async with Engine() as engine:
            engine.add_callback(stuck, max_buffer=4)
            async with engine.subscribe() as events:
                container = await engine.create(["sleep", "60"])
                await container.start()
                for _ in range(20):
                    await container.pause()
                    await container.unpause()
                received = 0
                while True:
                    try:
                        events.receive_nowait()
                        received += 1
                    except anyio.WouldBlock:
                        break
            statistics = engine.statistics()
    assert ["create"] == blocked
    assert 42 == received
    assert statistics.events_dropped >= 42 - 1 - 4


@pytest.fixture
def few_descriptors() -> Iterator[int]:
    """Lower this process's descriptor limit to a little above what is open now."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    yield soft
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


async def test_out_of_file_descriptors_during_spawn(few_descriptors: int) -> None:
    """EMFILE at start: a clear SpawnError (125), nothing leaked, and the engine keeps working."""
    soft, hard = few_descriptors, resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    with anyio.fail_after(20):
        async with Engine() as engine:
            container = await engine.create(["sleep", "60"])
            open_now = len(os.listdir("/proc/self/fd"))
            resource.setrlimit(resource.RLIMIT_NOFILE, (open_now + 1, hard))
            try:
                with pytest.raises(SpawnError) as caught:
                    await container.start()
            finally:
                resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
            assert 125 == caught.value.exit_code
            assert "too many open files" in str(caught.value)
            assert State.CREATED == container.state
            assert open_now == len(os.listdir("/proc/self/fd"))
            await container.start()  # with descriptors back, it works
            await container.stop()
            assert 143 == container.exit_code


STRANGERS = 100_000 if os.environ.get("LIFECYCLE_SOAK") else 1_500

CANARY = (
    "import os, signal, sys, pathlib\n"
    "log = pathlib.Path(sys.argv[1])\n"
    "def note(number, frame):\n"
    "    with log.open('a') as f: f.write(f'{number}\\n')\n"
    "for s in (signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1, signal.SIGCONT, signal.SIGINT):\n"
    "    signal.signal(s, note)\n"
    "pathlib.Path(sys.argv[2]).write_text(str(os.getpid()))\n"
    "while True: signal.pause()\n"
)


async def test_pid_reuse_pressure_never_signals_a_stranger(tmp_path: Path) -> None:
    """Thousands of short-lived processes while containers come and go: no stranger is signalled."""
    canaries = []
    for index in range(4):
        log, ready = tmp_path / f"canary{index}.log", tmp_path / f"canary{index}.ready"
        canary = subprocess.Popen([sys.executable, "-c", CANARY, str(log), str(ready)])  # noqa: ASYNC220
        canaries.append((canary, log, ready))
    try:
        for _, _, ready in canaries:
            await wait_for_file(ready)

        def churn_pids() -> None:
            # Strangers take and free PIDs as fast as they can (SOAK: enough to
            # wrap pid_max=32768 several times; CI: a few thousand).
            for _ in range(STRANGERS):
                subprocess.run(["true"], check=True)

        async def lifecycles(engine: Engine) -> None:
            for _ in range(150):
                container = await engine.create(["sh", "-c", "exit 0"])
                await container.start()
                await container.wait()
                await container.stop()  # after the die: a no-op, never a stale signal
                await container.remove()

        with anyio.fail_after(120):
            async with Engine() as engine, anyio.create_task_group() as group:
                group.start_soon(anyio.to_thread.run_sync, churn_pids)
                group.start_soon(lifecycles, engine)
                group.start_soon(lifecycles, engine)
        for process, log, _ in canaries:
            assert process.poll() is None
            assert not log.exists(), f"a stranger got signals: {log.read_text()}"
    finally:
        for process, _, _ in canaries:
            process.kill()
            process.wait()
