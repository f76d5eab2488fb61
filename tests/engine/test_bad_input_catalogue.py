"""The bad-input catalogue: every entry raises its specific error with a message that names
the problem, changes no state, and starts no process. Public API and CLI."""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import pytest

import lifecycle
from lifecycle import (
    ContainerNotFoundError,
    Engine,
    InvalidArgumentError,
    InvalidNameError,
    InvalidSignalError,
    InvalidTransitionError,
    RestartPolicy,
    StateModel,
    UnknownTriggerError,
)

from ..helpers import run_cli
from ..oshelpers import children_of_this_process

Call = Callable[[Engine, dict[str, Any]], Awaitable[object] | object]

# (id, call, error type, message fragment). `box` holds: "running" (a live
# container named web), "gone" (a removed container), "twins" (two containers).
CATALOGUE: list[tuple[str, Call, type[Exception], str]] = [
    ("empty argv", lambda e, b: e.create([]), InvalidArgumentError, "must not be empty"),
    ("shell string", lambda e, b: e.create("sleep 1"), InvalidArgumentError, "not a single string"),  # type: ignore[arg-type]
    ("int in argv", lambda e, b: e.create(["sleep", 1]), InvalidArgumentError, r"command\[1\]"),  # type: ignore[list-item]
    ("NUL in argv", lambda e, b: e.create(["a\x00b"]), InvalidArgumentError, "NUL byte"),
    ("NUL in env", lambda e, b: e.create(["true"], env={"K": "\x00"}), InvalidArgumentError, "NUL"),
    (
        "surrogate in argv",
        lambda e, b: e.create(["echo", "a\ud800"]),
        InvalidArgumentError,
        r"command\[1\] cannot be encoded",
    ),
    (
        "surrogate in env name",
        lambda e, b: e.create(["true"], env={"K\udfff": "v"}),
        InvalidArgumentError,
        "env name cannot be encoded",
    ),
    (
        "surrogate in env value",
        lambda e, b: e.create(["true"], env={"K": "\ud800"}),
        InvalidArgumentError,
        "env value of K cannot be encoded",
    ),
    (
        "log file in a missing directory",
        lambda e, b: e.create(["true"], log_file="/nonexistent/web.log"),
        InvalidArgumentError,
        "/nonexistent/web.log",
    ),
    ("= in env name", lambda e, b: e.create(["true"], env={"A=B": "1"}), InvalidArgumentError, "="),
    ("bad name", lambda e, b: e.create(["true"], name="no spaces"), InvalidNameError, "must match"),
    (
        "taken name",
        lambda e, b: e.create(["true"], name="web"),
        lifecycle.NameConflictError,
        "in use",
    ),
    (
        "unknown signal",
        lambda e, b: e.create(["true"], stop_signal="SIGNOPE"),
        InvalidSignalError,
        "SIGNOPE",
    ),
    ("signal 0", lambda e, b: b["running"].kill(0), InvalidSignalError, "invalid signal 0"),
    ("SIGSTOP as kill", lambda e, b: b["running"].kill("STOP"), InvalidSignalError, "pause"),
    (
        "negative timeout",
        lambda e, b: b["running"].stop(timeout=-1),
        InvalidArgumentError,
        "zero or more",
    ),
    (
        "NaN timeout",
        lambda e, b: b["running"].stop(timeout=math.nan),
        InvalidArgumentError,
        "zero or more",
    ),
    (
        "NaN stop_timeout",
        lambda e, b: e.create(["true"], stop_timeout=math.nan),
        InvalidArgumentError,
        "stop_timeout",
    ),
    (
        "bad policy",
        lambda e, b: e.create(["true"], restart="sometimes"),
        InvalidArgumentError,
        "accepted: no, on-failure",
    ),
    (
        "negative retries",
        lambda e, b: e.create(["true"], restart="on-failure:-2"),
        InvalidArgumentError,
        "accepted",
    ),
    (
        "retries on always",
        lambda e, b: RestartPolicy("always", max_retries=3),
        InvalidArgumentError,
        "only applies to on-failure",
    ),
    (
        "unknown reference",
        lambda e, b: e.get("nobody"),
        ContainerNotFoundError,
        "no such container: nobody",
    ),
    (
        "ambiguous prefix",
        lambda e, b: e.get(b["shared_prefix"]),
        ContainerNotFoundError,
        "ambiguous",
    ),
    (
        "operation on deleted",
        lambda e, b: b["gone"].start(),
        InvalidTransitionError,
        "container is deleted",
    ),
    ("double remove", lambda e, b: b["gone"].remove(), InvalidTransitionError, "cannot remove"),
    ("remove running", lambda e, b: b["running"].remove(), InvalidTransitionError, "force remove"),
    (
        "unpause running",
        lambda e, b: b["running"].unpause(),
        InvalidTransitionError,
        "cannot unpause",
    ),
    (
        "unknown action",
        lambda e, b: e.subscribe(actions={"explode"}).__aenter__(),
        InvalidArgumentError,
        "explode",
    ),
    (
        "zero buffer",
        lambda e, b: e.subscribe(max_buffer=0).__aenter__(),
        InvalidArgumentError,
        "max_buffer",
    ),
    ("uncallable callback", lambda e, b: e.add_callback(42), InvalidArgumentError, "callable"),  # type: ignore[arg-type]
    (
        "unknown format",
        lambda e, b: lifecycle.render("digraph {}", format="gif"),
        ValueError,
        "unknown output format 'gif'",
    ),
    (
        "unknown trigger",
        lambda e, b: StateModel().apply("explode"),
        UnknownTriggerError,
        "'explode'",
    ),
    ("bad wait condition", lambda e, b: b["running"].wait("later"), InvalidArgumentError, "later"),
    ("negative tail", lambda e, b: b["running"].logs(tail=-1), InvalidArgumentError, "tail"),
    (
        "zero log bytes",
        lambda e, b: e.create(["true"], log_bytes=0),
        InvalidArgumentError,
        "log_bytes",
    ),
    (
        "zero observe_interval",
        lambda e, b: Engine(observe_interval=0),
        InvalidArgumentError,
        "more than zero",
    ),
    (
        "infinite observe_interval",
        lambda e, b: Engine(observe_interval=math.inf),
        InvalidArgumentError,
        "finite",
    ),
    (
        "text observe_interval",
        lambda e, b: Engine(observe_interval="1"),  # type: ignore[arg-type]
        InvalidArgumentError,
        "number of seconds or None",
    ),
    (
        "unknown live format",
        lambda e, b: lifecycle.LiveGraph(e, "x.gif"),
        InvalidArgumentError,
        "cannot tell",
    ),
]


