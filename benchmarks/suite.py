"""The benchmark suite: the engine against raw anyio and against supervisord.

Run:  make bench                                   (the whole suite, a few minutes)
      .venv/bin/python benchmarks/suite.py --quick  (tiny sizes: CI checks it still runs)

Every comparison runs both sides in the same process run, interleaved round
by round; medians and min-max over the rounds are reported. Absolute numbers
are printed, the claim is the ratio. See README "Performance".
"""

from __future__ import annotations

import argparse
import http.client
import json
import logging
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import xmlrpc.client
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import burn_cpu, engine_cycle, percentile, raw_cycle

from lifecycle import Engine, Event, State, StateModel, Trigger
from lifecycle.events import EventBus, make_event
from lifecycle.model import MACHINE

BACKENDS = ("asyncio", "trio")


@dataclass
class Sizes:
    rounds: int = 5
    cycles: int = 200
    concurrent: int = 50
    fleet: int = 1000
    fleet_rounds: int = 3
    latency_runs: int = 1000
    escalations: int = 5
    model_triggers: int = 200_000
    events: int = 20_000
    supervisord_cycles: int = 100
    supervisord_exits: int = 100
    # A concurrent round repeats its batch until it has run this long (noise: issue 20).
    min_round_seconds: float = 1.0


QUICK = Sizes(
    rounds=1,
    cycles=5,
    concurrent=5,
    fleet=20,
    fleet_rounds=1,
    latency_runs=10,
    escalations=1,
    model_triggers=2_000,
    events=200,
    supervisord_cycles=3,
    supervisord_exits=3,
    min_round_seconds=0.0,
)

ROWS: list[tuple[str, str, str, str, str]] = []


def median(values: list[float]) -> float:
    return statistics.median(values)


def spread(values: list[float], scale: float = 1.0, digits: int = 0) -> str:
    return f"{min(values) * scale:.{digits}f}-{max(values) * scale:.{digits}f}"


def row(metric: str, engine: str, raw: str = "", peer: str = "", ratio: str = "") -> None:
    ROWS.append((metric, engine, raw, peer, ratio))
    print(f"  {metric:<46} engine {engine:<20} raw {raw:<20} supervisord {peer:<16} {ratio}")


# -- 1. cycle throughput ---------------------------------------------------------


async def per_second(
    cycle: Callable[[], Awaitable[None]], count: int, concurrent: int, min_seconds: float = 0.0
) -> tuple[float, float]:
    """(cycles per second, CPU milliseconds per cycle: this process's and its reaped
    children's). Concurrent: batches of ``concurrent`` until ``min_seconds`` have passed."""
    cpu_before = _cpu_seconds()
    started = time.perf_counter()
    if concurrent <= 1:
        for _ in range(count):
            await cycle()
    else:
        count = 0
        while count == 0 or time.perf_counter() - started < min_seconds:
            async with anyio.create_task_group() as group:
                for _ in range(concurrent):
                    group.start_soon(cycle)
            count += concurrent
    elapsed = time.perf_counter() - started
    return count / elapsed, (_cpu_seconds() - cpu_before) / count * 1e3


def _cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


