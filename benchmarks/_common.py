"""Shared helpers for the benchmarks: timing rounds, medians, the raw-anyio baseline."""

from __future__ import annotations

import contextlib
import os
import signal
import statistics
import subprocess
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import anyio
import anyio.abc
import anyio.lowlevel

from lifecycle import Engine


@dataclass(frozen=True)
class Measure:
    """Samples of one quantity over several rounds."""

    name: str
    samples: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    def spread(self, scale: float = 1.0, digits: int = 1) -> str:
        return f"{min(self.samples) * scale:.{digits}f}-{max(self.samples) * scale:.{digits}f}"


def proc_state(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as file:
            data = file.read()
    except OSError:
        return None
    return data[data.rindex(b")") + 2 : data.rindex(b")") + 3].decode()


async def wait_stopped(pid: int) -> None:
    """Spin on checkpoints, then back off, until /proc shows the process stopped (T)."""
    delay = 0.0005
    for _ in range(20):
        if proc_state(pid) == "T":
            return
        await anyio.lowlevel.checkpoint()
    while proc_state(pid) != "T":
        await anyio.sleep(delay)
        delay = min(delay * 2, 0.05)


async def engine_cycle(engine: Engine) -> None:
    """The lifecycle cycle the benchmarks measure, through the engine."""
    container = await engine.create(["sleep", "60"])
    await container.start()
    await container.pause()
    await container.unpause()
    await container.stop()
    await container.remove()


async def raw_cycle() -> None:
    """The same lifecycle written directly with anyio.open_process and os.killpg, with the
    engine's stdio: stdin /dev/null, stdout and stderr pipes read to their end."""
    process = await anyio.open_process(
        ["sleep", "60"], stdin=subprocess.DEVNULL, start_new_session=True
    )
    try:
        os.killpg(process.pid, signal.SIGSTOP)
        await wait_stopped(process.pid)
        os.killpg(process.pid, signal.SIGCONT)
        os.killpg(process.pid, signal.SIGTERM)
        await process.wait()
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                await drain(stream)
    finally:
        await process.aclose()


async def drain(stream: anyio.abc.ByteReceiveStream) -> bytes:
    """Everything ``stream`` carries until its end."""
    chunks = []
    with contextlib.suppress(anyio.EndOfStream, anyio.ClosedResourceError):
        while True:
            chunks.append(await stream.receive())
    return b"".join(chunks)


def percentile(values: list[float], fraction: float) -> float:
    """The value at ``fraction`` (0.99: p99) of ``values``, nearest rank, no interpolation."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


async def timed(function: Callable[[], Awaitable[object]]) -> float:
    started = time.perf_counter()
    await function()
    return time.perf_counter() - started


def burn_cpu() -> subprocess.Popen[bytes]:
    """One CPU-bound process, to see how the ratios degrade under load.

    It ends by itself when the benchmark does (it checks its parent every few
    million iterations), so a killed benchmark leaves no burner behind.
    """
    script = (
        f"import os\nwhile os.getppid() == {os.getpid()}:\n"
        "    for _ in range(3_000_000):\n        pass\n"
    )
    return subprocess.Popen(["python3", "-c", script])


PHASES = ("create", "start", "pause", "unpause", "stop", "remove")


async def phased_cycles(engine: Engine, cycles: int) -> tuple[float, dict[str, float]]:
    """``cycles`` sequential create/start/pause/unpause/stop/remove cycles of ``sleep 60``:
    cycles/s and the mean milliseconds of each phase."""
    spent = dict.fromkeys(PHASES, 0.0)
    began = time.perf_counter()
    for _ in range(cycles):
        mark = time.perf_counter()
        container = await engine.create(["sleep", "60"])
        for phase, step in (
            ("create", None),
            ("start", container.start),
            ("pause", container.pause),
            ("unpause", container.unpause),
            ("stop", container.stop),
            ("remove", container.remove),
        ):
            if step is not None:
                await step()
            now = time.perf_counter()
            spent[phase] += now - mark
            mark = now
    elapsed = time.perf_counter() - began
    return cycles / elapsed, {phase: spent[phase] / cycles * 1e3 for phase in PHASES}
