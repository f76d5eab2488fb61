"""`lifecycle run`: exit codes, signals, events, stdin, and nothing left behind (both backends)."""

from __future__ import annotations

import json
import os
import pty
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ..oshelpers import proc_state

pytestmark = pytest.mark.parametrize("backend", ["asyncio", "trio"])

TERM_HANDLER = (
    "import os, pathlib, signal, sys, time\n"
    "signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))\n"
    "signal.signal(signal.SIGHUP, lambda *_: pathlib.Path(sys.argv[1] + '.hup').touch())\n"
    "pathlib.Path(sys.argv[1]).write_text(str(os.getpid()))\n"
    "while True: time.sleep(1)\n"
)


def lifecycle_run(backend: str, *arguments: str, **options: object) -> list[str]:
    return [sys.executable, "-m", "lifecycle", "--backend", backend, "run", *arguments]


def run(
    backend: str, *arguments: str, timeout: float = 60, **options: object
) -> subprocess.CompletedProcess[bytes]:
    result: subprocess.CompletedProcess[bytes] = subprocess.run(
        lifecycle_run(backend, *arguments),
        capture_output=True,
        timeout=timeout,
        check=False,
        stdin=subprocess.DEVNULL,
        **options,  # type: ignore[call-overload]
    )
    return result


def wait_for(path: Path, timeout: float = 20) -> str:
    deadline = time.monotonic() + timeout
    while not (path.exists() and path.stat().st_size):
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} never appeared")
        time.sleep(0.01)
    return path.read_text()


def test_exit_status_is_the_containers(backend: str) -> None:
    """The child's own exit status becomes lifecycle run's."""
    result = run(backend, "--", sys.executable, "-c", "raise SystemExit(3)")
    assert 3 == result.returncode, result.stderr.decode()


def test_killed_by_sigkill_gives_137(backend: str) -> None:
    """A child killed by SIGKILL: 128 + 9."""
    result = run(backend, "--", "sh", "-c", "kill -9 $$")
    assert 137 == result.returncode


def test_unknown_command_gives_127_and_names_it(backend: str) -> None:
    """A command that does not exist: 127 and a one-line message naming it."""
    result = run(backend, "--", "no-such-command-xyz")
    assert 127 == result.returncode
    lines = result.stderr.decode().strip().splitlines()
    assert 1 == len(lines)
    assert "no-such-command-xyz" in lines[0]
    assert "not found" in lines[0]


def test_not_executable_gives_126(backend: str, tmp_path: Path) -> None:
    """A file that cannot be executed: 126."""
    script = tmp_path / "script.sh"
    script.write_text("#!/bin/sh\n")
    assert 126 == run(backend, "--", str(script)).returncode


@pytest.mark.parametrize(
    "arguments",
    [
        ("--stop-timeout", "-1", "--", "true"),
        ("--stop-signal", "SIGBOGUS", "--", "true"),
        ("--bogus-option", "--", "true"),
        ("--name", "bad name", "--", "true"),
        (),
    ],
    ids=["negative-timeout", "bad-signal", "unknown-option", "bad-name", "no-command"],
)
def test_lifecycle_own_failures_give_125(backend: str, arguments: tuple[str, ...]) -> None:
    """Bad options and bad input are lifecycle's failure: 125, as docker run."""
    result = run(backend, *arguments)
    assert 125 == result.returncode
    assert result.stderr


def test_stdout_and_stderr_pass_through_and_env_and_cwd(backend: str, tmp_path: Path) -> None:
    """The child's output is ours, unchanged; --env and --cwd apply."""
    script = 'printf "out:$GREETING\\n"; printf "err:$(pwd)\\n" >&2'
    result = run(backend, "--env", "GREETING=hi", "--cwd", str(tmp_path), "--", "sh", "-c", script)
    assert 0 == result.returncode
    assert b"out:hi\n" == result.stdout
    assert f"err:{tmp_path}\n".encode() == result.stderr


def test_sigint_stops_gracefully_and_leaves_nothing(backend: str, tmp_path: Path) -> None:
    """SIGINT: the child gets SIGTERM, exits 0, lifecycle run exits 0, no process remains."""
    ready = tmp_path / "ready"
    with subprocess.Popen(
        lifecycle_run(backend, "--", sys.executable, "-c", TERM_HANDLER, str(ready)),
        stdin=subprocess.DEVNULL,
    ) as runner:
        child = int(wait_for(ready))
        runner.send_signal(signal.SIGINT)
        assert 0 == runner.wait(timeout=20)
    assert proc_state(child) is None


def test_forwarded_sighup_reaches_the_child(backend: str, tmp_path: Path) -> None:
    """SIGHUP to lifecycle run is forwarded to the container's process group."""
    ready = tmp_path / "ready"
    with subprocess.Popen(
        lifecycle_run(backend, "--", sys.executable, "-c", TERM_HANDLER, str(ready)),
        stdin=subprocess.DEVNULL,
    ) as runner:
        wait_for(ready)
        runner.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 20
        while not Path(f"{ready}.hup").exists():
            assert time.monotonic() < deadline, "SIGHUP never reached the child"
            time.sleep(0.01)
        runner.send_signal(signal.SIGTERM)
        assert 0 == runner.wait(timeout=20)


