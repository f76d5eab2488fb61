"""``lifecycle run``: one command in the foreground as a container (``docker run`` / tini style).

- stdout and stderr pass straight through (the child writes to ours);
  stdin too when it is a terminal or a pipe, else the child gets /dev/null.
- SIGINT or SIGTERM: a graceful stop (stop signal, timeout, SIGKILL); a
  second SIGINT kills at once. SIGHUP, SIGUSR1, SIGUSR2 and SIGWINCH are
  forwarded to the container's process group. The child runs in its own
  session, so a terminal's Ctrl-C reaches us, not it: we decide.
- Exit status: the container's exit code (128+N if signal N killed it);
  127/126 if the command cannot be found/executed; 125 if lifecycle itself
  failed (docker run's convention).
- Nothing is left running when it returns: the engine stops and reaps
  everything on the way out, whatever happened.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import stat
import sys
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Final

import anyio
from anyio.abc import TaskGroup

from lifecycle._errors import EngineClosedError, InvalidTransitionError, SpawnError
from lifecycle.cli._images import default_root
from lifecycle.engine import Container, Engine
from lifecycle.events import Event
from lifecycle.images import ImageStore
from lifecycle.live import LiveGraph
from lifecycle.model import Healthcheck, SignalLike

__all__ = ["EXIT_LIFECYCLE_FAILED", "RunOptions", "docker_event_json", "run_container"]

# docker run: "125 if the error is with Docker daemon itself".
EXIT_LIFECYCLE_FAILED: Final = 125

_STOP_SIGNALS: Final = (signal.SIGINT, signal.SIGTERM)
_FORWARDED: Final = (signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2, signal.SIGWINCH)


@dataclasses.dataclass(frozen=True)
class RunOptions:
    """What ``lifecycle run`` was asked to do, already parsed."""

    command: tuple[str, ...]
    name: str | None = None
    env: dict[str, str] = dataclasses.field(default_factory=dict)
    cwd: str | None = None
    stop_signal: SignalLike = signal.SIGTERM
    stop_timeout: float = 10.0
    graph: Path | None = None
    events: bool = False
    restart: str = "no"
    # A container of an image (its store at ``root``), on the driver ``runtime``.
    image: str | None = None
    runtime: str | None = None
    root: Path | None = None
    # docker run's --health-* options, made into a Healthcheck (None: the image's, if any).
    healthcheck: Healthcheck | None = None
    health_on_failure: str = "none"


def stdin_is_passable() -> bool:
    """Pass stdin through when it is a terminal or a pipe (or socket); else /dev/null."""
    try:
        mode = os.fstat(sys.stdin.fileno()).st_mode
    except (OSError, ValueError, AttributeError):
        return False
    return os.isatty(sys.stdin.fileno()) or stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)


def docker_event_json(event: Event) -> str:
    """One event as Docker's ``docker events --format '{{json .}}'`` writes it."""
    return json.dumps(
        {
            "status": event.action,
            "id": event.container_id,
            "Type": "container",
            "Action": event.action,
            "Actor": {"ID": event.container_id, "Attributes": dict(event.attributes)},
            "scope": "local",
            "time": event.time_ns // 1_000_000_000,
            "timeNano": event.time_ns,
        },
        separators=(",", ":"),
    )


def _print_event(event: Event) -> None:
    print(docker_event_json(event), file=sys.stderr, flush=True)


class _SignalRelay:
    """Turns signals sent to ``lifecycle run`` into operations on its container."""

    def __init__(self, container: Container, task_group: TaskGroup) -> None:
        self._container = container
        self._task_group = task_group
        self._stop_scope: anyio.CancelScope | None = None

    async def _stop(self, scope: anyio.CancelScope) -> None:
        with scope:
            await self._container.stop()

    async def _forward(self, sig: signal.Signals) -> None:
        # Not running (any more): nothing to forward to.
        with contextlib.suppress(InvalidTransitionError, EngineClosedError):
            await self._container.kill(sig)

    async def relay(self, signals: AsyncIterator[signal.Signals]) -> None:
        async for received in signals:
            sig = signal.Signals(received)
            if sig in _STOP_SIGNALS:
                if self._stop_scope is None:
                    self._stop_scope = anyio.CancelScope()
                    self._task_group.start_soon(self._stop, self._stop_scope)
                elif sig is signal.SIGINT:
                    # Second Ctrl-C: cancelling the stop SIGKILLs the group at once.
                    self._stop_scope.cancel()
            else:
                self._task_group.start_soon(self._forward, sig)


async def run_container(options: RunOptions) -> int:
    """Run ``options.command`` as a container in the foreground; return the exit status."""
    with anyio.open_signal_receiver(*_STOP_SIGNALS, *_FORWARDED) as signals:
        store = None
        if options.image is not None:
            store = ImageStore(options.root or default_root())
        async with Engine(store=store) as engine:
            if options.events:
                engine.add_callback(_print_event, lossless=True)
            container = await engine.create(
                list(options.command) or None,
                image=options.image,
                runtime=options.runtime,
                name=options.name,
                env=options.env,
                cwd=options.cwd,
                stop_signal=options.stop_signal,
                stop_timeout=options.stop_timeout,
                # An OCI runtime's container gets /dev/null (docker run without -i).
                interactive=options.image is None and stdin_is_passable(),
                capture_output=False,  # run passes output through, as docker run does
                restart=options.restart,
                healthcheck=options.healthcheck,
                health_on_failure=options.health_on_failure,
            )
            async with AsyncExitStack() as stack:
                if options.graph is not None:
                    await stack.enter_async_context(LiveGraph(container, options.graph))
                try:
                    await container.start()
                except SpawnError as error:
                    print(f"lifecycle: {error.reason}", file=sys.stderr)
                    return error.exit_code
                async with anyio.create_task_group() as group:
                    group.start_soon(_SignalRelay(container, group).relay, signals)
                    code = await container.wait()  # not running, and no restart pending
                    group.cancel_scope.cancel()
    return code
