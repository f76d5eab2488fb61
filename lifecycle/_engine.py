"""The engine: creates containers, finds them, and owns their supervision.

``Engine`` is an async context manager that owns a task group. Each running
process has a watcher task in it: the task waits on the process's pidfd,
kills what is left of its group, reaps it, and commits ``die`` if no
operation did. Watchers run shielded -- during a shutdown that was caused
by cancellation they must still see the exits that the shutdown itself
causes -- and are ended explicitly once nothing is left to watch.

Leaving the ``async with`` block, however it is left, stops every running
or paused container concurrently (each with its own stop timeout), waits
for every process to be reaped, and only then closes the task group.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Mapping
from contextlib import AsyncExitStack
from types import TracebackType
from typing import Final, Self, final

import anyio
import anyio.lowlevel
from anyio.abc import TaskGroup

from lifecycle._container import Container
from lifecycle._errors import ContainerNotFoundError, EngineClosedError, NameConflictError
from lifecycle._identity import generate_name, new_id, validate_name
from lifecycle._options import (
    DEFAULT_STOP_TIMEOUT,
    check_command,
    check_cwd,
    check_env,
    check_timeout,
)
from lifecycle._process import SupervisedProcess
from lifecycle._signals import SignalLike, parse_signal
from lifecycle._states import State

__all__ = ["Engine"]

# Docker, Podman, systemd's KillSignal and supervisord's stopsignal all default to SIGTERM.
DEFAULT_STOP_SIGNAL: Final = signal.SIGTERM
# After the shutdown's stops, how long to wait for the last watchers (a
# process stuck in uninterruptible sleep) before ending them anyway.
SHUTDOWN_WATCHER_GRACE: Final = 5.0


@final
class Engine:
    """Runs containers: ``async with Engine() as engine: ...``.

    ``environ`` is the environment containers inherit (default: this
    process's ``os.environ`` at each start); a container's ``env`` is merged
    over it unless it is created with ``inherit_env=False``.

    Cancellation: leaving the block because of a cancellation still stops
    and reaps every container (shielded) before the cancellation propagates.
    """

    def __init__(self, *, environ: Mapping[str, str] | None = None) -> None:
        self._environ = None if environ is None else check_env(environ)
        self._by_id: dict[str, Container] = {}
        self._by_name: dict[str, Container] = {}
        self._task_group: TaskGroup | None = None
        self._exit_stack: AsyncExitStack | None = None
        self._watchers: set[anyio.CancelScope] = set()
        self._watchers_done: anyio.Event | None = None
        self._closing = False
        self._closed = False

    def __repr__(self) -> str:
        status = "closed" if self._closed else "closing" if self._closing else "open"
        if self._task_group is None and not self._closed:
            status = "not started"
        return f"<Engine {status}, {len(self._by_id)} containers>"

    # -- context management ------------------------------------------------

    async def __aenter__(self) -> Self:
        if self._task_group is not None or self._closed:
            raise RuntimeError("an Engine can be entered only once")
        async with AsyncExitStack() as stack:
            self._task_group = await stack.enter_async_context(anyio.create_task_group())
            self._exit_stack = stack.pop_all()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool | None:
        self._closing = True
        stack, self._exit_stack = self._exit_stack, None
        try:
            with anyio.CancelScope(shield=True):
                await self._stop_everything()
        finally:
            self._closed = True
            # Every watcher has ended: the task group closes without the body's
            # exception, which then propagates as it was raised (not wrapped in
            # an ExceptionGroup by a task group the caller never asked for).
            if stack is not None:
                await stack.aclose()
        return None

    async def _stop_everything(self) -> None:
        async with anyio.create_task_group() as group:
            for container in list(self._by_id.values()):
                if container.state in (State.RUNNING, State.PAUSED):
                    group.start_soon(container._stop_for_shutdown)
        # Every stop has reaped its process; give any other watcher a moment,
        # then end the rest (their processes are not ours to wait for any more).
        with anyio.move_on_after(SHUTDOWN_WATCHER_GRACE):
            while self._watchers:
                done = self._watchers_done = anyio.Event()
                await done.wait()
        for scope in list(self._watchers):
            scope.cancel()

    def _check_open(self) -> None:
        if self._task_group is None or self._closing:
            state = "has not been entered" if self._task_group is None else "has shut down"
            raise EngineClosedError(
                f"the engine {state}; use it inside `async with Engine() as engine:`"
            )

    # -- what containers ask of the engine -----------------------------------

    def _environment(self, env: dict[str, str], inherit: bool) -> dict[str, str]:
        if not inherit:
            return dict(env)
        base = os.environ if self._environ is None else self._environ
        return {**base, **env}

    def _supervise(self, container: Container, process: SupervisedProcess) -> None:
        if self._task_group is None:  # pragma: no cover -- operations check _check_open
            raise EngineClosedError("the engine has not been entered")
        scope = anyio.CancelScope(shield=True)
        self._watchers.add(scope)
        self._task_group.start_soon(self._watch, container, process, scope)

    async def _watch(
        self, container: Container, process: SupervisedProcess, scope: anyio.CancelScope
    ) -> None:
        try:
            with scope:
                await process.supervise()
                if process.exited:
                    await container._commit_die()
        finally:
            process.close()
            self._watchers.discard(scope)
            if not self._watchers and self._watchers_done is not None:
                self._watchers_done.set()

    def _forget(self, container: Container) -> None:
        self._by_id.pop(container.id, None)
        if self._by_name.get(container.name) is container:
            del self._by_name[container.name]

    # -- public API ----------------------------------------------------------

    async def create(
        self,
        command: list[str] | tuple[str, ...],
        *,
        name: str | None = None,
        env: Mapping[str, str] | None = None,
        inherit_env: bool = True,
        cwd: str | os.PathLike[str] | None = None,
        stop_signal: SignalLike = DEFAULT_STOP_SIGNAL,
        stop_timeout: float = DEFAULT_STOP_TIMEOUT,
    ) -> Container:
        """Create a container for ``command`` (an argv list; no shell). It starts ``created``.

        Raises ``InvalidArgumentError`` (or its ``InvalidNameError`` /
        ``InvalidSignalError``) for bad input and ``NameConflictError`` for a
        name in use; nothing is created then. Cancellation: if cancelled,
        nothing was created.
        """
        await anyio.lowlevel.checkpoint()
        self._check_open()
        argv = check_command(command)
        checked_env = check_env(env)
        checked_cwd = check_cwd(cwd)
        parsed_stop_signal = parse_signal(stop_signal)
        checked_timeout = check_timeout(stop_timeout, "stop_timeout")
        if name is None:
            name = generate_name(lambda candidate: candidate in self._by_name)
        else:
            name = validate_name(name)
            holder = self._by_name.get(name)
            if holder is not None:
                raise NameConflictError(name, container_id=holder.id)
        container_id = new_id()
        while container_id in self._by_id:  # pragma: no cover -- 2**256 ids
            container_id = new_id()
        container = Container._new(
            engine=self,
            container_id=container_id,
            name=name,
            command=argv,
            env=checked_env,
            inherit_env=bool(inherit_env),
            cwd=checked_cwd,
            stop_signal=parsed_stop_signal,
            stop_timeout=checked_timeout,
        )
        self._by_id[container_id] = container
        self._by_name[name] = container
        return container

    def get(self, reference: str) -> Container:
        """Find a live container by full id, name, or unique id prefix (Docker's order).

        Raises ``ContainerNotFoundError`` saying whether nothing matched or
        the prefix matched several containers.
        """
        if not isinstance(reference, str) or not reference:
            raise ContainerNotFoundError(repr(reference), reason="expected an id, name or prefix")
        found = self._by_id.get(reference) or self._by_name.get(reference)
        if found is not None:
            return found
        matches = [c for cid, c in self._by_id.items() if cid.startswith(reference)]
        if len(matches) == 1:
            return matches[0]
        if matches:
            raise ContainerNotFoundError(
                reference, reason=f"ambiguous: the id prefix matches {len(matches)} containers"
            )
        raise ContainerNotFoundError(reference)

    def containers(self) -> list[Container]:
        """The live (not deleted) containers, oldest first."""
        return list(self._by_id.values())