async def cycle_section(sizes: Sizes, label: str) -> dict[str, float]:
    ratios: dict[str, float] = {}
    for concurrent in (1, sizes.concurrent):
        engine_rates: list[float] = []
        raw_rates: list[float] = []
        engine_cpu: list[float] = []
        raw_cpu: list[float] = []
        async with Engine() as engine:

            async def ours(engine: Engine = engine) -> None:
                await engine_cycle(engine)

            for _ in range(sizes.rounds):
                rate, cpu = await per_second(
                    ours, sizes.cycles, concurrent, sizes.min_round_seconds
                )
                engine_rates.append(rate)
                engine_cpu.append(cpu)
                rate, cpu = await per_second(
                    raw_cycle, sizes.cycles, concurrent, sizes.min_round_seconds
                )
                raw_rates.append(rate)
                raw_cpu.append(cpu)
        ratio = median(engine_rates) / median(raw_rates)
        mode = "sequential" if concurrent == 1 else f"{concurrent} concurrent"
        ratios[mode] = ratio
        row(
            f"cycle/s, {mode}, {label}",
            f"{median(engine_rates):.0f} ({spread(engine_rates)})",
            f"{median(raw_rates):.0f} ({spread(raw_rates)})",
            ratio=f"{ratio:.2f}x raw",
        )
        row(
            f"CPU ms per cycle, {mode}, {label}",
            f"{median(engine_cpu):.2f}",
            f"{median(raw_cpu):.2f}",
            # os.times() counts in clock ticks (10 ms): a tiny run may show none at all.
            ratio=f"{median(engine_cpu) / median(raw_cpu):.2f}x raw" if median(raw_cpu) else "",
        )
    return ratios


# -- 2. fleet ----------------------------------------------------------------------


FLEET_CHILD = r"""
import anyio, json, os, resource, signal, subprocess, sys, time
sys.path.insert(0, {bench!r})
from _common import drain, wait_stopped
from lifecycle import Engine
size, side, backend = int(sys.argv[1]), sys.argv[2], sys.argv[3]

async def engine_side():
    async with Engine() as engine:
        started = time.perf_counter()  # create() is part of starting a fleet
        fleet = [await engine.create(["sleep", "600"]) for _ in range(size)]
        async with anyio.create_task_group() as group:
            for c in fleet:
                group.start_soon(c.start)
        start_all = time.perf_counter() - started
        started = time.perf_counter()
        async with anyio.create_task_group() as group:
            for c in fleet:
                group.start_soon(c.stop)
        return start_all, time.perf_counter() - started

async def raw_side():
    processes = []
    async def start():
        processes.append(await anyio.open_process(
            ["sleep", "600"], stdin=subprocess.DEVNULL, start_new_session=True))
    started = time.perf_counter()
    async with anyio.create_task_group() as group:
        for _ in range(size):
            group.start_soon(start)
    start_all = time.perf_counter() - started
    async def stop(p):
        os.killpg(p.pid, signal.SIGTERM)
        await p.wait()
        await drain(p.stdout)
        await drain(p.stderr)
        await p.aclose()
    started = time.perf_counter()
    async with anyio.create_task_group() as group:
        for p in processes:
            group.start_soon(stop, p)
    return start_all, time.perf_counter() - started

start_all, stop_all = anyio.run(engine_side if side == "engine" else raw_side, backend=backend)
print(json.dumps({{"start": start_all, "stop": stop_all,
                  "rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}}))
"""


def fleet_once(size: int, side: str, backend: str) -> dict[str, float]:
    script = FLEET_CHILD.format(bench=str(Path(__file__).resolve().parent))
    output = subprocess.run(
        [sys.executable, "-c", script, str(size), side, backend],
        capture_output=True,
        check=True,
        timeout=300,
    ).stdout
    result: dict[str, float] = json.loads(output)
    return result


def fleet_section(sizes: Sizes, backend: str) -> dict[str, float]:
    engine_runs: list[dict[str, float]] = []
    raw_runs: list[dict[str, float]] = []
    for _ in range(sizes.fleet_rounds):
        engine_runs.append(fleet_once(sizes.fleet, "engine", backend))
        raw_runs.append(fleet_once(sizes.fleet, "raw", backend))
    results = {}
    for key, label in (("start", "start-all"), ("stop", "stop-all")):
        ours = [run[key] for run in engine_runs]
        theirs = [run[key] for run in raw_runs]
        results[key] = median(ours) / median(theirs)
        row(
            f"fleet of {sizes.fleet}, {label} s, {backend}",
            f"{median(ours):.3f} ({spread(ours, digits=2)})",
            f"{median(theirs):.3f} ({spread(theirs, digits=2)})",
            ratio=f"{results[key]:.2f}x raw time",
        )
    rss = [e["rss_kib"] - r["rss_kib"] for e, r in zip(engine_runs, raw_runs, strict=True)]
    results["rss_per_container_kib"] = median(rss) / sizes.fleet
    row(
        f"fleet of {sizes.fleet}, peak RSS, {backend}",
        f"{median([e['rss_kib'] for e in engine_runs]) / 1024:.1f} MiB",
        f"{median([r['rss_kib'] for r in raw_runs]) / 1024:.1f} MiB",
        ratio=f"{results['rss_per_container_kib']:+.1f} KiB/container",
    )
    return results


