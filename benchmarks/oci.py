"""The OCI runtime driver: the lifecycle of a busybox container, against runc by hand and podman.

Run (as root, with runc; podman optional):  .venv/bin/python benchmarks/oci.py [--quick]

1. cycle/s: create -> start -> pause -> unpause -> stop -> remove of a busybox `sleep 60`
   container, sequential. The engine (``Engine(runtime="runc")``, output captured, events,
   an overlay rootfs per container) against the raw baseline, a minimal driver written
   here doing the same runtime work from Python (overlay mount, config.json, runc create /
   start / pause / resume / kill / delete, PID 1 reaped by pidfd, umount), and against
   podman (rootful, cgroupfs, --network none) when it is installed. Rounds alternate.
2. start latency: engine create+start+exit of `true` against `runc run` of `true`.
3. exit detection: SIGKILL of PID 1 from the host -> the engine's `die` event, p50/p99.
4. live_restore: the same start and exit detection with each PID 1 under its monitor
   (``Engine(root=..., live_restore=True)``), against the engine without, interleaved;
   and the monitor's resident memory.
"""

from __future__ import annotations

import argparse
import ctypes
import dataclasses
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import percentile

from lifecycle import Engine, ImageStore
from lifecycle.model import ContainerSpec
from lifecycle.runtime.oci._bundle import bundle_config
from tests.images.tools import busybox_system_rootfs

RAW_ROOT = "/run/lifecycle-bench-raw"