def test_term_ignoring_child_is_killed_after_the_stop_timeout(backend: str, tmp_path: Path) -> None:
    """With --stop-timeout 1, a child that ignores SIGTERM is SIGKILLed after a second: 137."""
    ready = tmp_path / "ready"
    command = ["sh", "-c", f"trap '' TERM; echo $$ > {ready}; exec sleep 60"]
    with subprocess.Popen(
        lifecycle_run(backend, "--stop-timeout", "1", "--", *command), stdin=subprocess.DEVNULL
    ) as runner:
        child = int(wait_for(ready))
        started = time.monotonic()
        runner.send_signal(signal.SIGTERM)
        assert 137 == runner.wait(timeout=20)
        assert time.monotonic() - started >= 1.0
    assert proc_state(child) is None


def test_second_sigint_kills_at_once(backend: str, tmp_path: Path) -> None:
    """A second SIGINT does not wait out the stop timeout: SIGKILL, 137."""
    ready = tmp_path / "ready"
    command = ["sh", "-c", f"trap '' TERM; echo $$ > {ready}; exec sleep 60"]
    with subprocess.Popen(
        lifecycle_run(backend, "--stop-timeout", "60", "--events", "--", *command),
        stdin=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    ) as runner:
        child = int(wait_for(ready))
        assert runner.stderr is not None
        runner.send_signal(signal.SIGINT)
        # Wait until the graceful stop has begun (its kill event is out).
        first = runner.stderr.readline() + runner.stderr.readline() + runner.stderr.readline()
        assert b'"signal":"15"' in first
        runner.send_signal(signal.SIGINT)
        assert 137 == runner.wait(timeout=20)
    assert proc_state(child) is None


def test_events_are_json_lines_in_order(backend: str) -> None:
    """--events prints Docker-shaped JSON objects on stderr: create, start, die."""
    result = run(backend, "--events", "--name", "job", "--", "sh", "-c", "exit 4")
    assert 4 == result.returncode
    events = [json.loads(line) for line in result.stderr.decode().splitlines()]
    assert ["create", "start", "die"] == [event["Action"] for event in events]
    assert {"container"} == {event["Type"] for event in events}
    assert "4" == events[2]["Actor"]["Attributes"]["exitCode"]
    assert {"job"} == {event["Actor"]["Attributes"]["name"] for event in events}
    assert all(len(event["id"]) == 64 for event in events)
    times = [event["timeNano"] for event in events]
    assert sorted(times) == times


def test_health_options_and_stop_on_failure(backend: str, tmp_path: Path) -> None:
    """--health-cmd/--health-interval/--health-retries and Podman's --health-on-failure stop:
    healthy while the file exists, unhealthy once it is gone, then stopped (143)."""
    ok = tmp_path / "ok"
    result = run(
        backend, "--events", "--health-cmd", f"test -e {ok}", "--health-interval", "0.05",
        "--health-start-interval", "0.05", "--health-retries", "2", "--health-on-failure", "stop",
        "--", "sh", "-c", f"touch {ok}; sleep 0.5; rm {ok}; sleep 30",
    )  # fmt: skip
    assert 143 == result.returncode, result.stderr.decode()
    lines = result.stderr.decode().splitlines()
    actions = [json.loads(line)["Action"] for line in lines if '"Action"' in line]
    assert [
        "create", "start", "health_status: healthy", "health_status: unhealthy",
        "kill", "die", "stop",
    ] == actions  # fmt: skip
    assert any("unhealthy: acting on it" in line for line in lines)


def test_contradicting_health_options_are_refused(backend: str) -> None:
    result = run(backend, "--no-healthcheck", "--health-cmd", "true", "--", "true")
    assert 125 == result.returncode
    assert b"contradict" in result.stderr


def test_pipe_stdin_is_passed_through(backend: str) -> None:
    """stdin that is a pipe reaches the child."""
    result = subprocess.run(
        lifecycle_run(backend, "--", "cat"),
        input=b"hello\n",
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert (0, b"hello\n") == (result.returncode, result.stdout)


def test_terminal_stdin_is_passed_through(backend: str) -> None:
    """stdin that is a terminal reaches the child as a terminal."""
    controller, terminal = pty.openpty()
    try:
        result = subprocess.run(
            lifecycle_run(backend, "--", "sh", "-c", "test -t 0 && echo terminal"),
            stdin=terminal,
            capture_output=True,
            timeout=60,
            check=False,
        )
    finally:
        os.close(terminal)
        os.close(controller)
    assert (0, b"terminal\n") == (result.returncode, result.stdout)


def test_other_stdin_becomes_dev_null(backend: str, tmp_path: Path) -> None:
    """stdin that is neither a terminal nor a pipe (here /dev/null or a file) is not handed on."""
    source = tmp_path / "input"
    source.write_text("secret\n")
    with source.open("rb") as stdin:
        result = subprocess.run(
            lifecycle_run(backend, "--", "cat"),
            stdin=stdin,
            capture_output=True,
            timeout=60,
            check=False,
        )
    assert (0, b"") == (result.returncode, result.stdout)


def test_graph_option_writes_the_final_picture(backend: str, tmp_path: Path) -> None:
    """--graph FILE.svg keeps a live graph; at the end it shows the container stopped."""
    picture = tmp_path / "run.svg"
    result = run(backend, "--graph", str(picture), "--name", "job", "--", "true")
    assert 0 == result.returncode, result.stderr.decode()
    assert "): stopped" in picture.read_text()
