"""Docker's SDK for Python (7.x) and testcontainers drive ``lifecycle serve`` unchanged."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from ..oshelpers import proc_state
from .conftest import Server

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def client(loaded: Server) -> Iterator[Any]:
    sdk = docker.DockerClient(base_url=f"unix://{loaded.socket}", timeout=60)
    try:
        yield sdk
    finally:
        sdk.close()


def test_sdk_negotiates_and_lists_images(client: Any, busybox_archive: Path) -> None:
    assert "1.50" == client.version()["ApiVersion"]
    assert client.ping() is True
    tags = [tag for image in client.images.list() for tag in image.tags]
    assert ["busybox:latest"] == tags
    image = client.images.get("busybox")
    assert image.id.startswith("sha256:")
    assert ["sh"] == image.attrs["Config"]["Cmd"]
    # load again, through the SDK this time: the same image, by its tag.
    loaded = client.images.load(busybox_archive.read_bytes())
    assert [image.id] == [each.id for each in loaded]


def test_sdk_run_wait_reload_logs(client: Any) -> None:
    container = client.containers.run(
        "busybox", ["sh", "-c", "echo out; echo err >&2; exit 5"], detach=True, name="sdk"
    )
    assert {"StatusCode": 5, "Error": None} == container.wait(timeout=30)
    container.reload()
    assert "exited" == container.status
    assert 5 == container.attrs["State"]["ExitCode"]
    assert "/sdk" == container.attrs["Name"]
    assert b"out\nerr\n" == container.logs()
    assert b"out\n" == container.logs(stderr=False)
    container.remove()
    with pytest.raises(docker.errors.NotFound, match="No such container"):
        client.containers.get("sdk")


def test_sdk_events_decode(client: Any) -> None:
    since = time.time()
    container = client.containers.run("busybox", ["sleep", "600"], detach=True, name="evs")
    pid = container.attrs["State"]["Pid"] or client.api.inspect_container("evs")["State"]["Pid"]
    assert proc_state(pid) is not None
    container.pause()
    container.unpause()
    container.stop(timeout=1)
    container.remove()
    assert proc_state(pid) is None
    messages = [
        event
        for event in client.events(since=since, until=time.time() + 0.5, decode=True)
        if event.get("Type") == "container"
    ]
    actions = [message["Action"] for message in messages]
    # PID 1 ignores SIGTERM: the stop's SIGTERM, then its SIGKILL, as moby reports them.
    expected = ["create", "start", "pause", "unpause", "kill", "kill", "die", "stop", "destroy"]
    assert expected == actions
    signals = [m["Actor"]["Attributes"]["signal"] for m in messages if m["Action"] == "kill"]
    assert ["15", "9"] == signals


def test_sdk_list_filters(client: Any) -> None:
    running = client.containers.run(
        "busybox", ["sleep", "600"], detach=True, name="up", labels={"tier": "web"}
    )
    done = client.containers.run("busybox", ["true"], detach=True, name="done")
    done.wait(timeout=30)
    assert ["up"] == [c.name for c in client.containers.list()]
    assert ["done", "up"] == sorted(c.name for c in client.containers.list(all=True))
    assert ["up"] == [c.name for c in client.containers.list(filters={"label": "tier=web"})]
    assert ["done"] == [
        c.name for c in client.containers.list(all=True, filters={"status": "exited"})
    ]
    assert ["up"] == [c.name for c in client.containers.list(filters={"id": running.id[:10]})]
    for each in (running, done):
        each.remove(force=True)


def test_testcontainers_busybox(loaded: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    from testcontainers.core.container import DockerContainer  # noqa: PLC0415
    from testcontainers.core.wait_strategies import LogMessageWaitStrategy  # noqa: PLC0415

    # Ryuk (testcontainers' reaper container) is disabled: the test removes what it made.
    monkeypatch.setenv("TESTCONTAINERS_RYUK_DISABLED", "true")
    monkeypatch.setenv("DOCKER_HOST", f"unix://{loaded.socket}")
    from testcontainers.core import config  # noqa: PLC0415

    monkeypatch.setattr(config.testcontainers_config, "ryuk_disabled", True)
    container = (
        DockerContainer("busybox")
        .with_command(["sh", "-c", "echo ready; exec sleep 600"])
        .waiting_for(LogMessageWaitStrategy("ready").with_startup_timeout(30))
    )
    with container:  # started once "ready" is in its logs
        wrapped = container.get_wrapped_container()
        wrapped.reload()
        assert "running" == wrapped.status
        pid = wrapped.attrs["State"]["Pid"]
        assert proc_state(pid) is not None
        labels = wrapped.labels
        assert any(key.startswith("org.testcontainers") for key in labels), labels
    assert proc_state(pid) is None
