"""The real docker CLI (v28) drives ``lifecycle serve``: each scenario checked against /proc.

Every command is the one a user types, with ``DOCKER_HOST=unix://...``; the
answers are checked in the CLI's own output (Docker's STATUS texts, inspect
templates, exit statuses) and, for processes, in /proc.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from ..oshelpers import freezer_state, proc_state
from .conftest import Server

pytestmark = pytest.mark.timeout(120)

_ID_RE = re.compile(r"^[0-9a-f]{64}$")


def _pid(server: Server, name: str) -> int:
    return int(server.docker("inspect", "-f", "{{.State.Pid}}", name).stdout)


def _status(server: Server, name: str) -> str:
    rows = server.docker("ps", "-a", "--filter", f"name=^/{name}$", "--format", "{{.Status}}")
    return rows.stdout.strip()


def _ns_pid(pid: int) -> list[str]:
    """NSpid of /proc/<pid>/status: the pid in each pid namespace, outermost first."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("NSpid:"):
            return line.split()[1:]
    return []


def _wait_until(condition: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)  # polling a condition with a deadline


def test_version_negotiates_the_api(server: Server) -> None:
    result = server.docker(
        "version", "--format", "{{.Server.APIVersion}} {{.Server.MinAPIVersion}} {{.Server.Os}}"
    )
    assert "1.50 1.24 linux" == result.stdout.strip()


def test_load_then_images(loaded: Server) -> None:
    rows = loaded.docker("images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}").stdout
    assert re.fullmatch(r"busybox:latest [0-9a-f]{12}\n", rows), rows


def test_lifecycle_through_the_cli(loaded: Server) -> None:
    server = loaded
    created = server.docker("create", "--name", "web", "busybox", "sleep", "600").stdout.strip()
    assert _ID_RE.match(created), created
    assert "Created" == _status(server, "web")
    assert "created" == server.docker("inspect", "-f", "{{.State.Status}}", "web").stdout.strip()

    server.docker("start", "web")
    pid = _pid(server, "web")
    assert ["1"] == _ns_pid(pid)[-1:], "the process is PID 1 of its own namespace"
    assert re.fullmatch(r"Up (Less than a second|\d+ seconds?)", _status(server, "web"))
    names = server.docker("inspect", "-f", "{{.Name}} {{.Config.Image}} {{.RestartCount}}", "web")
    assert "/web busybox 0" == names.stdout.strip()

    server.docker("pause", "web")
    assert "FROZEN" == freezer_state(pid)
    assert re.fullmatch(r"Up .+ \(Paused\)", _status(server, "web"))
    assert "paused" == server.docker("inspect", "-f", "{{.State.Status}}", "web").stdout.strip()
    server.docker("unpause", "web")
    assert "THAWED" == freezer_state(pid)

    # PID 1 has no handler for SIGTERM: stop escalates to SIGKILL after -t seconds.
    server.docker("stop", "-t", "1", "web")
    assert proc_state(pid) is None
    assert re.fullmatch(
        r"Exited \(137\) (Less than a second|\d+ seconds?) ago", _status(server, "web")
    )
    assert "137" == server.docker("wait", "web").stdout.strip()

    server.docker("restart", "-t", "1", "web")
    second = _pid(server, "web")
    assert second != pid
    assert proc_state(second) is not None
    server.docker("kill", "web")
    assert proc_state(second) is None
    assert (
        "exited 137"
        == server.docker(
            "inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", "web"
        ).stdout.strip()
    )

    server.docker("start", "web")
    third = _pid(server, "web")
    server.docker("rm", "-f", "web")
    assert proc_state(third) is None
    assert "" == server.docker("ps", "-a", "--format", "{{.Names}}").stdout.strip()


def test_exited_status_names_the_code(loaded: Server) -> None:
    loaded.docker("run", "--name", "three", "busybox", "sh", "-c", "exit 3", check=False)
    assert re.fullmatch(
        r"Exited \(3\) (Less than a second|\d+ seconds?) ago", _status(loaded, "three")
    )
    listed = loaded.docker("ps", "-a", "--filter", "exited=3", "--format", "{{.Names}}").stdout
    assert "three" == listed.strip()
    assert "" == loaded.docker("ps", "--format", "{{.Names}}").stdout.strip(), "not running"
    loaded.docker("rm", "three")


