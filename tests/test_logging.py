"""One structured log line per transition; a warning on escalation; never stdout by default."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
from pathlib import Path

import anyio
import pytest
import structlog
from structlog.testing import capture_logs

from lifecycle import Engine, configure_logging

from .oshelpers import term_ignoring, wait_for_file

TRANSITION_KEYS = {"container_id", "name", "trigger", "from_state", "to_state", "pid", "exit_code"}


@pytest.mark.anyio
async def test_full_lifecycle_is_logged_one_line_per_transition(tmp_path: Path) -> None:
    """create..remove: one 'transition' line each, every field, and the escalation warning."""
    ready = tmp_path / "ready"
    with anyio.fail_after(10), capture_logs() as logs:
        async with Engine() as engine:
            container = await engine.create(term_ignoring(ready), name="web", stop_timeout=0.2)
            await container.start()
            await wait_for_file(ready)
            pid = container.pid
            await container.pause()
            await container.unpause()
            await container.stop()
            await container.remove()
    transitions = [entry for entry in logs if entry["event"] == "transition"]
    assert [
        ("create", None, "created", None, None),
        ("start", "created", "running", pid, None),
        ("pause", "running", "paused", pid, None),
        ("unpause", "paused", "running", pid, None),
        ("stop", "running", "stopped", pid, 137),
        ("remove", "stopped", "deleted", None, 137),
    ] == [
        (e["trigger"], e["from_state"], e["to_state"], e["pid"], e["exit_code"])
        for e in transitions
    ]
    for entry in transitions:
        assert TRANSITION_KEYS | {"event", "log_level"} == set(entry)
        assert "info" == entry["log_level"]
        assert (container.short_id, "web") == (entry["container_id"], entry["name"])
    (warning,) = [entry for entry in logs if entry["log_level"] == "warning"]
    assert "stop escalated to SIGKILL" == warning["event"]
    assert ("SIGTERM", 0.2, pid) == (warning["signal"], warning["timeout"], warning["pid"])


@pytest.mark.anyio
async def test_unconfigured_structlog_routes_through_stdlib_logging(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Without structlog configuration, lines go to the stdlib 'lifecycle' logger as logfmt."""
    assert not structlog.is_configured()
    with caplog.at_level(logging.INFO, logger="lifecycle"), anyio.fail_after(10):
        async with Engine() as engine:
            container = await engine.create(["true"], name="web")
            await container.start()
            await container.wait()
    messages = [record.getMessage() for record in caplog.records if record.name == "lifecycle"]
    assert 3 == len(messages)
    assert messages[0].startswith("event=transition ")
    assert "trigger=create" in messages[0]
    assert "name=web" in messages[0]
    assert "trigger=die" in messages[2]
    assert "exit_code=0" in messages[2]


def test_the_library_never_writes_to_stdout(tmp_path: Path) -> None:
    """A program that uses the engine without configuring logging gets nothing on stdout."""
    ready = tmp_path / "ready"
    program = f"""
import anyio, pathlib, structlog
import lifecycle
assert not structlog.is_configured(), "importing lifecycle configured structlog"

async def main():
    async with lifecycle.Engine() as engine:
        c = await engine.create({term_ignoring(ready)!r}, stop_timeout=0.1)
        await c.start()
        while not pathlib.Path({str(ready)!r}).exists():
            await anyio.sleep(0.01)
        await c.stop()

anyio.run(main)
"""
    result = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, timeout=60, check=False
    )
    assert 0 == result.returncode, result.stderr.decode()
    assert b"" == result.stdout
    # Python's last-resort handler shows warnings on stderr; info lines are dropped.
    assert b"stop escalated to SIGKILL" in result.stderr
    assert b"transition" not in result.stderr


@pytest.mark.anyio
async def test_configure_logging_json_writes_json_lines() -> None:
    """configure_logging(json=True) writes one JSON object per line with the transition fields."""
    stream = io.StringIO()
    configure_logging(json=True, stream=stream)
    with anyio.fail_after(10):
        async with Engine() as engine:
            container = await engine.create(["true"], name="web")
            await container.start()
            await container.wait()
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert ["create", "start", "die"] == [line["trigger"] for line in lines]
    assert all(TRANSITION_KEYS <= set(line) for line in lines)
    assert {"info"} == {line["level"] for line in lines}
    assert all(line["timestamp"].endswith("Z") for line in lines)


def test_configure_logging_console_and_levels() -> None:
    """The console renderer writes readable lines; levels filter; a bad level is refused."""
    stream = io.StringIO()
    configure_logging(json=False, level="WARNING", stream=stream)
    structlog.get_logger("lifecycle").info("hidden")
    structlog.get_logger("lifecycle").warning("shown", name="web")
    text = stream.getvalue()
    assert "hidden" not in text
    assert "shown" in text
    assert "name=web" in text
    with pytest.raises(ValueError, match="unknown log level 'LOUD'"):
        configure_logging(level="LOUD")
