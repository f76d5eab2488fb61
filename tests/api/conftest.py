"""A real ``lifecycle serve`` per test, on a private socket and store, on each anyio backend.

The clients are ones nobody here wrote: the docker CLI (a Go binary, on this
kind of machine at /usr/local/bin/docker), Docker's SDK for Python and
testcontainers. Image containers need root and runc; without them the tests
skip (in CI, where LIFECYCLE_REQUIRE_TOOLS=1, they fail).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import anyio
import pytest

from lifecycle import ImageStore

from ..images.tools import busybox_system_rootfs, require
from ..oshelpers import require_root

STARTUP_TIMEOUT: Final = 20.0
SHUTDOWN_TIMEOUT: Final = 30.0


class Server:
    """One ``lifecycle serve`` process and the environment its clients use."""

    def __init__(self, directory: Path, backend: str) -> None:
        self.directory = directory
        self.socket = directory / "docker.sock"
        self.root = directory / "root"
        self.backend = backend
        self.log = directory / "server.log"
        # A private client configuration: nothing from the machine's ~/.docker is used.
        config = directory / "docker-config"
        config.mkdir()
        self.env = {
            **os.environ,
            "DOCKER_HOST": f"unix://{self.socket}",
            "DOCKER_CONFIG": str(config),
            "DOCKER_CLI_HINTS": "false",
        }
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "lifecycle",
                    "--backend",
                    self.backend,
                    "serve",
                    "--socket",
                    str(self.socket),
                    "--root",
                    str(self.root),
                    "--log-format",
                    "json",
                    "--log-level",
                    "debug",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not self.answers():
            if self.process.poll() is not None:
                pytest.fail(f"lifecycle serve exited {self.process.returncode}: {self.output()}")
            if time.monotonic() > deadline:
                pytest.fail(f"lifecycle serve did not listen in time: {self.output()}")
            time.sleep(0.02)  # polling a condition with a deadline

    def answers(self) -> bool:
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(str(self.socket))
        except OSError:
            return False
        finally:
            probe.close()
        return True

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]

    def stop(self) -> int:
        """SIGTERM, as a service manager would; the exit status."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(SHUTDOWN_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            pytest.fail(f"lifecycle serve did not stop on SIGTERM: {self.output()}")

    def docker(
        self, *arguments: str, check: bool = True, timeout: float = 30, stdin: bytes | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run the real docker CLI against this server."""
        result = subprocess.run(
            [DOCKER, *arguments],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            input=None if stdin is None else stdin.decode("latin-1"),
        )
        if check:
            assert 0 == result.returncode, (
                f"docker {' '.join(arguments)} exited {result.returncode}: {result.stderr}\n"
                f"server: {self.output()}"
            )
        return result


DOCKER: Final = "docker"


@pytest.fixture(scope="session")
def busybox_archive() -> Iterator[Path]:
    """A `docker save` tar of a busybox image (busybox-static, all applets, /etc/passwd)."""
    require("busybox")
    with tempfile.TemporaryDirectory(prefix="lifecycle-api-image-") as scratch:
        directory = Path(scratch)
        rootfs = busybox_system_rootfs(directory / "rootfs")

        async def build() -> None:
            store = ImageStore(directory / "store")
            await store.import_rootfs(rootfs, "busybox:latest", cmd=["sh"])
            await store.save(["busybox:latest"], directory / "busybox.tar")

        anyio.run(build)
        yield directory / "busybox.tar"


@pytest.fixture(params=["asyncio", "trio"])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Server]:
    """A started server (its backend is the parameter); stopped with SIGTERM afterwards,
    which must exit 0 and remove its socket."""
    require_root("image containers under runc")
    require("runc")
    require("docker")
    backend: str = request.param
    # unix socket paths are short (108 bytes): tmp_path can be too long for one.
    with tempfile.TemporaryDirectory(prefix="lc-api-") as scratch:
        instance = Server(Path(scratch), backend)
        instance.start()
        try:
            yield instance
        finally:
            code = instance.stop()
        assert 0 == code, f"lifecycle serve exited {code} on SIGTERM: {instance.output()}"
        assert not instance.socket.exists(), "the socket outlived the server"


@pytest.fixture
def loaded(server: Server, busybox_archive: Path) -> Server:
    """A server whose store has busybox:latest, loaded by `docker load` as a user would."""
    result = server.docker("load", "-i", str(busybox_archive))
    assert "Loaded image: busybox:latest" in result.stdout
    return server
