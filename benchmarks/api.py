"""The Docker API (`lifecycle serve`): what a container cycle costs through it.

Run (as root, with runc and the docker CLI):  .venv/bin/python benchmarks/api.py [--quick]

1. cycle/s: create -> start -> kill -> remove of a busybox `sleep 60` container under runc,
   sequential: the engine in-process (the baseline, in the same run) against the same
   cycle through Docker's SDK for Python over the unix socket (one keep-alive connection)
   and through the docker CLI (one process per command, as a shell script would). Rounds
   alternate, so a busy machine slows all three alike.
2. request latency: `GET /_ping` and `GET /containers/json` (with 20 containers) through
   one keep-alive httpx connection, p50/p99.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import anyio
import docker
import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import Measure
from lifecycle import Engine, ImageStore
from tests.images.tools import busybox_system_rootfs


async def engine_cycles(root: Path, count: int) -> float:
    async with Engine(store=ImageStore(root), runtime="runc") as engine:
        started = time.perf_counter()
        for _ in range(count):
            container = await engine.create(["sleep", "60"], image="busybox")
            await container.start()
            await container.kill()
            await container.remove()
        return count / (time.perf_counter() - started)


def sdk_cycles(client: docker.DockerClient, count: int) -> float:
    started = time.perf_counter()
    for _ in range(count):
        container = client.containers.create("busybox", ["sleep", "60"])
        container.start()
        container.kill()
        container.remove()
    return count / (time.perf_counter() - started)


def cli_cycles(environment: dict[str, str], count: int) -> float:
    def docker_cli(*arguments: str) -> str:
        return subprocess.run(
            ["docker", *arguments], env=environment, check=True, capture_output=True, text=True
        ).stdout.strip()

    started = time.perf_counter()
    for _ in range(count):
        identifier = docker_cli("create", "busybox", "sleep", "60")
        docker_cli("start", identifier)
        docker_cli("kill", identifier)
        docker_cli("rm", identifier)
    return count / (time.perf_counter() - started)


def latencies(http: httpx.Client, path: str, count: int) -> tuple[float, float]:
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        http.get(path).raise_for_status()
        samples.append(time.perf_counter() - started)
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.99) - 1]


def start_server(directory: Path) -> tuple[subprocess.Popen[bytes], Path]:
    sock = directory / "api.sock"
    process = subprocess.Popen(
        [sys.executable, "-m", "lifecycle", "serve", "--socket", str(sock),
         "--root", str(directory / "served"), "--log-level", "warning"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 20
    while True:
        probe = socket.socket(socket.AF_UNIX)
        try:
            probe.connect(str(sock))
            break
        except OSError:
            if time.monotonic() > deadline:
                raise SystemExit("lifecycle serve did not start") from None
            time.sleep(0.02)  # polling a condition with a deadline
        finally:
            probe.close()
    return process, sock


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short run (the test suite's)")
    quick = parser.parse_args().quick
    if os.geteuid() != 0 or shutil.which("runc") is None or shutil.which("docker") is None:
        print("benchmarks/api.py needs root, runc and the docker CLI; skipped")
        return
    rounds, cycles = (1, 3) if quick else (5, 20)
    with tempfile.TemporaryDirectory(prefix="lc-bench-api-") as scratch:
        directory = Path(scratch)
        rootfs = busybox_system_rootfs(directory / "rootfs")
        archive = directory / "busybox.tar"

        async def build() -> None:
            store = ImageStore(directory / "direct")
            await store.import_rootfs(rootfs, "busybox:latest", cmd=["sh"])
            await store.save(["busybox:latest"], archive)

        anyio.run(build)
        process, sock = start_server(directory)
        environment = {**os.environ, "DOCKER_HOST": f"unix://{sock}"}
        try:
            client = docker.DockerClient(base_url=f"unix://{sock}")
            client.images.load(archive.read_bytes())
            direct, sdk, cli = Measure("engine", []), Measure("sdk", []), Measure("cli", [])
            for _ in range(rounds):
                direct.samples.append(anyio.run(engine_cycles, directory / "direct", cycles))
                sdk.samples.append(sdk_cycles(client, cycles))
                cli.samples.append(cli_cycles(environment, max(1, cycles // 2)))
            print(f"cycle/s (create, start, kill, rm; runc; median of {rounds} rounds):")
            print(f"  engine in-process  {direct.median:7.1f}  ({direct.spread()})")
            print(f"  Docker SDK         {sdk.median:7.1f}  ({sdk.spread()})  "
                  f"{sdk.median / direct.median:.2f}x the engine")  # fmt: skip
            print(f"  docker CLI         {cli.median:7.1f}  ({cli.spread()})  "
                  f"{cli.median / direct.median:.2f}x the engine")  # fmt: skip
            created = [client.containers.create("busybox", ["true"]) for _ in range(20)]
            transport = httpx.HTTPTransport(uds=str(sock))
            with httpx.Client(transport=transport, base_url="http://docker") as http:
                count = 50 if quick else 2000
                for path in ("/_ping", "/containers/json?all=1"):
                    p50, p99 = latencies(http, path, count)
                    print(f"GET {path:24} p50 {p50 * 1e3:6.2f} ms  p99 {p99 * 1e3:6.2f} ms")
            for container in created:
                container.remove()
            client.close()
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(60)


if __name__ == "__main__":
    main()