def test_run_in_the_foreground_passes_output_and_exit_status(loaded: Server) -> None:
    result = loaded.docker("run", "--rm", "busybox", "echo", "hi")
    assert "hi\n" == result.stdout
    failed = loaded.docker(
        "run", "--rm", "busybox", "sh", "-c", "echo out; echo oops >&2; exit 3", check=False
    )
    assert 3 == failed.returncode
    assert "out\n" == failed.stdout
    assert "oops" in failed.stderr
    # --rm: the container is gone once docker run returns.
    assert "" == loaded.docker("ps", "-a", "--format", "{{.Names}}").stdout.strip()


def test_run_a_missing_command_exits_127(loaded: Server) -> None:
    result = loaded.docker("run", "--rm", "busybox", "no-such-command", check=False)
    assert 127 == result.returncode, result.stderr
    assert "no-such-command" in result.stderr


def test_run_detached(loaded: Server) -> None:
    identifier = loaded.docker(
        "run", "-d", "--name", "bg", "busybox", "sleep", "600"
    ).stdout.strip()
    assert _ID_RE.match(identifier)
    assert proc_state(_pid(loaded, "bg")) is not None
    assert "bg" == loaded.docker("ps", "--format", "{{.Names}}").stdout.strip()
    filtered = loaded.docker("ps", "--filter", "status=running", "--format", "{{.ID}}").stdout
    assert identifier[:12] == filtered.strip()
    loaded.docker("rm", "-f", "bg")


def test_logs_follow_ends_with_the_container(loaded: Server) -> None:
    loaded.docker(
        "run", "-d", "--name", "talker", "busybox", "sh", "-c",
        "for i in 1 2 3; do echo line $i; sleep 0.2; done; echo done >&2",
    )  # fmt: skip
    followed = loaded.docker("logs", "-f", "talker", timeout=20)
    assert "line 1\nline 2\nline 3\n" == followed.stdout
    assert "done\n" == followed.stderr
    tail = loaded.docker("logs", "--tail", "1", "talker")
    assert ("line 3\n", "done\n") == (tail.stdout, tail.stderr) or tail.stdout == ""
    stamped = loaded.docker("logs", "-t", "talker").stdout.splitlines()
    assert all(
        re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z line \d$", row) for row in stamped
    )
    loaded.docker("rm", "talker")


def test_events_in_docker_format(loaded: Server) -> None:
    since = f"{time.time():.9f}"
    loaded.docker("run", "--rm", "--name", "ev", "--label", "team=blue", "busybox", "true")
    _wait_until(
        lambda: (
            "destroy"
            in loaded.docker(
                "events",
                "--since",
                since,
                "--until",
                f"{time.time():.9f}",
                "--format",
                "{{.Action}}",
            ).stdout
        )
    )
    rows = loaded.docker(
        "events", "--since", since, "--until", f"{time.time():.9f}", "--format", "{{json .}}"
    ).stdout.splitlines()
    messages = [json.loads(row) for row in rows]
    assert ["create", "start", "die", "destroy"] == [m["Action"] for m in messages]
    for message in messages:
        assert "container" == message["Type"]
        assert "ev" == message["Actor"]["Attributes"]["name"]
        assert "busybox" == message["Actor"]["Attributes"]["image"]
        assert "blue" == message["Actor"]["Attributes"]["team"]
        assert message["timeNano"] // 1_000_000_000 == message["time"]
    assert "0" == messages[2]["Actor"]["Attributes"]["exitCode"]
    only_die = loaded.docker(
        "events", "--since", since, "--until", f"{time.time():.9f}",
        "--filter", "event=die", "--format", "{{.Action}}",
    )  # fmt: skip
    assert "die" == only_die.stdout.strip()