async def _call(call: Call, engine: Engine, box: dict[str, Any]) -> None:
    result = call(engine, box)
    if hasattr(result, "__await__"):
        await result


def process_census() -> dict[int, bool]:
    """Each descendant pid and whether it is a zombie. Not the full /proc state letter: a
    live `sleep` flips between R and S on its own (CI saw R then S), and that is no change."""
    return {pid: state == "Z" for pid, state in children_of_this_process().items()}


def snapshot(engine: Engine) -> list[tuple[object, ...]]:
    return [(c.id, c.name, c.state, c.pid, c.exit_code) for c in engine.containers()]


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("call", "error", "fragment"),
    [entry[1:] for entry in CATALOGUE],
    ids=[entry[0] for entry in CATALOGUE],
)
async def test_bad_input_is_refused_and_changes_nothing(
    call: Call, error: type[Exception], fragment: str
) -> None:
    """The entry raises its error naming the problem; no state changes, no process starts."""
    assert len(CATALOGUE) >= 25
    with anyio.fail_after(10):
        async with Engine() as engine:
            running = await engine.create(["sleep", "60"], name="web")
            await running.start()
            gone = await engine.create(["true"], name="gone")
            await gone.remove()
            twins = [await engine.create(["true"]) for _ in range(40)]
            firsts = [c.id[0] for c in twins]
            box = {
                "running": running,
                "gone": gone,
                "shared_prefix": next(ch for ch in firsts if firsts.count(ch) > 1),
            }
            before, processes = snapshot(engine), process_census()
            with pytest.raises(error, match=fragment):
                await _call(call, engine, box)
            assert before == snapshot(engine)
            assert processes == process_census()


@pytest.mark.parametrize(
    ("arguments", "status", "fragment"),
    [
        (["run", "--stop-timeout", "nan", "--", "true"], 125, "zero or more"),
        (["run", "--restart", "sometimes", "--", "true"], 125, "accepted"),
        (["run", "--env", "=x", "--", "true"], 125, "expected K=V"),
        (["run", "--name", "a b", "--", "true"], 125, "must match"),
        (["run"], 125, "needs a command"),
        (["diagram", "--format", "gif"], 2, "invalid choice"),
        (["diagram", "--highlight", "asleep", "--format", "dot"], 2, "invalid choice"),
        (["bogus-subcommand"], 2, "invalid choice"),
    ],
)
def test_cli_bad_input(arguments: list[str], status: int, fragment: str, tmp_path: Any) -> None:
    """The CLI exits with its documented status and a message naming the problem."""
    result = run_cli(*arguments, cwd=tmp_path)
    assert status == result.returncode
    assert fragment in result.stderr.decode()
    assert [] == list(tmp_path.iterdir())
