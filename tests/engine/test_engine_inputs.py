"""Bad input gets a specific error naming the problem, and changes nothing."""

from __future__ import annotations

import math
import signal
from typing import Any

import anyio
import pytest

from lifecycle import (
    Engine,
    InvalidArgumentError,
    InvalidNameError,
    InvalidSignalError,
    State,
)
from lifecycle.model import parse_signal

pytestmark = pytest.mark.anyio

BAD_CREATE: list[tuple[dict[str, Any], type[Exception], str]] = [
    ({"command": []}, InvalidArgumentError, "must not be empty"),
    ({"command": "sleep 60"}, InvalidArgumentError, "not a single string"),
    ({"command": ["sleep", 60]}, InvalidArgumentError, r"command\[1\] must be a string, not int"),
    ({"command": ["sleep", None]}, InvalidArgumentError, r"command\[1\] must be a string"),
    ({"command": ["sle\x00ep", "1"]}, InvalidArgumentError, r"command\[0\] contains a NUL byte"),
    ({"command": [""]}, InvalidArgumentError, "the executable"),
    ({"command": 42}, InvalidArgumentError, "list of strings, not int"),
    ({"env": {"A": 1}}, InvalidArgumentError, "env entries must be strings"),
    ({"env": {"A=B": "x"}}, InvalidArgumentError, "contain no '='"),
    ({"env": {"A": "x\x00y"}}, InvalidArgumentError, "env value of A contains a NUL byte"),
    ({"env": ["A=B"]}, InvalidArgumentError, "env must be a mapping"),
    ({"labels": ["a=b"]}, InvalidArgumentError, "labels must be a mapping"),
    ({"labels": {"": "x"}}, InvalidArgumentError, "labels must map non-empty strings"),
    ({"labels": {"a": 1}}, InvalidArgumentError, "labels must map non-empty strings"),
    ({"labels": {"a": "x\x00"}}, InvalidArgumentError, "label a contains a NUL byte"),
    ({"cwd": ""}, InvalidArgumentError, "cwd must be a non-empty path"),
    ({"cwd": "/tmp\x00x"}, InvalidArgumentError, "cwd contains a NUL byte"),
    ({"stop_signal": "SIGBOGUS"}, InvalidSignalError, "invalid signal 'SIGBOGUS': no such signal"),
    ({"stop_signal": 999}, InvalidSignalError, "invalid signal 999"),
    ({"stop_signal": 0}, InvalidSignalError, "invalid signal 0"),
    ({"stop_signal": True}, InvalidSignalError, "expected a signal name"),
    ({"stop_signal": "SIGSTOP"}, InvalidSignalError, "use pause"),
    ({"stop_timeout": -1}, InvalidArgumentError, "stop_timeout must be zero or more seconds"),
    ({"stop_timeout": math.nan}, InvalidArgumentError, "stop_timeout must be zero or more"),
    ({"stop_timeout": "10"}, InvalidArgumentError, "stop_timeout must be a number"),
    ({"name": "bad name!"}, InvalidNameError, r"it must match \[a-zA-Z0-9\]\[a-zA-Z0-9_.-\]\*"),
    ({"name": "-leading-dash"}, InvalidNameError, "invalid container name '-leading-dash'"),
    ({"name": ""}, InvalidNameError, "invalid container name ''"),
    ({"name": 5}, InvalidNameError, "invalid container name 5"),
]


@pytest.mark.parametrize(("options", "error", "message"), BAD_CREATE, ids=repr)
async def test_bad_create_input_is_refused_and_creates_nothing(
    options: dict[str, Any], error: type[Exception], message: str
) -> None:
    """Each bad argument raises its specific error (a ValueError) and registers nothing."""
    arguments: dict[str, Any] = {"command": ["sleep", "60"], "name": "web", **options}
    command = arguments.pop("command")
    with anyio.fail_after(10):
        async with Engine() as engine:
            with pytest.raises(error, match=message) as caught:
                await engine.create(command, **arguments)
            assert isinstance(caught.value, ValueError)
            assert [] == engine.containers()
            # The name stays free: nothing was half-registered.
            await engine.create(["true"], name="web")


async def test_bad_operation_input_changes_nothing() -> None:
    """Unknown signals, negative timeouts, unknown wait conditions: the container runs on."""
    with anyio.fail_after(10):
        async with Engine() as engine:
            container = await engine.create(["sleep", "60"])
            await container.start()
            pid = container.pid
            with pytest.raises(InvalidSignalError, match="'SIGNOPE'"):
                await container.kill("SIGNOPE")
            with pytest.raises(InvalidSignalError, match="65"):
                await container.kill(65)
            with pytest.raises(InvalidArgumentError, match="timeout must be zero or more"):
                await container.stop(timeout=-1)
            with pytest.raises(InvalidArgumentError, match="timeout must be zero or more"):
                await container.restart(timeout=-0.5)
            with pytest.raises(InvalidArgumentError, match="unknown wait condition 'gone'"):
                await container.wait("gone")  # type: ignore[arg-type]
            assert (State.RUNNING, pid) == (container.state, container.pid)


def test_bad_engine_environment_is_refused() -> None:
    """Engine(environ=...) checks the environment as create() checks env."""
    with pytest.raises(InvalidArgumentError, match="env entries must be strings"):
        Engine(environ={"A": 1})  # type: ignore[dict-item]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("SIGTERM", signal.SIGTERM),
        ("term", signal.SIGTERM),
        ("sigHup", signal.SIGHUP),
        ("15", signal.SIGTERM),
        (9, signal.SIGKILL),
        (signal.SIGUSR1, signal.SIGUSR1),
        ("RTMIN", signal.SIGRTMIN),
    ],
)
def test_signals_parse_as_docker_parses_them(value: str | int, expected: signal.Signals) -> None:
    """Names with or without SIG in any case, numbers and Signals members are accepted."""
    assert expected == parse_signal(value)


@pytest.mark.parametrize("value", ["SIG_DFL", "SIG", "", "-9", 1.5])
def test_not_signals_are_refused(value: object) -> None:
    """Handler constants, empty strings, negative numbers and floats are not signals."""
    with pytest.raises(InvalidSignalError):
        parse_signal(value)  # type: ignore[arg-type]