def test_cli_errors_are_dockers(loaded: Server) -> None:
    missing = loaded.docker("start", "nosuch", check=False)
    assert 1 == missing.returncode
    assert "No such container: nosuch" in missing.stderr
    published = loaded.docker("run", "-p", "8080:80", "busybox", "true", check=False)
    assert 125 == published.returncode
    assert "PortBindings is not supported" in published.stderr
    loaded.docker("create", "--name", "idle", "busybox", "true")
    not_running = loaded.docker("pause", "idle", check=False)
    assert "is not running" in not_running.stderr
    loaded.docker("create", "--name", "idle2", "busybox", "true", check=True)
    taken = loaded.docker("create", "--name", "idle", "busybox", "true", check=False)
    assert 0 != taken.returncode
    assert 'The container name "/idle" is already in use' in taken.stderr
    image = loaded.docker("run", "--rm", "no-such-image:1", "true", check=False)
    assert 125 == image.returncode
    # Nothing was created by the refused commands.
    names = loaded.docker("ps", "-a", "--format", "{{.Names}}").stdout.split()
    assert ["idle", "idle2"] == sorted(names)
    loaded.docker("rm", "idle", "idle2")


def test_health_checks_through_the_cli(loaded: Server) -> None:
    """docker run --health-*: probes run inside the container (runc exec); ps, inspect
    and events show them as Docker does."""
    since = f"{time.time():.9f}"
    loaded.docker(
        "run", "-d", "--name", "doc", "--health-cmd", "test -e /etc/ok",
        "--health-interval", "100ms", "--health-retries", "2", "--health-start-interval", "100ms",
        "busybox", "sh", "-c", "touch /etc/ok; sleep 600",
    )  # fmt: skip
    _wait_until(lambda: "(healthy)" in _status(loaded, "doc"), timeout=20)
    health = json.loads(loaded.docker("inspect", "-f", "{{json .State.Health}}", "doc").stdout)
    assert ("healthy", 0) == (health["Status"], health["FailingStreak"])
    assert 0 == health["Log"][-1]["ExitCode"]
    listed = loaded.docker("ps", "--filter", "health=healthy", "--format", "{{.Names}}").stdout
    assert "doc" == listed.strip()
    loaded.docker("kill", "-s", "USR1", "doc")  # survives: sh as PID 1 ignores it
    pid = _pid(loaded, "doc")
    assert proc_state(pid) is not None
    Path(f"/proc/{pid}/root/etc/ok").unlink()  # what the probe looks for, seen from the host
    _wait_until(lambda: "(unhealthy)" in _status(loaded, "doc"), timeout=20)
    actions = loaded.docker(
        "events", "--since", since, "--until", f"{time.time():.9f}",
        "--filter", "event=health_status", "--format", "{{.Action}}",
    ).stdout.split("\n")  # fmt: skip
    assert ["health_status: healthy", "health_status: unhealthy"] == [a for a in actions if a]
    loaded.docker("rm", "-f", "doc")


def test_containers_come_back_when_the_server_restarts(loaded: Server) -> None:
    """dockerd's restore through the real CLI: a SIGTERM of the server stops its containers
    (not by hand), the next server on the same root brings them back; the restart policy
    unless-stopped starts one again, a plain one stays exited with its exit status."""
    loaded.docker(
        "run", "-d", "--name", "kept", "--label", "team=web", "--restart", "unless-stopped",
        "busybox", "sleep", "60",
    )  # fmt: skip
    loaded.docker("run", "--name", "done", "busybox", "sh", "-c", "exit 3", check=False)
    assert 0 == loaded.stop()
    loaded.start()
    listed = loaded.docker("ps", "-a", "--format", "{{.Names}} {{.Status}}").stdout
    statuses = dict(line.split(" ", 1) for line in listed.splitlines())
    assert statuses["kept"].startswith("Up ")
    assert statuses["done"].startswith("Exited (3) ")
    assert "busybox" in loaded.docker("inspect", "--format", "{{.Config.Image}}", "kept").stdout
    by_label = loaded.docker("ps", "-a", "--filter", "label=team=web", "--format", "{{.Names}}")
    assert ["kept"] == by_label.stdout.split()  # labels are journaled
    loaded.docker("rm", "-f", "kept", "done")
