"""Output relays: past the engine's descriptor budget a container's output pipes are read
by a helper process, and nothing about its output or exit changes but the engine's
descriptor count. Real processes, both backends; the budget is forced to zero here so
every container is relayed (in use the first half of the soft limit is read directly)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import anyio
import pytest

from lifecycle import Engine
from lifecycle.runtime import _multiplex

from ..oshelpers import children_of_this_process, eventually

pytestmark = pytest.mark.anyio


@pytest.fixture(autouse=True)
def everything_relayed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_multiplex, "DIRECT_SHARE", 0.0)


def relays() -> list[int]:
    """The relay processes below this one."""
    found = []
    for pid in children_of_this_process():
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"_relay_main.py" in command:
            found.append(pid)
    return found


def open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


async def test_relayed_output_keeps_its_streams_order_and_end_before_the_exit() -> None:
    """Each stream's bytes arrive whole and in order, stdout apart from stderr, a megabyte
    included (the relay's writes block when the engine is behind, as a pipe's would), and
    the exit is reported only once both streams have ended."""
    script = (
        "echo out1; echo err1 >&2; echo out2; "
        "head -c 1048576 /dev/zero | tr '\\0' x; echo; echo err2 >&2; exit 4"
    )
    with anyio.fail_after(30):
        async with Engine(observe_interval=None) as engine:
            container = await engine.create(["sh", "-c", script], log_bytes=4 << 20)
            await container.start()
            assert 4 == await container.wait()
            assert 1 == len(relays())
            out = b"".join(line.data for line in container.logs(stderr=False))
            err = [line.text for line in container.logs(stdout=False)]
            assert out == b"out1\nout2\n" + b"x" * 1048576 + b"\n"
            assert ["err1", "err2"] == err
            assert 0 == engine.statistics().containers - 1
    assert [] == relays()  # the engine's exit ends its relay, reaped


async def test_a_relayed_container_costs_the_engine_one_descriptor() -> None:
    """50 running containers with captured output: the engine's own descriptors grow by
    about one each (the pidfd), not three."""
    with anyio.fail_after(30):
        async with Engine(observe_interval=None) as engine:
            warm = await engine.create(["sleep", "60"])  # the relay and its socket first
            await warm.start()
            before = open_descriptors()
            fleet = [await engine.create(["sleep", "60"]) for _ in range(50)]
            for container in fleet:
                await container.start()
            grown = open_descriptors() - before
            assert 50 <= grown < 60, grown
            for container in [warm, *fleet]:
                await container.kill()
            for container in [warm, *fleet]:
                assert 137 == await container.wait()


async def test_a_dead_relay_ends_the_streams_it_read_and_exits_still_complete() -> None:
    """SIGKILL of the relay: its containers' streams end for their readers (logged), and
    a container's exit is still reported, with its exit code."""
    with anyio.fail_after(30):
        async with Engine(observe_interval=None) as engine:
            container = await engine.create(["sh", "-c", "echo before; exec sleep 60"])
            await container.start()
            await eventually(lambda: [line.text for line in container.logs()] == ["before"])
            (relay,) = relays()
            os.kill(relay, signal.SIGKILL)
            await container.kill()
            assert 137 == await container.wait()
            assert ["before"] == [line.text for line in container.logs()]
