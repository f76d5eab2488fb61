"""The engine: creates containers, finds them, and owns their supervision.

``Engine`` is an async context manager that owns a task group. One
dispatcher task watches every process's pidfd and output pipes through one
epoll set (``_multiplex.py``); when a pidfd turns readable, an exit task
kills what is left of the group, reaps the process, waits for its output,
and commits ``die`` if no operation did. Both run shielded -- during a
shutdown that was caused by cancellation they must still see the exits
that the shutdown itself causes -- and are ended explicitly once nothing is
left to watch.

Leaving the ``async with`` block, however it is left, stops every running
or paused container concurrently (each with its own stop timeout), waits
for every process to be reaped, and only then closes the task group.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import threading
from collections import Counter
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Coroutine,
    Iterable,
    Iterator,
    Mapping,
)
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Self, final

import anyio
import anyio.lowlevel
import graphviz
from anyio.abc import TaskGroup

from lifecycle._container import Container
from lifecycle._diagram import lifecycle_graph
from lifecycle._errors import (
    ContainerNotFoundError,
    EngineClosedError,
    InvalidArgumentError,
    NameConflictError,
)
from lifecycle._events import (
    DEFAULT_MAX_BUFFER,
    Event,
    EventBus,
    Subscription,
    deliver_to_callback,
    make_event,
)
from lifecycle._identity import SHORT_ID_LENGTH, generate_name, new_id, validate_name
from lifecycle._logging import get_logger
from lifecycle._logs import DEFAULT_LOG_BYTES, LogBuffer
from lifecycle._multiplex import Multiplexer
from lifecycle._options import (
    DEFAULT_STOP_TIMEOUT,
    check_command,
    check_cwd,
    check_env,
    check_interval,
    check_path,
    check_timeout,
)
from lifecycle._process import SupervisedProcess
from lifecycle._restart import RestartPolicy
from lifecycle._signals import SignalLike, parse_signal
from lifecycle._states import State, Transition, Trigger

__all__ = ["Engine", "EngineStatistics"]

# Docker, Podman, systemd's KillSignal and supervisord's stopsignal all default to SIGTERM.
DEFAULT_STOP_SIGNAL: Final = signal.SIGTERM
# After the shutdown's stops, how long to wait for the last watchers (a
# process stuck in uninterruptible sleep) and for callbacks to take their last
# events, before ending them anyway.
SHUTDOWN_GRACE: Final = 5.0
# How often running and paused containers are compared with /proc for a stop
# or resume sent from outside the engine. A pidfd reports exits only, and
# SIGCHLD (which does report stops) needs the main thread and would take the
# signal from its owner, so the engine looks. Precedent: Kubernetes' PLEG
# relists containers every 1 s for the changes nobody reports to it.
DEFAULT_OBSERVE_INTERVAL: Final = 1.0
# A fork and exec slower than this means a busy machine (about 0.3 ms when
# idle, 2-20 ms beside a CPU-bound process on 2 cores); see _spawn_in_thread.
SLOW_SPAWN: Final = 0.001
# Weight of the latest spawn in the running average of spawn times.
SPAWN_AVERAGE_WEIGHT: Final = 0.25


class _ShieldedTasks:
    """Background tasks that must outlive a cancellation of the engine's caller.

    Each runs in its own shielded cancel scope (so a cancelled shutdown can
    still see exits and deliver the last events) and is ended explicitly:
    ``wait_all`` with a grace period, then ``cancel_all``.
    """

    def __init__(self) -> None:
        self._scopes: set[anyio.CancelScope] = set()
        self._idle: anyio.Event | None = None

    def __len__(self) -> int:
        return len(self._scopes)

    def start(
        self, task_group: TaskGroup, function: Callable[..., Awaitable[object]], *args: object
    ) -> None:
        scope = anyio.CancelScope(shield=True)
        self._scopes.add(scope)
        task_group.start_soon(self._run, scope, function, args)

    async def _run(
        self,
        scope: anyio.CancelScope,
        function: Callable[..., Awaitable[object]],
        args: tuple[object, ...],
    ) -> None:
        try:
            with scope:
                await function(*args)
        finally:
            self._scopes.discard(scope)
            if not self._scopes and self._idle is not None:
                self._idle.set()

    async def wait_all(self, grace: float) -> None:
        with anyio.move_on_after(grace):
            while self._scopes:
                idle = self._idle = anyio.Event()
                await idle.wait()

    def cancel_all(self) -> None:
        for scope in tuple(self._scopes):
            scope.cancel()


@final
@dataclasses.dataclass(frozen=True, slots=True)
class EngineStatistics:
    """A snapshot of an engine (trio's ``statistics()`` convention)."""

    containers: int
    subscribers: int
    events_published: int
    events_dropped: int


@final
class Engine:
    """Runs containers: ``async with Engine() as engine: ...``.

    ``environ`` is the environment containers inherit (default: this
    process's ``os.environ`` at each start); a container's ``env`` is merged
    over it unless it is created with ``inherit_env=False``.

    ``observe_interval`` (seconds, default 1; None: never) is how often the
    engine compares its running and paused containers with ``/proc``, so a
    group stopped or resumed from outside it becomes ``paused`` or
    ``running``, with its event, even when nobody reads ``state``. (Reading
    ``state`` on the event loop's thread looks at once, and so does an
    operation before the table refuses it.)

    Cancellation: leaving the block because of a cancellation still stops
    and reaps every container (shielded) before the cancellation propagates.
    """

    def __init__(
        self,
        *,
        environ: Mapping[str, str] | None = None,
        observe_interval: float | None = DEFAULT_OBSERVE_INTERVAL,
    ) -> None:
        self._environ = None if environ is None else check_env(environ)
        self._observe_interval = check_interval(observe_interval, "observe_interval")
        self._observer = _ShieldedTasks()
        self._loop_thread: int | None = None
        # start/restart calls between their entry and their spawn, and how
        # long recent forks took (an average): see _spawn_in_thread.
        self._starts_in_flight = 0
        self._spawn_seconds = 0.0
        self._by_id: dict[str, Container] = {}
        self._by_name: dict[str, Container] = {}
        self._task_group: TaskGroup | None = None
        self._exit_stack: AsyncExitStack | None = None
        # Exit handling of each process (shielded: a cancelled shutdown must
        # still see the exits it causes), and the one task that watches every
        # pidfd and output pipe.
        self._watchers = _ShieldedTasks()
        self._multiplexer = Multiplexer()
        self._dispatcher = _ShieldedTasks()
        self._deliverers = _ShieldedTasks()
        self._log_writers = _ShieldedTasks()
        self._log_files: list[LogBuffer] = []
        self._bus = EventBus()
        # For the fleet graph: how often each edge was taken, and how many
        # containers were removed (the engine forgets them). O(1) per transition.
        self._transitions_taken: Counter[Transition] = Counter()
        self._removed = 0
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
            self._dispatcher.start(self._task_group, self._multiplexer.run)
            self._loop_thread = threading.get_ident()
            if self._observe_interval is not None:
                self._observer.start(self._task_group, self._observe_periodically)
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
        self._observer.cancel_all()
        for container in self._by_id.values():
            container._cancel_pending_restart()
        async with anyio.create_task_group() as group:
            for container in list(self._by_id.values()):
                if container.state in (State.RUNNING, State.PAUSED):
                    group.start_soon(container._stop_for_shutdown)
        # Every stop has reaped its process; give any other watcher a moment,
        # then end the rest (their processes are not ours to wait for any more).
        await self._watchers.wait_all(SHUTDOWN_GRACE)
        self._watchers.cancel_all()
        self._dispatcher.cancel_all()
        await self._dispatcher.wait_all(SHUTDOWN_GRACE)
        self._multiplexer.close()
        self._log_writers.cancel_all()
        for logs in self._log_files:
            await logs.flush_file()
        # Subscribers get the final events, then their iterations end.
        self._bus.close()
        await self._deliverers.wait_all(SHUTDOWN_GRACE)
        self._deliverers.cancel_all()

    def _check_open(self) -> None:
        if self._task_group is None or self._closing:
            state = "has not been entered" if self._task_group is None else "has shut down"
            raise EngineClosedError(
                f"the engine {state}; use it inside `async with Engine() as engine:`"
            )

    # -- what containers ask of the engine -----------------------------------

    @contextmanager
    def _start_in_flight(self) -> Iterator[None]:
        self._starts_in_flight += 1
        try:
            yield
        finally:
            self._starts_in_flight -= 1

    def _spawn_in_thread(self) -> bool:
        """Whether the next spawn should fork in a worker thread (SupervisedProcess.spawn).

        Only when the machine is busy (recent forks were slow) and other starts
        are waiting. Measured on 2 cores (benchmarks/suite.py): with one
        CPU-bound process beside it, 50 concurrent cycles on trio ran at 0.26x
        raw with every fork on the loop and 1.0x with forks in threads; on an
        idle machine threads gained nothing and stopping a fleet of 1,000
        took 1.4x as long, for reasons not understood yet.
        """
        return self._starts_in_flight > 1 and self._spawn_seconds > SLOW_SPAWN

    def _note_spawn(self, seconds: float) -> None:
        self._spawn_seconds += (seconds - self._spawn_seconds) * SPAWN_AVERAGE_WEIGHT

    def _on_event_loop_thread(self) -> bool:
        return threading.get_ident() == self._loop_thread and not self._closed

    async def _observe_periodically(self) -> None:
        interval = self._observe_interval
        if interval is None:  # pragma: no cover -- not started then
            return
        while True:
            await anyio.sleep(interval)
            for container in list(self._by_id.values()):
                container._observe()

    def _environment(self, env: dict[str, str], inherit: bool) -> dict[str, str] | None:
        """The child's environment; None means exactly ours (no copy: the common case)."""
        if not inherit:
            return dict(env)
        if self._environ is None and not env:
            return None
        base = os.environ if self._environ is None else self._environ
        return {**base, **env}

    def _supervise(self, container: Container, process: SupervisedProcess) -> None:
        pidfd = process.pidfd
        if self._task_group is None or pidfd is None:  # pragma: no cover -- checked by callers
            raise EngineClosedError("the engine has not been entered")
        task_group = self._task_group

        def exited() -> None:
            if not process.has_exited_now():
                return
            self._multiplexer.forget(pidfd)
            if process.try_complete_exit_now():
                process.close()
                container._exit_observed()
            else:  # leftovers to wait for, or output still coming: in a task
                self._watchers.start(task_group, self._complete_exit, container, process)

        self._multiplexer.watch(pidfd, exited)
        if process.output_fds is not None:
            stdout, stderr = process.output_fds
            logs = container._logs
            self._multiplexer.watch_output(stdout, "stdout", logs, process.output_closed)
            self._multiplexer.watch_output(stderr, "stderr", logs, process.output_closed)

    async def _complete_exit(self, container: Container, process: SupervisedProcess) -> None:
        try:
            await process.complete_exit()
            if process.exited:
                container._exit_observed()
        finally:
            process.close()

    def _schedule(
        self, function: Callable[[float], Coroutine[Any, Any, None]], delay: float
    ) -> None:
        """Run ``function(delay)`` in the engine's task group (policy restarts)."""
        if self._task_group is not None and not self._closing:
            self._task_group.start_soon(function, delay)

    def _emit(
        self,
        container: Container,
        action: str,
        from_state: State | None,
        to_state: State | None,
        attributes: dict[str, str] | None = None,
    ) -> None:
        """Publish one event (built only when somebody listens)."""
        self._bus.count()
        if self._bus.active:
            self._bus.publish(
                make_event(
                    action,
                    container_id=container.id,
                    name=container.name,
                    from_state=from_state,
                    to_state=to_state,
                    attributes=attributes,
                )
            )

    def _callback_failed(
        self, callback: Callable[[Event], object], event: Event, error: BaseException
    ) -> None:
        get_logger().error(
            "event callback failed",
            callback=getattr(callback, "__qualname__", repr(callback)),
            action=event.action,
            container_id=event.container_id[:SHORT_ID_LENGTH],
            name=event.name,
            exc_info=error,
        )

    def _forget(self, container: Container) -> None:
        self._removed += 1
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
        interactive: bool = False,
        cwd: str | os.PathLike[str] | None = None,
        stop_signal: SignalLike = DEFAULT_STOP_SIGNAL,
        stop_timeout: float = DEFAULT_STOP_TIMEOUT,
        restart: str | RestartPolicy | None = None,
        capture_output: bool = True,
        log_bytes: int = DEFAULT_LOG_BYTES,
        log_file: str | os.PathLike[str] | None = None,
    ) -> Container:
        """Create a container for ``command`` (an argv list; no shell). It starts ``created``.

        Its stdout and stderr are captured (``container.logs()``; the last
        ``log_bytes`` bytes are kept, 1 MiB by default) and, with ``log_file``,
        appended to that file as JSON lines like Docker's json-file driver.
        ``capture_output=False`` hands it this process's stdout and stderr
        instead. Its stdin is ``/dev/null`` unless ``interactive=True``
        (Docker's ``-i``). ``restart`` is a restart policy: ``"no"``
        (default), ``"on-failure"``, ``"on-failure:N"``, ``"always"``,
        ``"unless-stopped"`` or a ``RestartPolicy``.

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
        policy = RestartPolicy.parse(restart)
        log_path = None if log_file is None else Path(check_path(log_file, "log_file"))
        logs = LogBuffer(log_bytes, log_path)
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
            inherit_stdin=bool(interactive),
            cwd=checked_cwd,
            stop_signal=parsed_stop_signal,
            stop_timeout=checked_timeout,
            restart_policy=policy,
            capture_output=bool(capture_output),
            logs=logs,
        )
        if log_path is not None and self._task_group is not None:
            self._log_writers.start(self._task_group, logs.write_file_forever)
            self._log_files.append(logs)
        self._by_id[container_id] = container
        self._by_name[name] = container
        self._transitions_taken[container.last_transition] += 1
        container._log_transition(Trigger.CREATE, None)
        self._emit(container, "create", None, State.CREATED)
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

    @asynccontextmanager
    async def subscribe(
        self,
        *,
        container: str | Container | None = None,
        actions: Iterable[str] | None = None,
        max_buffer: int = DEFAULT_MAX_BUFFER,
        lossless: bool = False,
    ) -> AsyncIterator[Subscription]:
        """Receive events: ``async with engine.subscribe() as events: async for event in events``.

        ``container`` (a name, id, id prefix or ``Container``) and ``actions``
        filter what arrives; a subscription opened before ``create`` sees the
        ``create``. The buffer holds ``max_buffer`` events; when it is full
        the oldest is dropped and the next event read says how many were lost
        (``Event.dropped``). ``lossless=True`` never drops: the buffer grows
        without bound while the subscriber lags (its memory, its choice); the
        engine never waits for a subscriber either way. Leaving the block
        unsubscribes; engine exit ends the iteration after the last events.
        Cancellation: leaving the block by cancellation unsubscribes.
        """
        self._check_open()
        subscription = self._bus.open(
            container=container, actions=actions, max_buffer=max_buffer, lossless=lossless
        )
        try:
            yield subscription
        finally:
            subscription.close()

    def add_callback(
        self,
        callback: Callable[[Event], object],
        *,
        container: str | Container | None = None,
        actions: Iterable[str] | None = None,
        max_buffer: int = DEFAULT_MAX_BUFFER,
        lossless: bool = False,
    ) -> Callable[[], None]:
        """Call ``callback(event)`` (a plain or an async function) for each matching event.

        Calls happen in order, one at a time, in a task of the engine: never
        inline in an operation, so a slow callback does not slow the engine
        (it lags behind, with the buffer rules of ``subscribe``). A callback
        that raises is logged and keeps receiving. Returns a function that
        unsubscribes. Engine exit delivers the last events, waiting up to 5 s.
        """
        self._check_open()
        if not callable(callback):
            raise InvalidArgumentError(f"callback must be callable, not {callback!r}")
        if self._task_group is None:  # pragma: no cover -- _check_open ensures it
            raise EngineClosedError("the engine has not been entered")
        subscription = self._bus.open(
            container=container, actions=actions, max_buffer=max_buffer, lossless=lossless
        )
        self._deliverers.start(
            self._task_group, deliver_to_callback, subscription, callback, self._callback_failed
        )
        return subscription.close

    def graph(self) -> graphviz.Digraph:
        """The fleet: how many containers sit in each state, how often each edge was taken.

        Built on demand: O(containers + states + edges), nothing paid per transition
        beyond one counter. Removed containers are counted in ``deleted``.
        """
        counts = Counter(container.state for container in self._by_id.values())
        counts[State.DELETED] += self._removed
        total = len(self._by_id) + self._removed
        return lifecycle_graph(
            state_counts=counts,
            edge_counts=self._transitions_taken,
            title=f"fleet: {total} containers",
        )

    def statistics(self) -> EngineStatistics:
        """Containers, subscribers (including callbacks), events published and dropped."""
        events = self._bus.statistics()
        return EngineStatistics(
            containers=len(self._by_id),
            subscribers=events.subscribers,
            events_published=events.events_published,
            events_dropped=events.events_dropped,
        )