# -- 3. exit detection latency --------------------------------------------------------


async def exit_latencies(runs: int) -> list[float]:
    latencies: list[float] = []
    async with Engine() as engine, engine.subscribe(actions={"die"}, lossless=True) as deaths:
        for _ in range(runs):
            # `date` writes the time, then the shell exits at once.
            container = await engine.create(["sh", "-c", "date +%s%N"])
            await container.start()
            event: Event = await deaths.__anext__()
            written = int(container.logs()[0].text)
            latencies.append((event.time_ns - written) / 1e9)
            await container.remove()
    return latencies


# -- 4. stop escalation precision ----------------------------------------------------


async def escalation_errors(runs: int, timeout: float = 0.5) -> list[float]:
    errors: list[float] = []
    async with Engine() as engine:
        for _ in range(runs):
            ready = Path(tempfile.mkdtemp()) / "ready"
            command = ["sh", "-c", f"trap '' TERM; touch {ready}; exec sleep 60"]
            container = await engine.create(command, stop_timeout=timeout)
            async with engine.subscribe(container=container, actions={"kill"}) as kills:
                await container.start()
                while not ready.exists():  # noqa: ASYNC110 -- readiness is a file
                    await anyio.sleep(0.005)
                await container.stop()
                term, kill = kills.receive_nowait(), kills.receive_nowait()
            errors.append((kill.time_ns - term.time_ns) / 1e9 - timeout)
            await container.remove()
            shutil.rmtree(ready.parent)
    return errors


# -- 5. state model and events ---------------------------------------------------------


