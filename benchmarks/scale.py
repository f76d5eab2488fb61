"""Scale: what one operation costs with a fleet live, on both backends (issue 20).

Run:  .venv/bin/python benchmarks/scale.py [--quick] [--sizes 1,100,1000,10000]

For each backend and each fleet size F, in one engine (native driver, process-group
containment, output captured, the default 1 s observer):

1. start-all: create + start F ``sleep 3600`` containers, against a raw baseline doing
   the same work with the same stdio (Popen in a new session, stdin /dev/null, two
   pipes whose read ends sit in one epoll set, a pidfd);
2. with the fleet live, probes: start, pause and stop of a container of their own;
   exit detection (SIGKILL from outside -> the ``die`` event); SIGKILL lateness (a stop
   with a 50 ms timeout of a process that ignores SIGTERM: how long after the timeout
   the exit came); the worst stall of a 1 ms ticker running meanwhile (at least 2.5 s,
   so observer rounds are in it); p50 and p99; CPU time per probe cycle;
3. stop-all: stop every container of the fleet at once, against the raw baseline's
   killpg + reap of its own.

The engine reads the output of containers beyond half its descriptor limit through
output relays (1 descriptor per container instead of 3); the raw baseline has no relay,
so a fleet that needs more descriptors than the baseline may open (3 per container under
the hard RLIMIT_NOFILE: no CAP_SYS_RESOURCE here) has no baseline row, and says so.
"""

from __future__ import annotations

import argparse
import functools
import os
import resource
import select
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio
import anyio.abc

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import percentile

from lifecycle import Container, Engine
from lifecycle._polling import poll_until
from lifecycle.containment import DESCRIPTORS_PER_CONTAINER, raise_open_files_limit
from lifecycle.runtime.native import NativeDriver

SLEEPER = ["sleep", "3600"]
TERM_IGNORER = ["sh", "-c", "trap '' TERM; exec sleep 3600"]
KILL_TIMEOUT = 0.05
TICK = 0.001
MIN_PROBE_SECONDS = 2.5


def ms(values: list[float]) -> str:
    return f"{statistics.median(values) * 1e3:6.2f} {percentile(values, 0.99) * 1e3:7.2f}"


def ceiling() -> int:
    """How many captured containers the raw baseline (3 descriptors each) can hold now."""
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    in_use = len(os.listdir("/proc/self/fd"))
    return (soft - in_use - 200) // DESCRIPTORS_PER_CONTAINER


class RawFleet:
    """The baseline: what the engine's native driver does for a fleet, written plainly."""

    def __init__(self) -> None:
        self.epoll = select.epoll()
        self.children: list[tuple[subprocess.Popen[bytes], int, int, int]] = []

    def start(self, count: int) -> None:
        for _ in range(count):
            out_read, out_write = os.pipe2(os.O_CLOEXEC)
            err_read, err_write = os.pipe2(os.O_CLOEXEC)
            child = subprocess.Popen(
                SLEEPER,
                stdin=subprocess.DEVNULL,
                stdout=out_write,
                stderr=err_write,
                start_new_session=True,
                close_fds=True,
            )
            os.close(out_write)
            os.close(err_write)
            pidfd = os.pidfd_open(child.pid)
            for fd in (out_read, err_read, pidfd):
                self.epoll.register(fd, select.EPOLLIN)
            self.children.append((child, pidfd, out_read, err_read))

    def stop(self) -> None:
        for child, _, _, _ in self.children:
            os.killpg(child.pid, signal.SIGTERM)
        for child, pidfd, out_read, err_read in self.children:
            os.waitid(os.P_PIDFD, pidfd, os.WEXITED)  # blocks until it exits
            child.returncode = -signal.SIGTERM  # reaped by pidfd: Popen must not wait
            for fd in (pidfd, out_read, err_read):
                self.epoll.unregister(fd)
                os.close(fd)
        self.children.clear()


async def timed(operation: Callable[[], Awaitable[object]]) -> float:
    began = time.perf_counter()
    await operation()
    return time.perf_counter() - began


