"""The API at the HTTP level: negotiation, Docker's statuses, hostile input, the socket itself.

A client here is httpx over the unix socket (or a raw socket where the
request must be malformed); every refusal must name the problem, change
nothing, and leave the server serving.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from ..oshelpers import proc_state
from .conftest import Server

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def http(loaded: Server) -> Iterator[httpx.Client]:
    transport = httpx.HTTPTransport(uds=str(loaded.socket))
    with httpx.Client(transport=transport, base_url="http://docker", timeout=30) as client:
        yield client


def _names(http: httpx.Client) -> list[str]:
    rows = http.get("/containers/json", params={"all": "1"}).json()
    return sorted(name for row in rows for name in row["Names"])


def _create(http: httpx.Client, name: str, **fields: object) -> httpx.Response:
    body = {"Image": "busybox", "Cmd": ["sleep", "600"], **fields}
    return http.post("/v1.50/containers/create", params={"name": name}, json=body)


def test_ping_and_version_headers(http: httpx.Client) -> None:
    for method in ("GET", "HEAD"):
        answer = http.request(method, "/_ping")
        assert 200 == answer.status_code
        assert "1.50" == answer.headers["Api-Version"]
        assert "linux" == answer.headers["Ostype"]
        assert answer.headers["Server"].startswith("lifecycle/")
    assert b"OK" == http.get("/_ping").content
    version = http.get("/version").json()
    assert ["Engine"] == [component["Name"] for component in version["Components"]]
    assert ("1.50", "1.24") == (version["ApiVersion"], version["MinAPIVersion"])


def test_versions_outside_the_range_are_refused(http: httpx.Client) -> None:
    assert 200 == http.get("/v1.24/containers/json").status_code
    assert 200 == http.get("/containers/json").status_code
    too_new = http.get("/v1.99/containers/json")
    assert 400 == too_new.status_code
    assert "client version 1.99 is too new" in too_new.json()["message"]
    too_old = http.get("/v1.12/version")
    assert 400 == too_old.status_code
    assert "Minimum supported API version is 1.24" in too_old.json()["message"]
    assert 404 == http.get("/v1.50/no/such/route").status_code


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"{not json", "invalid JSON body"),
        (b"[1, 2]", "expected an object"),
        (b'{"Image": "busybox", "Cmd": 5}', "invalid Cmd"),
        (b'{"Image": "busybox", "Env": [1]}', "invalid Env"),
        (b'{"Image": 7}', "invalid Image"),
        (b'{"Image": "busybox", "StopTimeout": "ten"}', "invalid StopTimeout"),
        (b'{"Image": "busybox", "HostConfig": {"Memory": true}}', "invalid Memory"),
        (b'{"Image": "busybox", "HostConfig": {"Binds": ["/:/host"]}}', "Binds is not supported"),
        (b'{"Image": "busybox", "HostConfig": {"NetworkMode": "bridge2"}}', "network mode"),
        (b'{"Image": "busybox", "Tty": true}', "Tty is not supported"),
        (b'{"Image": "busybox", "StopSignal": "SIGNOPE"}', "SIGNOPE"),
        (b'{"Image": "busybox", "Healthcheck": {"Test": ["RUN", "x"]}}', "invalid Healthcheck"),
        (b'{"Image": "busybox", "Healthcheck": {"Test": ["CMD"], "Interval": -5}}', "Healthcheck"),
        (
            b'{"Image": "busybox", "HostConfig": {"AutoRemove": true, '
            b'"RestartPolicy": {"Name": "always"}}}',
            "AutoRemove",
        ),
    ],
)
def test_bad_create_bodies_are_400_and_create_nothing(
    http: httpx.Client, body: bytes, expected: str
) -> None:
    answer = http.post(
        "/containers/create",
        params={"name": "bad"},
        content=body,
        headers={"Content-Type": "application/json"},
    )
    assert 400 == answer.status_code, answer.text
    assert expected in answer.json()["message"]
    assert [] == _names(http)
    assert 200 == http.get("/_ping").status_code, "still serving"


def test_unknown_things_are_404_conflicts_409(http: httpx.Client) -> None:
    assert "No such container: nope" == http.post("/containers/nope/start").json()["message"]
    assert 404 == http.get("/containers/nope/json").status_code
    missing_image = _create(http, "x", Image="nosuch:1")
    assert 404 == missing_image.status_code
    assert "No such image: nosuch:1" == missing_image.json()["message"]
    assert 404 == http.get("/images/nosuch/json").status_code
    assert 400 == _create(http, "Bad Name!").status_code
    assert 201 == _create(http, "one").status_code
    assert 409 == _create(http, "one").status_code
    assert 409 == http.post("/containers/one/pause").status_code  # created, not running
    assert 409 == http.post("/containers/one/unpause").status_code
    assert 409 == http.post("/containers/one/kill").status_code
    assert 304 == http.post("/containers/one/stop").status_code
    assert 204 == http.post("/containers/one/start").status_code
    assert 304 == http.post("/containers/one/start").status_code
    assert 409 == http.delete("/containers/one").status_code  # running: needs force
    assert 400 == http.post("/containers/one/kill", params={"signal": "SIGNOPE"}).status_code
    assert 204 == http.delete("/containers/one", params={"force": "1"}).status_code
    assert [] == _names(http)


def test_huge_body_is_413_and_the_server_keeps_serving(http: httpx.Client) -> None:
    huge = b'{"Image": "' + b"a" * (2 * 1024 * 1024) + b'"}'
    answer = http.post("/containers/create", content=huge)
    assert 413 == answer.status_code
    assert "larger than" in answer.json()["message"]
    assert 200 == http.get("/_ping").status_code


def test_garbage_on_the_wire_is_400(loaded: Server) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as raw:
        raw.settimeout(10)
        raw.connect(str(loaded.socket))
        raw.sendall(b"NOT HTTP AT ALL\r\n\r\n")
        reply = raw.recv(4096)
    assert reply.startswith(b"HTTP/1.1 400"), reply
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as raw:
        raw.settimeout(10)
        raw.connect(str(loaded.socket))
        # Headers past the 64 KiB limit, never ended: refused without waiting for the end.
        raw.sendall(b"GET /_ping HTTP/1.1\r\nHost: x\r\nX-Long: " + b"a" * 70_000)
        reply = raw.recv(4096)
    assert reply.startswith(b"HTTP/1.1 431"), reply
    assert loaded.answers()


def test_filters_in_both_encodings(http: httpx.Client) -> None:
    assert 201 == _create(http, "a", Labels={"k": "v"}).status_code
    assert 201 == _create(http, "b").status_code
    assert 204 == http.post("/containers/a/start").status_code
    for encoded in ({"status": {"running": True}}, {"status": ["running"]}):
        rows = http.get("/containers/json", params={"filters": json.dumps(encoded)}).json()
        assert [["/a"]] == [row["Names"] for row in rows]
    created = http.get("/containers/json", params={"filters": '{"status":["created"]}'}).json()
    assert [["/b"]] == [row["Names"] for row in created]
    by_label = http.get("/containers/json", params={"all": "1", "filters": '{"label":["k=v"]}'})
    assert [["/a"]] == [row["Names"] for row in by_label.json()]
    ancestor = http.get(
        "/containers/json", params={"all": "1", "filters": '{"ancestor":["busybox"]}'}
    )
    assert 2 == len(ancestor.json())
    assert 400 == http.get("/containers/json", params={"filters": '{"bogus":["x"]}'}).status_code
    assert 400 == http.get("/containers/json", params={"filters": "{"}).status_code
    assert 400 == http.get("/containers/json", params={"filters": '{"status":["zzz"]}'}).status_code
    limited = http.get("/containers/json", params={"limit": "1"}).json()
    assert [["/b"]] == [row["Names"] for row in limited], "newest first"
    for name in ("a", "b"):
        assert 204 == http.delete(f"/containers/{name}", params={"force": "true"}).status_code


def test_inspect_has_dockers_fields(http: httpx.Client) -> None:
    body = {
        "Env": ["GREETING=hi"],
        "WorkingDir": "/tmp",
        "Labels": {"app": "x"},
        "StopSignal": "SIGINT",
        "StopTimeout": 3,
        "HostConfig": {"RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 2},
                       "Memory": 64 * 1024 * 1024, "PidsLimit": 50, "NetworkMode": "none"},
    }  # fmt: skip
    assert 201 == _create(http, "insp", **body).status_code
    assert 204 == http.post("/containers/insp/start").status_code
    document = http.get("/containers/insp/json").json()
    state = document["State"]
    assert ("running", True, False, 0) == (
        state["Status"], state["Running"], state["Paused"], state["ExitCode"]
    )  # fmt: skip
    assert proc_state(state["Pid"]) is not None
    assert state["StartedAt"].endswith("Z")
    assert "0001-01-01T00:00:00Z" == state["FinishedAt"]
    assert "/insp" == document["Name"]
    config = document["Config"]
    assert "GREETING=hi" in config["Env"]
    assert ("/tmp", {"app": "x"}, "SIGINT", 3) == (
        config["WorkingDir"], config["Labels"], config["StopSignal"], config["StopTimeout"]
    )  # fmt: skip
    assert ["sleep", "600"] == config["Cmd"]
    host = document["HostConfig"]
    assert {"Name": "on-failure", "MaximumRetryCount": 2} == host["RestartPolicy"]
    assert (64 * 1024 * 1024, 50, "none") == (
        host["Memory"],
        host["PidsLimit"],
        host["NetworkMode"],
    )
    limit = Path(f"/sys/fs/cgroup/memory/lifecycle-oci/{document['Id'][:12]}")
    if limit.is_dir():  # the runtime applied it (cgroup v1 memory controller)
        assert str(64 * 1024 * 1024) == (limit / "memory.limit_in_bytes").read_text().strip()
    assert 0 == document["RestartCount"]
    assert 204 == http.delete("/containers/insp", params={"force": "1"}).status_code


def test_wait_headers_come_at_once(http: httpx.Client) -> None:
    command = ["sh", "-c", "trap 'exit 7' TERM; while :; do sleep 0.1; done"]
    assert 201 == _create(http, "w", Cmd=command).status_code
    assert 204 == http.post("/containers/w/start").status_code
    with http.stream("POST", "/containers/w/wait", params={"condition": "next-exit"}) as waiting:
        assert 200 == waiting.status_code  # before the container has exited
        assert 204 == http.post("/containers/w/kill", params={"signal": "TERM"}).status_code
        assert {"StatusCode": 7, "Error": None} == json.loads(waiting.read())
    assert 400 == http.post("/containers/w/wait", params={"condition": "soon"}).status_code
    assert 204 == http.delete("/containers/w").status_code


def test_logs_framing(http: httpx.Client) -> None:
    command = ["sh", "-c", "echo one; echo two >&2; echo three"]
    assert 201 == _create(http, "lg", Cmd=command).status_code
    assert 204 == http.post("/containers/lg/start").status_code
    assert 200 == http.post("/containers/lg/wait").status_code
    answer = http.get("/containers/lg/logs", params={"stdout": "1", "stderr": "1"})
    assert "application/vnd.docker.multiplexed-stream" == answer.headers["Content-Type"]
    frames, data = [], answer.content
    while data:
        stream, size = data[0], int.from_bytes(data[4:8], "big")
        assert b"\0\0\0" == data[1:4]
        frames.append((stream, data[8 : 8 + size]))
        data = data[8 + size :]
    assert sorted([(1, b"one\n"), (2, b"two\n"), (1, b"three\n")]) == sorted(frames)
    tail = http.get("/containers/lg/logs", params={"stdout": "1", "tail": "1"}).content
    assert tail.endswith(b"three\n")
    assert 400 == http.get("/containers/lg/logs").status_code  # no stream chosen
    assert 400 == http.get("/containers/lg/logs", params={"stdout": "1", "tail": "x"}).status_code
    assert 204 == http.delete("/containers/lg").status_code


def test_images_tag_get_delete(http: httpx.Client, busybox_archive: Path) -> None:
    assert 201 == http.post("/images/busybox/tag", params={"repo": "mine", "tag": "v1"}).status_code
    tags = sorted(tag for row in http.get("/images/json").json() for tag in row["RepoTags"])
    assert ["busybox:latest", "mine:v1"] == tags
    assert 400 == http.post("/images/busybox/tag", params={"repo": "UPPER"}).status_code
    saved = http.get("/images/mine:v1/get")
    assert 200 == saved.status_code
    assert b"manifest.json" in saved.content[:4096] or b"oci-layout" in saved.content
    removed = http.delete("/images/mine:v1").json()
    assert [{"Untagged": "mine:v1"}] == removed
    assert 201 == _create(http, "user").status_code
    in_use = http.delete("/images/busybox")
    assert 409 == in_use.status_code
    assert 204 == http.delete("/containers/user").status_code
    gone = http.delete("/images/busybox").json()
    assert {"Untagged": "busybox:latest"} in gone
    assert any("Deleted" in entry for entry in gone)
    assert [] == http.get("/images/json").json()
    corrupt = http.post("/images/load", content=busybox_archive.read_bytes()[:5000])
    assert 400 == corrupt.status_code
    assert "cannot load the archive" in corrupt.json()["message"]
    assert [] == http.get("/images/json").json()


def test_socket_is_owner_only_and_not_taken_over(loaded: Server) -> None:
    assert 0o600 == stat.S_IMODE(loaded.socket.stat().st_mode)
    second = subprocess.run(
        [sys.executable, "-m", "lifecycle", "serve", "--socket", str(loaded.socket),
         "--root", str(loaded.directory / "other-root")],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert 1 == second.returncode
    assert "is the socket of a running server" in second.stderr
    assert loaded.answers(), "the first server still has its socket"
    not_socket = loaded.directory / "plain-file"
    not_socket.write_text("mine")
    third = subprocess.run(
        [sys.executable, "-m", "lifecycle", "serve", "--socket", str(not_socket),
         "--root", str(loaded.directory / "other-root")],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert 1 == third.returncode
    assert "is not a socket" in third.stderr
    assert "mine" == not_socket.read_text()


def test_sigterm_stops_every_container(loaded: Server) -> None:
    loaded.docker("run", "-d", "--name", "a", "--stop-timeout", "1", "busybox", "sleep", "600")
    trapping = "trap 'exit 0' TERM; while :; do sleep 0.1; done"
    loaded.docker("run", "-d", "--name", "b", "busybox", "sh", "-c", trapping)
    pids = [int(loaded.docker("inspect", "-f", "{{.State.Pid}}", name).stdout) for name in "ab"]
    assert all(proc_state(pid) is not None for pid in pids)
    started = time.monotonic()
    assert 0 == loaded.stop()
    assert time.monotonic() - started < 20
    assert [None, None] == [proc_state(pid) for pid in pids]
    assert not loaded.socket.exists()


def test_stale_socket_is_replaced(tmp_path: Path) -> None:
    from ..oshelpers import require_root  # noqa: PLC0415

    require_root("the API server's image store")
    import tempfile  # noqa: PLC0415

    with tempfile.TemporaryDirectory(prefix="lc-stale-") as scratch:
        server = Server(Path(scratch), "asyncio")
        stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        stale.bind(str(server.socket))
        stale.close()  # bound, never listened: nobody answers
        server.start()
        try:
            assert 0o600 == stat.S_IMODE(os.stat(server.socket).st_mode)
        finally:
            assert 0 == server.stop()


def test_sigint_exits_zero(loaded: Server) -> None:
    assert loaded.process is not None
    loaded.process.send_signal(signal.SIGINT)
    assert 0 == loaded.process.wait(30)


def test_stop_with_another_signal_and_auto_remove_after_a_restart(loaded: Server) -> None:
    trapping = "trap 'exit 9' USR1; while :; do sleep 0.1; done"
    loaded.docker("run", "-d", "--name", "usr", "busybox", "sh", "-c", trapping)
    pid = int(loaded.docker("inspect", "-f", "{{.State.Pid}}", "usr").stdout)
    loaded.docker("stop", "-s", "USR1", "-t", "20", "usr")
    assert proc_state(pid) is None
    assert "9" == loaded.docker("inspect", "-f", "{{.State.ExitCode}}", "usr").stdout.strip()
    loaded.docker("rm", "usr")
    # --rm: removed at the exit after a restart, not at the restart's own exit.
    loaded.docker("run", "-d", "--rm", "--name", "tmp", "busybox", "sleep", "600")
    loaded.docker("restart", "-t", "0", "tmp")
    assert "running" == loaded.docker("inspect", "-f", "{{.State.Status}}", "tmp").stdout.strip()
    loaded.docker("kill", "tmp")
    deadline = time.monotonic() + 10
    while loaded.docker("ps", "-a", "--format", "{{.Names}}").stdout.strip():
        assert time.monotonic() < deadline, "the --rm container was not removed"
        time.sleep(0.02)  # polling a condition with a deadline