def model_rates(count: int) -> tuple[float, float]:
    model = StateModel()
    triggers = [Trigger.START, Trigger.STOP] * (count // 2)
    started = time.perf_counter()
    for trigger in triggers:
        model.apply(trigger)
    compiled = count / (time.perf_counter() - started)

    class Unbound:
        _state = State.CREATED

    unbound = Unbound()
    events = {trigger: MACHINE.events[trigger.value] for trigger in (Trigger.START, Trigger.STOP)}
    started = time.perf_counter()
    for trigger in triggers:
        events[trigger].trigger(unbound)
    through_machine = count / (time.perf_counter() - started)
    return compiled, through_machine


async def event_rate(count: int, subscribers: int) -> float:
    bus = EventBus()
    subscriptions = [bus.open(lossless=True) for _ in range(subscribers)]
    event = make_event(
        "pause", container_id="0" * 64, name="x", from_state=State.RUNNING, to_state=State.PAUSED
    )
    received = 0

    async def drain(subscription: object) -> None:
        nonlocal received
        async for _ in subscription:  # type: ignore[attr-defined]
            received += 1

    started = time.perf_counter()
    async with anyio.create_task_group() as group:
        for subscription in subscriptions:
            group.start_soon(drain, subscription)
        for _ in range(count):
            bus.publish(event)
            bus.count()
        bus.close()
    elapsed = time.perf_counter() - started
    assert received == count * subscribers
    return received / elapsed


# -- 7. supervisord ---------------------------------------------------------------------


SUPERVISORD_CONF = """
[unix_http_server]
file={dir}/supervisor.sock

[supervisord]
logfile={dir}/supervisord.log
pidfile={dir}/supervisord.pid
nodaemon=true
loglevel=info

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[program:sleeper]
command=sleep 60
autostart=false
autorestart=false
startsecs=0
stopsignal=TERM
stopwaitsecs=10

[program:exiter]
command=sh -c "date +%%s%%N"
autostart=false
autorestart=false
startsecs=0
stdout_logfile={dir}/exiter.log
"""


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


class Supervisord:
    """supervisord from PyPI, in this environment, driven over XML-RPC on a unix socket."""

    def __init__(self) -> None:
        from supervisor.xmlrpc import SupervisorTransport  # noqa: PLC0415 -- optional (bench extra)

        self.dir = Path(tempfile.mkdtemp(prefix="bench-supervisord-"))
        conf = self.dir / "supervisord.conf"
        conf.write_text(SUPERVISORD_CONF.format(dir=self.dir))
        self.process = subprocess.Popen(
            [sys.executable, "-m", "supervisor.supervisord", "-c", str(conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 20
        while True:
            # A fresh transport per attempt: a failed request leaves one unusable.
            transport = SupervisorTransport(None, None, f"unix://{self.dir}/supervisor.sock")
            self.rpc = xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport)
            try:
                if self.rpc.supervisor.getState()["statename"] == "RUNNING":
                    break
            except (OSError, xmlrpc.client.Fault, http.client.HTTPException):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("supervisord did not come up")
            time.sleep(0.05)

    def cycles_per_second(self, count: int) -> float:
        started = time.perf_counter()
        for _ in range(count):
            self.rpc.supervisor.startProcess("sleeper", True)
            # supervisord reports RUNNING (startsecs=0) before its child has
            # exec'd; a SIGTERM in that window is caught by the child's copy of
            # supervisord's Python handler and lost, and the stop then waits out
            # stopwaitsecs (10 s). Wait for the exec, as `start()` here does.
            pid = self.rpc.supervisor.getProcessInfo("sleeper")["pid"]
            while _comm(pid) != "sleep":
                time.sleep(0.0002)
            self.rpc.supervisor.stopProcess("sleeper", True)
        return count / (time.perf_counter() - started)

    def exit_latencies(self, runs: int) -> list[float]:
        latencies = []
        log = self.dir / "exiter.log"
        for _ in range(runs):
            log.write_text("")
            self.rpc.supervisor.startProcess("exiter", False)
            while True:
                info = self.rpc.supervisor.getProcessInfo("exiter")
                if info["statename"] in ("EXITED", "BACKOFF", "FATAL") and log.read_text().strip():
                    break
                time.sleep(0.001)
            written = int(log.read_text().split()[-1])
            # getProcessInfo's `stop` is whole seconds; supervisord's own log line
            # "exited: exiter (...)" carries the reap time to the millisecond.
            latencies.append(self._last_exit_time() - written / 1e9)
        return latencies

    def _last_exit_time(self) -> float:
        lines = (self.dir / "supervisord.log").read_text().splitlines()
        line = next(line for line in reversed(lines) if "exited: exiter" in line)
        stamp = datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f")
        return stamp.timestamp()

    def close(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=30)
        shutil.rmtree(self.dir, ignore_errors=True)


async def engine_start_stop_rate(count: int) -> float:
    async with Engine() as engine:
        container = await engine.create(["sleep", "60"])
        started = time.perf_counter()
        for _ in range(count):
            await container.start()
            await container.stop()
        return count / (time.perf_counter() - started)


# -- the suite -----------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description="lifecycle benchmark suite")
    parser.add_argument("--quick", action="store_true", help="tiny sizes (CI smoke run)")
    parser.add_argument("--skip-supervisord", action="store_true")
    arguments = parser.parse_args()
    sizes = QUICK if arguments.quick else Sizes()
    # The escalation benchmark escalates on purpose: keep its warnings off the table.
    logging.getLogger("lifecycle").setLevel(logging.ERROR)
    began = time.perf_counter()
    print(f"lifecycle benchmarks ({'quick' if arguments.quick else 'full'}), {os.cpu_count()} CPUs")

    print("\n1. lifecycle cycle throughput (create-start-pause-unpause-stop-remove of sleep 60)")
    for backend in BACKENDS:
        anyio.run(cycle_section, sizes, backend, backend=backend)
    print("   ... with one CPU-bound process beside it")
    burner = burn_cpu()
    try:
        for backend in BACKENDS:
            anyio.run(cycle_section, sizes, f"{backend}, CPU loaded", backend=backend)
    finally:
        burner.kill()
        burner.wait()

    print(
        f"\n2. fleet of {sizes.fleet}: start all, stop all concurrently, peak RSS (own processes)"
    )
    for backend in BACKENDS:
        fleet_section(sizes, backend)

    print(
        f"\n3. exit detection latency: child's timestamp -> die event ({sizes.latency_runs} runs)"
    )
    for backend in BACKENDS:
        latencies = anyio.run(exit_latencies, sizes.latency_runs, backend=backend)
        row(
            f"exit latency p50 / p99 ms, {backend}",
            f"{percentile(latencies, 0.5) * 1e3:.2f} / {percentile(latencies, 0.99) * 1e3:.2f}",
        )

    print("\n4. stop escalation precision: SIGKILL sent relative to a 0.5 s timeout")
    for backend in BACKENDS:
        errors = anyio.run(escalation_errors, sizes.escalations, backend=backend)
        row(
            f"SIGKILL after timeout, ms (median, max), {backend}",
            f"{median(errors) * 1e3:.2f}, {max(errors) * 1e3:.2f}",
        )

    print("\n5. state model and events")
    compiled, through_machine = model_rates(sizes.model_triggers)
    row(
        "StateModel.apply triggers/s",
        f"{compiled:,.0f}",
        ratio=f"{compiled / through_machine:.1f}x transitions.Machine ({through_machine:,.0f}/s)",
    )
    for backend in BACKENDS:
        for subscribers in (1, 100):
            rate = anyio.run(event_rate, sizes.events, subscribers, backend=backend)
            row(f"events delivered/s to {subscribers} subscriber(s), {backend}", f"{rate:,.0f}")

    print("\n6. graph: see benchmarks/graph.py (build and render)")
    subprocess.run(
        [
            sys.executable,
            str(Path(__file__).with_name("graph.py")),
            *(["--quick"] if arguments.quick else []),
        ],
        check=True,
    )

    if not arguments.skip_supervisord:
        print("\n7. the peer: supervisord over XML-RPC (start/stop of sleep 60; exit detection)")
        peer = Supervisord()
        try:
            theirs = [peer.cycles_per_second(sizes.supervisord_cycles) for _ in range(sizes.rounds)]
            ours = [
                anyio.run(engine_start_stop_rate, sizes.supervisord_cycles)
                for _ in range(sizes.rounds)
            ]
            row(
                "start+stop cycles/s (asyncio)",
                f"{median(ours):.0f} ({spread(ours)})",
                peer=f"{median(theirs):.0f} ({spread(theirs)})",
                ratio=f"{median(ours) / median(theirs):.1f}x supervisord",
            )
            peer_latencies = peer.exit_latencies(sizes.supervisord_exits)
            ours_latencies = anyio.run(exit_latencies, sizes.supervisord_exits)
            row(
                "exit latency p50 / p99 ms",
                f"{percentile(ours_latencies, 0.5) * 1e3:.2f} / "
                f"{percentile(ours_latencies, 0.99) * 1e3:.2f}",
                peer=f"{percentile(peer_latencies, 0.5) * 1e3:.1f} / "
                f"{percentile(peer_latencies, 0.99) * 1e3:.1f} (log ms)",
            )
        finally:
            peer.close()

    print(f"\nsuite finished in {time.perf_counter() - began:.0f} s")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS of the suite process: {peak:.0f} MiB")


if __name__ == "__main__":
    main()