async def probe(engine: Engine, count: int) -> dict[str, list[float]]:
    """Section 2's probes; the ticker runs for all of them."""
    found: dict[str, list[float]] = {
        k: [] for k in ("start", "pause", "stop", "exit", "late", "stall", "cpu")
    }
    probing = True

    async def ticker() -> None:
        while probing:
            began = time.perf_counter()
            await anyio.sleep(TICK)
            found["stall"].append(time.perf_counter() - began - TICK)

    async with anyio.create_task_group() as group:
        group.start_soon(ticker)
        began_probing = time.perf_counter()
        done = 0
        async with engine.subscribe(actions={"die"}) as events:
            while done < count or time.perf_counter() - began_probing < MIN_PROBE_SECONDS:
                cpu = time.process_time()
                container = await engine.create(SLEEPER)
                found["start"].append(await timed(container.start))
                found["pause"].append(await timed(container.pause))
                await container.unpause()
                found["stop"].append(await timed(container.stop))
                await container.start()
                pid = container.pid
                assert pid is not None
                killed = time.perf_counter()
                os.kill(pid, signal.SIGKILL)
                async for event in events:  # not the die of the stop before: 143
                    if event.container_id == container.id and event.attributes["exitCode"] == "137":
                        break
                found["exit"].append(time.perf_counter() - killed)
                await container.remove()
                found["cpu"].append(time.process_time() - cpu)
                ignorer = await engine.create(TERM_IGNORER)
                await ignorer.start()
                await wait_exec(ignorer)
                stopped = await timed(functools.partial(ignorer.stop, timeout=KILL_TIMEOUT))
                found["late"].append(stopped - KILL_TIMEOUT)
                await ignorer.remove()
                done += 1
        probing = False
    return found


async def wait_exec(container: Container) -> None:
    """Until the shell has exec'd sleep (its trap is set: SIGTERM is ignored)."""
    pid = container.pid
    assert pid is not None

    def execed() -> bool:
        with open(f"/proc/{pid}/comm", encoding="utf-8") as comm:
            return comm.read().strip() == "sleep"

    await poll_until(execed, 5)


async def measure(sizes: list[int], probes: int, backend: str) -> None:
    print(f"\n{backend}: fleet, then ms p50 p99 of each probe; worst 1 ms-ticker stall, ms")
    print(
        "  fleet   start p50   p99   pause p50   p99    stop p50   p99    exit p50   p99"
        "    kill-late p50 p99   stall   cpu/cycle   start-all eng/raw s   stop-all eng/raw s"
    )
    for size in sizes:
        room = ceiling()
        driver = NativeDriver(containment="process-group")
        async with Engine(drivers=[driver]) as engine:
            began = time.perf_counter()
            fleet = [await engine.create(SLEEPER) for _ in range(size)]
            for container in fleet:
                await container.start()
            start_all = time.perf_counter() - began
            found = await probe(engine, probes)
            began = time.perf_counter()
            async with anyio.create_task_group() as group:
                for container in fleet:
                    group.start_soon(container.stop)
            stop_all = time.perf_counter() - began
            for container in fleet:
                await container.remove()
        raw_start = raw_stop = float("nan")
        if size <= room:
            raw = RawFleet()
            began = time.perf_counter()
            await anyio.to_thread.run_sync(raw.start, size)
            raw_start = time.perf_counter() - began
            began = time.perf_counter()
            await anyio.to_thread.run_sync(raw.stop)
            raw_stop = time.perf_counter() - began
            raw.epoll.close()
        print(
            f"  {size:5d}  {ms(found['start'])}  {ms(found['pause'])}  {ms(found['stop'])}"
            f"  {ms(found['exit'])}  {ms(found['late'])}  {max(found['stall']) * 1e3:6.2f}"
            f"  {statistics.median(found['cpu']) * 1e3:7.2f} ms"
            f"   {start_all:6.2f} / {raw_start:6.2f} ({start_all / raw_start:4.2f}x)"
            f"   {stop_all:6.2f} / {raw_stop:6.2f} ({stop_all / raw_stop:4.2f}x)"
            + ("" if size <= room else f"   (no baseline: it can hold {room} containers)"),
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes (CI checks it runs)")
    parser.add_argument("--sizes", help="comma-separated fleet sizes (default 1,100,1000,10000)")
    parser.add_argument("--backend", choices=("asyncio", "trio"), help="one backend only")
    arguments = parser.parse_args()
    sizes = [1, 10] if arguments.quick else [1, 100, 1000, 10000]
    if arguments.sizes:
        sizes = [int(size) for size in arguments.sizes.split(",")]
    limit = raise_open_files_limit()
    print(
        f"RLIMIT_NOFILE soft {limit.before} -> {limit.soft} (hard {limit.hard}); "
        f"{DESCRIPTORS_PER_CONTAINER} descriptors per captured container"
    )
    probes = 5 if arguments.quick else 50
    for backend in [arguments.backend] if arguments.backend else ["asyncio", "trio"]:
        anyio.run(measure, sizes, probes, backend, backend=backend)


if __name__ == "__main__":
    main()