class RawDriver:
    """What the engine's OCI driver does for one container, written plainly (the baseline)."""

    def __init__(self, lower: Path, scratch: Path) -> None:
        self.lower = lower
        self.scratch = scratch
        self.count = 0

    def runc(self, *arguments: str) -> None:
        # Never capture: `runc create` hands its stdio to the container, so a pipe read to
        # its end would wait for the container's exit.
        subprocess.run(
            ["runc", "--root", RAW_ROOT, *arguments],
            check=True,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def cycle(self) -> None:
        self.count += 1
        name = f"raw-{os.getpid()}-{self.count}"
        base, merged, bundle = overlay_bundle(
            self.lower, self.scratch / name, name, ["sleep", "60"]
        )
        self.runc("create", "--bundle", str(bundle), "--pid-file", str(bundle / "pid"), name)
        pid = int((bundle / "pid").read_text())
        pidfd = os.pidfd_open(pid)
        self.runc("start", name)
        self.runc("pause", name)
        self.runc("resume", name)
        self.runc("kill", name, "KILL")
        os.waitid(os.P_PIDFD, pidfd, os.WEXITED)
        os.close(pidfd)
        self.runc("delete", "--force", name)
        subprocess.run(["umount", str(merged)], check=True)
        shutil.rmtree(base)


def overlay_bundle(lower: Path, base: Path, name: str, argv: list[str]) -> tuple[Path, Path, Path]:
    """An overlay on ``lower`` under ``base`` and a bundle with a config.json running ``argv``
    on it, as the engine's driver writes one: (base, the mounted root, the bundle)."""
    upper, work, merged, bundle = (base / part for part in ("upper", "work", "merged", "b"))
    for directory in (upper, work, merged, bundle):
        directory.mkdir(parents=True)
    options = f"lowerdir={lower},upperdir={upper},workdir={work}"
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o", options, str(merged)], check=True)
    spec = dataclasses.replace(
        ContainerSpec.build(argv, inherit_env=False), rootfs=str(merged), hostname=name
    )
    config = bundle_config(spec, {"PATH": "/bin"}, cgroups_path=f"/lifecycle-bench/{name}")
    (bundle / "config.json").write_text(json.dumps(config))
    return base, merged, bundle


def podman(*arguments: str) -> str:
    result = subprocess.run(
        ["podman", "--cgroup-manager", "cgroupfs", *arguments],
        check=True,
        capture_output=True,
        text=True,
    )
    return result.stdout.strip()


def podman_cycle() -> None:
    container = podman(
        "create", "--network", "none", "--ulimit", "nofile=20000:20000",
        "--ulimit", "nproc=32768:32768", "lifecycle-bench-busybox", "sleep", "60",
    )  # fmt: skip
    podman("start", container)
    podman("pause", container)
    podman("unpause", container)
    podman("stop", "-t", "0", container)
    podman("rm", container)


async def per_second(cycle: Callable[[], Awaitable[None]], count: int) -> float:
    started = time.perf_counter()
    for _ in range(count):
        await cycle()
    return count / (time.perf_counter() - started)


def median(values: list[float]) -> float:
    return statistics.median(values)


def spread(values: list[float]) -> str:
    return f"({min(values):.1f}-{max(values):.1f})"


async def measure(rounds: int, cycles: int, scratch: Path) -> None:  # noqa: PLR0915 -- one report
    rootfs = busybox_system_rootfs(scratch / "rootfs")
    store = ImageStore(scratch / "store")
    await store.import_rootfs(rootfs, "busybox", cmd=["sh"])
    raw = RawDriver(rootfs, scratch / "raw")
    has_podman = shutil.which("podman") is not None
    if has_podman:
        tar = scratch / "busybox.tar"
        await anyio.run_process(["tar", "-C", str(rootfs), "-cf", str(tar), "."])
        podman("import", str(tar), "lifecycle-bench-busybox")
    engine_rates: list[float] = []
    raw_rates: list[float] = []
    podman_rates: list[float] = []
    async with Engine(store=store, runtime="runc") as engine:

        async def ours() -> None:
            container = await engine.create(
                image="busybox", command=["sleep", "60"], stop_timeout=0
            )
            await container.start()
            await container.pause()
            await container.unpause()
            await container.stop()
            await container.remove()

        async def theirs() -> None:
            await anyio.to_thread.run_sync(raw.cycle)

        async def podmans() -> None:
            await anyio.to_thread.run_sync(podman_cycle)

        for _ in range(rounds):
            engine_rates.append(await per_second(ours, cycles))
            raw_rates.append(await per_second(theirs, cycles))
            if has_podman:
                podman_rates.append(await per_second(podmans, max(1, cycles // 4)))
        print("1. cycle/s (create-start-pause-unpause-stop-remove of busybox sleep 60), sequential")
        print(f"  engine (runc)        {median(engine_rates):7.1f}  {spread(engine_rates)}")
        print(f"  raw runc by hand     {median(raw_rates):7.1f}  {spread(raw_rates)}")
        print(f"  ratio                {median(engine_rates) / median(raw_rates):7.2f}x raw")
        if has_podman:
            print(f"  podman               {median(podman_rates):7.1f}  {spread(podman_rates)}")
            print(
                f"  ratio                {median(engine_rates) / median(podman_rates):7.2f}x podman"
            )
        else:
            print("  podman: not installed (apt-get install podman to compare)")

        starts: list[float] = []
        runs: list[float] = []
        for _ in range(rounds * cycles):
            began = time.perf_counter()
            container = await engine.create(image="busybox", command=["true"])
            await container.start()
            await container.wait()
            starts.append(time.perf_counter() - began)
            await container.remove()
            began = time.perf_counter()
            await anyio.to_thread.run_sync(run_true, rootfs, scratch)
            runs.append(time.perf_counter() - began)
        print("\n2. create + start + exit of `true`, ms (median)")
        print(f"  engine               {median(starts) * 1e3:7.1f}")
        print(f"  runc run             {median(runs) * 1e3:7.1f}")

        latencies: list[float] = []
        async with engine.subscribe(actions={"die"}) as events:
            for _ in range(rounds * cycles):
                container = await engine.create(image="busybox", command=["sleep", "60"])
                await container.start()
                pid = container.pid
                assert pid is not None
                killed = time.perf_counter()
                os.kill(pid, signal.SIGKILL)
                await events.__anext__()
                latencies.append(time.perf_counter() - killed)
                await container.remove()
        p99 = percentile(latencies, 0.99)
        print("\n3. exit detection: SIGKILL of PID 1 -> die event, ms")
        print(f"  p50 {median(latencies) * 1e3:.2f}  p99 {p99 * 1e3:.2f}  ({len(latencies)} runs)")
    await measure_live_restore(store, rounds * cycles)
    if has_podman:
        podman("rmi", "lifecycle-bench-busybox")


async def measure_live_restore(store: ImageStore, count: int) -> None:
    """Section 4: what a monitor per container costs at start and at exit."""
    starts: dict[bool, list[float]] = {False: [], True: []}
    exits: dict[bool, list[float]] = {False: [], True: []}
    resident_kib: list[int] = []
    for live in (False, True) * count:
        async with Engine(store=store, root=store.root, runtime="runc", live_restore=live) as e:
            began = time.perf_counter()
            container = await e.create(image="busybox", command=["true"])
            await container.start()
            await container.wait()
            starts[live].append(time.perf_counter() - began)
            await container.remove()
            async with e.subscribe(actions={"die"}) as events:
                container = await e.create(image="busybox", command=["sleep", "60"])
                await container.start()
                pid = container.pid
                assert pid is not None
                if live:
                    resident_kib.append(_resident_kib(_parent(pid)))
                killed = time.perf_counter()
                os.kill(pid, signal.SIGKILL)
                await events.__anext__()
                exits[live].append(time.perf_counter() - killed)
                await container.remove()
    print("\n4. live_restore: each PID 1 under a monitor, ms (median; p99 of exit detection)")
    for live, label in ((False, "without"), (True, "with   ")):
        p99 = percentile(exits[live], 0.99)
        print(
            f"  {label}  create+start+exit of true {median(starts[live]) * 1e3:6.1f}"
            f"   exit detection p50 {median(exits[live]) * 1e3:5.2f}  p99 {p99 * 1e3:5.2f}"
        )
    print(f"  the monitor's resident memory: {statistics.median(resident_kib) / 1024:.1f} MiB")


def _parent(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[1])


def _resident_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def run_true(rootfs: Path, scratch: Path) -> None:
    """`runc run` of `true` on a fresh overlay, as the engine's start of `true` does."""
    name = f"run-{time.monotonic_ns()}"
    base, merged, bundle = overlay_bundle(rootfs, scratch / name, name, ["true"])
    subprocess.run(
        ["runc", "--root", RAW_ROOT, "run", "--bundle", str(bundle), name],
        check=True,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    subprocess.run(["runc", "--root", RAW_ROOT, "delete", "--force", name], check=False)
    subprocess.run(["umount", str(merged)], check=True)
    shutil.rmtree(base)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a tiny run (CI checks it runs)")
    arguments = parser.parse_args()
    if os.geteuid() != 0 or shutil.which("runc") is None:
        print("the OCI benchmark needs root and runc: nothing to measure")
        return
    # The raw side reaps PID 1 by pidfd as the engine does: it must be a child subreaper too.
    ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)
    rounds, cycles = (1, 2) if arguments.quick else (5, 20)
    with tempfile.TemporaryDirectory(prefix="lifecycle-oci-bench-") as scratch:
        anyio.run(measure, rounds, cycles, Path(scratch))


if __name__ == "__main__":
    main()
