"""Container handles: one container's process, driven through the transition table.

A ``Container`` owns its state model, its lock, its runtime handle (the
process, as its driver started it) and its logs; it knows its engine only
through the ``EngineContext``. The engine reaches a container through its
public methods and the few functions at the end of this module (shutdown,
the outside-stop observer), never through its private members.

Every operation follows the same three steps (DESIGN.md, "Layers"):

1. take the container's lock (operations on one container run one at a
   time, in call order) and *reconcile*: if the process has exited and been
   reaped but nobody has committed that yet, commit ``die`` first, so every
   operation starts from what the OS says;
2. check the trigger against the table (``InvalidTransitionError`` or a
   Docker no-op, nothing changed) and await the side effect (spawn, signal,
   wait). Before refusing, look whether the group was stopped or resumed
   from outside the engine (commit ``pause`` or ``unpause``) and check
   again: ``unpause`` of a group someone else stopped is accepted. Only
   refusals pay for that look; the side effects already cope with a group
   stopped from outside (``stop`` sends SIGCONT after the stop signal);
3. commit the transition with one synchronous call.

Cancellation follows trio's ``run_process``: an operation whose caller is
cancelled after it has signalled a process finishes the part that keeps the
state true (SIGKILL and reap, shielded), commits it, then lets the
cancellation through. Nothing is ever left half done.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import signal
import tempfile
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Final, Literal, NoReturn, final, overload

import anyio
import anyio.lowlevel
import graphviz

from lifecycle._errors import (
    ContainerNotFoundError,
    InvalidArgumentError,
    InvalidTransitionError,
    LifecycleError,
    PauseTimeoutError,
    SpawnError,
)
from lifecycle._logging import get_logger
from lifecycle._stringid import truncate_id
from lifecycle.engine._context import EngineContext
from lifecycle.engine._health import HealthMonitor
from lifecycle.engine._journaling import RecordKeeper
from lifecycle.engine._restarts import RestartTracker
from lifecycle.engine._termination import terminate
from lifecycle.events import DEFAULT_MAX_BUFFER, Subscription
from lifecycle.graph import lifecycle_graph
from lifecycle.images import Image
from lifecycle.journal import JournalError, JournalRecord
from lifecycle.logs import LogBuffer, LogLine, LogStatistics
from lifecycle.logs import follow as follow_logs
from lifecycle.model import (
    ContainerSpec,
    Health,
    HealthStatus,
    RestartPolicy,
    SignalLike,
    State,
    StateModel,
    Transition,
    Trigger,
    WaitCondition,
    check_since,
    check_timeout,
    check_wait_condition,
    check_whole_number,
    parse_signal,
)
from lifecycle.rootfs import Change
from lifecycle.runtime import RuntimeDriver, RuntimeHandle, SpawnFailure

__all__ = [
    "Container",
    "cancel_pending_restart",
    "committed_state",
    "detach_for_shutdown",
    "exit_observed",
    "flush_record",
    "new_container",
    "observe",
    "release_rootfs",
    "restore_container",
    "start_on_restore",
    "stop_for_shutdown",
]

# How long pause() waits for every process of the container to be stopped.
PAUSE_TIMEOUT: Final = 5.0

_LIVE: Final = frozenset({State.RUNNING, State.PAUSED})


def _now() -> datetime:
    return datetime.now(UTC)


@final
class _Operation:
    """The shared first step of every operation (a class: cheaper than a generator CM)."""

    __slots__ = ("_container", "_internal")

    def __init__(self, container: Container, internal: bool) -> None:
        self._container = container
        self._internal = internal

    async def __aenter__(self) -> None:
        container = self._container
        if not self._internal:
            container._context.check_open()
        # A caller cancelled before it begins gets nothing done, deterministically.
        await anyio.lowlevel.checkpoint_if_cancelled()
        await container._lock.acquire()
        try:
            if not self._internal:
                # Queued before a shutdown began: must not start anything now.
                container._context.check_open()
            container._reconcile()
        except BaseException:
            container._lock.release()
            raise

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object
    ) -> None:
        container = self._container
        try:
            # An exit noticed while we held the lock is committed now (see
            # Container._exit_observed): never lost, never out of order.
            container._reconcile()
        finally:
            container._lock.release()
        keeper = container._keeper
        if keeper is None:
            return
        # What the operation committed is on disk before it returns (Engine(root=...)).
        if self._internal or exc is not None:
            await keeper.flush_in_background()  # nobody to raise to, or an error already
        else:
            await keeper.flush()


@final
class Container:
    """A handle on one container of an ``Engine``. Made by ``Engine.create``; no public constructor.

    The attributes are read-only views of the container's live state.
    """

    __slots__ = (
        "__weakref__",  # handles may be held weakly (registries, caches, the soak test)
        "_changed",
        "_context",
        "_driver",
        "_exit_count",
        "_handle",
        "_health",
        "_image",
        "_keeper",
        "_lock",
        "_logs",
        "_model",
        "_restarts",
        "_spec",
        "created_at",
        "error",
        "exit_code",
        "finished_at",
        "id",
        "name",
        "oom_killed",
        "started_at",
    )

    _context: EngineContext
    _spec: ContainerSpec
    _driver: RuntimeDriver
    _logs: LogBuffer
    _restarts: RestartTracker
    _model: StateModel
    _lock: anyio.Lock
    _changed: anyio.Event | None
    _handle: RuntimeHandle | None
    _image: Image | None
    _exit_count: int
    _health: HealthMonitor | None
    _keeper: RecordKeeper | None
    id: str
    name: str
    exit_code: int | None
    # Docker's State.OOMKilled: the last run was ended by the kernel's OOM killer.
    oom_killed: bool
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    def __init__(self) -> None:
        raise TypeError("Container has no public constructor; use Engine.create()")

    # -- read-only views -------------------------------------------------

    @property
    def short_id(self) -> str:
        """The first 12 characters of ``id``, as Docker shows it."""
        return truncate_id(self.id)

    @property
    def command(self) -> tuple[str, ...]:
        """The argv the process runs (no shell)."""
        return self._spec.command

    @property
    def spec(self) -> ContainerSpec:
        """The checked configuration it was created with (frozen)."""
        return self._spec

    @property
    def labels(self) -> Mapping[str, str]:
        """Docker's labels given to ``create`` (read-only)."""
        return self._spec.labels

    @property
    def image(self) -> Image | None:
        """The image it was created from (None: an argv-only container on the host's files)."""
        return self._image

    @property
    def rootfs(self) -> Path | None:
        """Its copy-on-write root directory while it exists (None without an image)."""
        if self._spec.rootfs is None or self._model.state is State.DELETED:
            return None
        return Path(self._spec.rootfs)

    async def diff(self) -> list[Change]:
        """What it changed in its image's files: Docker's ``docker diff`` (A, C, D).

        Cancellation: the comparison finishes in its worker thread first.
        """
        snapshotter, image = self._context.snapshotter, self._image
        if snapshotter is None or image is None or self._model.state is State.DELETED:
            raise InvalidArgumentError(f"{self!r} has no image filesystem to compare")
        return await anyio.to_thread.run_sync(snapshotter.changes, self.id, image)

    async def commit(self, reference: str) -> Image:
        """A new image: its image's layers plus one layer of what it wrote (``docker commit``).

        The new layer is checked like any import and shares every parent
        layer. Docker pauses a running container while committing; so does
        this (and resumes it). Cancellation: the commit finishes or adds
        nothing, then the cancellation propagates.
        """
        snapshotter, store, image = self._context.snapshotter, self._context.store, self._image
        if snapshotter is None or store is None or image is None:
            raise InvalidArgumentError(f"{self!r} has no image filesystem to commit")
        was_running = self._model.state is State.RUNNING
        if was_running:
            await self.pause()
        try:
            with tempfile.TemporaryDirectory(dir=store.root / ".lifecycle") as scratch:
                layer = Path(scratch) / "layer.tar"

                def write() -> None:
                    with layer.open("wb") as out:
                        snapshotter.write_changes(self.id, image, out)

                with anyio.CancelScope(shield=True):
                    await anyio.to_thread.run_sync(write)
                    committed = await store.add_layer(
                        image, layer, reference, created_by=f"lifecycle commit {self.short_id}"
                    )
        finally:
            if was_running and self._model.state is State.PAUSED:
                await self.unpause()
        return committed

    @property
    def driver(self) -> str:
        """The name of the runtime driver that runs its process (``"native"``)."""
        return self._spec.runtime

    @property
    def state(self) -> State:
        """The current state; it agrees with the OS whenever no operation is in progress.

        Read on the engine's event-loop thread, a running or paused container
        first looks at ``/proc`` (one ``stat`` read): a group stopped from
        outside the engine (SIGSTOP, SIGTSTP, a child that stops itself) is
        committed as ``paused``, a paused one resumed from outside as
        ``running``, each with its event, before the state is returned. From
        another thread it returns the last committed state; the engine looks
        again every ``observe_interval`` seconds.
        """
        self._observe()
        return self._model.state

    @property
    def pid(self) -> int | None:
        """The main process's PID while running or paused, else None."""
        if self._handle is None or self._model.state not in _LIVE:
            return None
        return self._handle.pid

    @property
    def stop_signal(self) -> signal.Signals:
        """The signal ``stop()`` sends first (default SIGTERM)."""
        return self._spec.stop_signal

    @property
    def stop_timeout(self) -> float:
        """Seconds ``stop()`` waits before SIGKILL (default 10)."""
        return self._spec.stop_timeout

    @property
    def restarting(self) -> bool:
        """True while a restart by the restart policy is pending (the state is then stopped)."""
        return self._restarts.pending

    @property
    def restart_policy(self) -> RestartPolicy:
        """The restart policy (``no`` unless given to ``Engine.create``)."""
        return self._spec.restart_policy

    @property
    def restart_count(self) -> int:
        """Restarts by the policy since the last manual start (Docker's ``RestartCount``)."""
        return self._restarts.count

    @overload
    def logs(
        self,
        *,
        stdout: bool = ...,
        stderr: bool = ...,
        tail: int | None = ...,
        since: datetime | float | None = ...,
        follow: Literal[False] = ...,
    ) -> list[LogLine]: ...

    @overload
    def logs(
        self,
        *,
        stdout: bool = ...,
        stderr: bool = ...,
        tail: int | None = ...,
        since: datetime | float | None = ...,
        follow: Literal[True],
    ) -> AsyncIterator[LogLine]: ...

    def logs(
        self,
        *,
        stdout: bool = True,
        stderr: bool = True,
        tail: int | None = None,
        since: datetime | float | None = None,
        follow: bool = False,
    ) -> list[LogLine] | AsyncIterator[LogLine]:
        """The captured output, as ``LogLine``s (Docker's ``docker logs``).

        ``tail`` keeps the last N lines; ``since`` (a datetime or Unix
        seconds) the lines read at or after it. With ``follow=True`` this is
        an async iterator: the kept lines, then new ones as they come, until
        the container stops for good (not live, no restart pending).
        Cancellation (follow): simply stops iterating.
        """
        if tail is not None:
            check_whole_number(tail, "tail", minimum=0, none_ok=True)
        since_ns = check_since(since)
        if follow:
            return follow_logs(
                self._logs,
                stdout=stdout,
                stderr=stderr,
                since_ns=since_ns,
                tail=tail,
                finished=self._stopped_for_good,
            )
        lines, _ = self._logs.select(stdout=stdout, stderr=stderr, since_ns=since_ns, tail=tail)
        return lines

    def log_statistics(self) -> LogStatistics:
        """How much output is kept, and how much fell off the end of the buffer."""
        return self._logs.statistics()

    def _stopped_for_good(self) -> bool:
        return self._model.state not in _LIVE and not self._restarts.pending

    @property
    def last_transition(self) -> Transition:
        """The table row this container last took (``create`` at first)."""
        return self._model.last_transition

    def graph(self) -> graphviz.Digraph:
        """The lifecycle diagram with this container's state and last transition highlighted.

        Built on demand from (state, last transition): O(states + edges).
        Render it with ``lifecycle.render`` or ``render_async``.
        """
        state = self.state
        return lifecycle_graph(
            current=state,
            last=self._model.last_transition,
            title=f"{self.name} ({self.short_id}): {state.value}{self._health_words()}",
        )

    @asynccontextmanager
    async def subscribe(
        self,
        *,
        actions: Iterable[str] | None = None,
        max_buffer: int = DEFAULT_MAX_BUFFER,
        lossless: bool = False,
    ) -> AsyncIterator[Subscription]:
        """This container's events: ``Engine.subscribe(container=self, ...)``, with its rules.

        Cancellation: leaving the block by cancellation unsubscribes.
        """
        self._context.check_open()
        subscription = self._context.bus.open(
            container=self.id, actions=actions, max_buffer=max_buffer, lossless=lossless
        )
        try:
            yield subscription
        finally:
            subscription.close()

    def __repr__(self) -> str:
        detail = self._model.state.value
        if self.pid is not None:
            detail = f"{detail}, pid {self.pid}"
        elif self.exit_code is not None:
            detail = f"{detail}, exit code {self.exit_code}"
        return f"<Container {self.name} ({self.short_id}) {detail}>"

    # -- the steps every operation shares ----------------------------------

    def _operation(self, *, internal: bool = False) -> _Operation:
        """``async with self._operation():`` -- the lock, then reconcile (see the module doc)."""
        return _Operation(self, internal)

    def _reconcile(self) -> None:
        handle = self._handle
        if handle is not None and handle.exited and self._model.state in _LIVE:
            self._commit_exit(Trigger.DIE, handle)

    def _check(self, trigger: Trigger) -> State | None:
        """``StateModel.check``, after a look at ``/proc`` when the table refuses (see above)."""
        try:
            return self._model.check(trigger)
        except InvalidTransitionError:
            if not self._reconcile_stop_state():
                raise
        return self._model.check(trigger)

    def _observe(self) -> None:
        """Reconcile a live container with a stop or resume from outside, if nothing else
        may be moving it (no operation in flight, on the event loop's thread)."""
        if (
            self._model.state in _LIVE
            and not self._lock.locked()
            and self._context.on_event_loop_thread()
        ):
            self._reconcile_stop_state()

    def _reconcile_stop_state(self) -> bool:
        """Commit running <-> paused when the driver says the container was stopped or resumed.

        ``paused`` means what ``pause()`` makes true: every process of the
        container is stopped or frozen (DESIGN.md, "The supervised process").
        So a container stopped (or its cgroup frozen) by anyone is paused, and
        a paused one that anyone resumed is running. Docker differs: it does
        not notice a SIGSTOP (``docker ps`` still says Up). A group stopped only in part
        stays running. Only call it with the lock held or free (no operation
        in flight) and on the event loop's thread: the process is then
        unreaped for the whole look, so its PID cannot belong to anyone else.
        Returns whether it committed a change.
        """
        handle = self._handle
        state = self._model.state
        if handle is None or state not in _LIVE:
            return False
        stopped = handle.frozen_now()
        if stopped is None:  # it exited: its die is being committed
            return False
        if stopped and state is State.RUNNING:
            self._commit(Trigger.PAUSE, "pause", external=True)
            return True
        if not stopped and state is State.PAUSED:
            self._commit(Trigger.UNPAUSE, "unpause", external=True)
            return True
        return False

    def _apply(self, trigger: Trigger) -> None:
        """Move the state model (never a no-op here) and count the edge for the fleet graph."""
        transition = self._model.apply(trigger)
        if transition is not None:
            self._context.record(transition)

    async def _next_change(self) -> None:
        if self._changed is None:
            self._changed = anyio.Event()
        await self._changed.wait()

    def _notify(self) -> None:
        changed, self._changed = self._changed, None
        if changed is not None:
            changed.set()
        self._logs.wake_followers()
        if self._keeper is not None and not self._lock.locked():
            # A change with no operation to flush it (an exit, a health status): written
            # in the background; an operation flushes its own on the way out.
            self._context.spawn(self._keeper.flush_in_background)

    def _journal_record(self) -> JournalRecord:
        """What the journal keeps of this container now (``RecordKeeper``'s snapshot)."""
        handle = self._handle if self._model.state in _LIVE else None
        return JournalRecord(
            id=self.id,
            name=self.name,
            spec=self._spec,
            state=self._model.state,
            created=self.created_at,
            exit_code=self.exit_code,
            started_at=self.started_at,
            finished_at=self.finished_at,
            restart_count=self._restarts.count,
            manually_stopped=self._restarts.manually_stopped,
            health=self.health.status,
            pid=None if handle is None else handle.pid,
            pid_start_time=None if handle is None else handle.start_time,
        )

    def _emit(
        self,
        action: str,
        from_state: State | None,
        to_state: State | None = None,
        attributes: dict[str, str] | None = None,
    ) -> None:
        self._context.publish(self.id, self.name, action, from_state, to_state, attributes)

    def _log_transition(
        self,
        trigger: Trigger,
        source: State | None,
        pid: int | None = None,
        *,
        external: bool = False,
    ) -> None:
        logger = get_logger(logging.INFO)
        if logger is None:
            return
        extra = {"external": True} if external else {}
        logger.info(
            "transition",
            container_id=self.short_id,
            name=self.name,
            trigger=trigger.value,
            from_state=None if source is None else source.value,
            to_state=self._model.state.value,
            pid=self.pid if pid is None else pid,
            exit_code=self.exit_code,
            **extra,
        )

    def _commit_exit(self, trigger: Trigger, handle: RuntimeHandle, *, move: bool = True) -> None:
        """Take note of ``handle``'s exit: exit code, the ``die`` (and ``stop``) events.

        With ``move`` (always, except in the middle of a restart) the container
        moves to stopped through ``trigger`` (stop, kill or die). A restart
        keeps its state and commits running -> running once the new process runs.
        """
        source = self._model.state
        self.exit_code = handle.exit_code
        self.oom_killed = handle.oom_killed
        self.finished_at = _now()
        self._handle = None
        self._exit_count += 1
        if self._health is not None:
            self._health.run_ended()  # a probe in flight is killed with the run
        if move:
            self._apply(trigger)
            self._log_transition(trigger, source, handle.pid)
        self._emit("die", source, State.STOPPED, {"exitCode": str(handle.exit_code)})
        if trigger is Trigger.STOP:
            self._emit("stop", State.STOPPED)
        if trigger is Trigger.DIE and handle.exit_code is not None:
            self._consider_restart(handle.exit_code)
        self._notify()

    # -- health (the schedule: engine/_health.py; the rules: model/_health.py) ----

    @property
    def health(self) -> Health:
        """Docker's ``State.Health``: status starting/healthy/unhealthy (None: no health
        check), the failing streak, and the last 5 probes."""
        return Health(None) if self._health is None else self._health.health

    async def wait_healthy(self, timeout: float | None = None) -> None:
        """Wait until the health check says ``healthy``.

        Raises ``InvalidArgumentError`` if the container has no health check,
        ``TimeoutError`` after ``timeout`` seconds (None: no limit).
        Cancellation: simply stops waiting.
        """
        if self._health is None:
            raise InvalidArgumentError(f"{self!r} has no health check")
        with anyio.fail_after(math.inf if timeout is None else check_timeout(timeout)):
            while self._health.health.status != "healthy":
                await self._next_change()

    def _health_words(self) -> str:
        """The health beside the state, as ``docker ps`` puts it: `` (healthy)``."""
        status = self.health.status
        if status is None or self._model.state is not State.RUNNING:
            return ""
        return f" (health: {status})" if status == "starting" else f" ({status})"

    def _start_health_monitor(self, monitor: HealthMonitor) -> None:
        generation = monitor.run_started()
        handle = self._handle

        async def probe(argv: tuple[str, ...], timeout: float) -> tuple[int, bytes]:
            assert handle is not None  # noqa: S101 -- the run this monitor watches
            return await self._driver.probe(
                handle,
                self._spec,
                argv,
                environment=self._context.environment(self._spec),
                timeout=timeout,
            )

        async def watch() -> None:
            await monitor.watch(
                generation,
                run_probe=probe,
                is_paused=lambda: self._model.state is State.PAUSED,
                changed=self._next_change,
                announce=self._announce_health,
            )

        self._context.spawn(watch)

    def _announce_health(self, status: HealthStatus) -> None:
        """Docker's ``health_status: <status>`` event; on unhealthy, the on-failure action."""
        self._emit(f"health_status: {status}", self._model.state)
        self._notify()
        action = self._spec.health_on_failure
        if status == "unhealthy" and action != "none":
            get_logger().warning(
                "unhealthy: acting on it", container_id=self.short_id, name=self.name, action=action
            )
            self._context.spawn(lambda: self._act_on_unhealthy(action))

    async def _act_on_unhealthy(self, action: str) -> None:
        """Podman's --health-on-failure: kill, restart or stop (each with its own events)."""
        try:
            if action == "kill":
                await self.kill()
            elif action == "stop":
                await self.stop()
            else:
                await self.restart()
        except LifecycleError as error:  # it stopped or went meanwhile: nothing to act on
            get_logger().info("health action not taken", action=action, reason=str(error))

    # -- the restart policy (its state: engine/_restarts.py) ----------------

    def _consider_restart(self, exit_code: int, ran_for: float | None = None) -> None:
        """After an exit nobody asked for: schedule a restart if the policy says so."""
        delay = self._restarts.consider(exit_code, closing=self._context.closing, ran_for=ran_for)
        if delay is not None:
            self._context.schedule(self._restart_after, delay)

    async def _restart_after(self, delay: float) -> None:
        await self._restarts.run_after(delay, self._restart_by_policy)

    async def _restart_by_policy(self) -> None:
        with self._driver.starting():
            async with self._operation(internal=True):
                if self._context.closing or not self._restarts.claim():
                    return
                try:
                    handle = await self._spawn()
                except SpawnError:
                    # Counts as another failed run (exit code 127/126 recorded).
                    self._consider_restart(self.exit_code or 0, 0.0)
                    self._notify()
                    return
                self._restarts.count += 1
                self._commit_spawned(Trigger.START, handle, State.STOPPED)

    def _reset_restart_policy(self) -> None:
        """A manual start or restart: the policy's count and backoff start over."""
        if self._restarts.reset():
            self._notify()

    def _cancel_pending_restart(self) -> None:
        """A manual stop/kill/remove/start: no pending restart survives it."""
        if self._restarts.cancel_pending():
            self._notify()

    # -- committing, spawning, terminating -----------------------------------

    def _commit(self, trigger: Trigger, action: str, *, external: bool = False) -> None:
        """Commit ``trigger`` and publish ``action`` carrying the state change.

        ``external``: the OS moved first (a stop or resume from outside); the
        event carries ``external="true"`` and the log line ``external=True``.
        """
        source = self._model.state
        self._apply(trigger)
        self._log_transition(trigger, source, external=external)
        self._emit(action, source, self._model.state, {"external": "true"} if external else None)
        self._notify()

    async def _spawn(self) -> RuntimeHandle:
        """Start the command; on failure record exit code and error and raise SpawnError.

        Cancellation: the spawn completes (``RuntimeDriver.spawn``).
        """
        try:
            return await self._driver.spawn(
                self._spec,
                environment=self._context.environment(self._spec),
                output=self._logs,
                on_exit=self._exit_observed,
            )
        except SpawnFailure as failure:
            self.exit_code = failure.exit_code
            self.error = failure.reason
            raise SpawnError(
                failure.reason,
                exit_code=failure.exit_code,
                command=self.command,
                container_id=self.id,
                name=self.name,
            ) from None

    def _commit_spawned(self, trigger: Trigger, handle: RuntimeHandle, event_from: State) -> None:
        """Commit start or restart for a process that runs; publish ``start``."""
        source = self._model.state
        self._handle = handle
        self.error = None
        self.started_at = _now()
        self._restarts.note_started()
        self._apply(trigger)
        self._log_transition(trigger, source)
        self._emit("start", event_from, State.RUNNING)
        self._notify()
        if self._health is not None:
            self._start_health_monitor(self._health)

    async def _terminate(
        self,
        trigger: Trigger,
        first_signal: signal.Signals,
        timeout: float,
        *,
        move: bool = True,
    ) -> None:
        """Signal, wait up to ``timeout``, SIGKILL, wait; commit ``trigger`` once it exited.

        ``move=False`` (restart) records the exit but leaves the state to the
        caller -- unless the wait is interrupted, in which case the container
        moves to stopped all the same, so the state stays true.
        """
        handle = self._handle
        if handle is None:  # pragma: no cover -- callers checked the state
            raise RuntimeError(f"{self!r} has no process to terminate")
        completed = False
        try:
            await terminate(
                handle,
                first_signal,
                timeout,
                was_paused=self._model.state is State.PAUSED,
                send=self._send,
                escalating=self._escalating,
            )
            completed = True
        finally:
            if handle.exited and self._handle is handle:
                self._commit_exit(trigger, handle, move=move or not completed)

    def _escalating(
        self, handle: RuntimeHandle, first_signal: signal.Signals, timeout: float
    ) -> None:
        get_logger().warning(
            "stop escalated to SIGKILL",
            container_id=self.short_id,
            name=self.name,
            pid=handle.pid,
            signal=first_signal.name,
            timeout=timeout,
        )

    def _send(self, handle: RuntimeHandle, sig: signal.Signals) -> None:
        """Signal the container and publish the kill event (Docker logs it after sending)."""
        handle.signal(sig)
        self._emit("kill", self._model.state, None, {"signal": str(int(sig))})

    def _live_handle(self) -> RuntimeHandle:
        handle = self._handle
        if handle is None:  # pragma: no cover -- running implies a process
            raise RuntimeError(f"{self!r} is live without a process")
        return handle

    # -- operations ------------------------------------------------------

    async def start(self) -> None:
        """Start the process; return once it runs. A no-op if already running (Docker's 304).

        Raises ``SpawnError`` (exit code 127 or 126, recorded on the
        container, state unchanged) if the command cannot be executed.
        Cancellation: cancelled while waiting for another operation on this
        container, nothing happens; the spawn itself is never interrupted (a
        cancellation that arrives during it is delivered once the container
        runs, at the caller's next checkpoint).
        """
        with self._driver.starting():
            async with self._operation():
                if self._check(Trigger.START) is None:
                    return
                self._reset_restart_policy()
                handle = await self._spawn()
                self._commit_spawned(Trigger.START, handle, self._model.state)

    async def pause(self) -> None:
        """Stop every process of the container; return once that is confirmed.

        How is the driver's: the native one freezes the container's cgroup
        (as root; confirmed ``FROZEN``) or SIGSTOPs its process group
        (confirmed in ``/proc``). Raises ``PauseTimeoutError`` (after resuming
        it) if it does not stop within 5 s. Cancellation: the container is
        resumed and stays running.
        """
        async with self._operation():
            self._check(Trigger.PAUSE)
            handle = self._live_handle()
            stopped = await handle.freeze(PAUSE_TIMEOUT)
            if stopped is None:
                # It exited before it stopped: that exit is what happened.
                await handle.wait()
                self._reconcile()
                self._model.check(Trigger.PAUSE)  # raises: container is stopped
            elif not stopped:
                raise PauseTimeoutError(timeout=PAUSE_TIMEOUT, container_id=self.id, name=self.name)
            else:
                self._commit(Trigger.PAUSE, "pause")

    async def unpause(self) -> None:
        """Resume every process (thawed, or SIGCONT), at once. Cancellation: atomic."""
        async with self._operation():
            self._check(Trigger.UNPAUSE)
            if self._handle is not None:
                await self._handle.thaw()
            self._commit(Trigger.UNPAUSE, "unpause")

    async def stop(self, timeout: float | None = None) -> None:
        """Send the stop signal, wait ``timeout`` (default: the container's), then SIGKILL.

        Returns once the process has exited and been reaped (exit code 128+N
        if signal N killed it). A no-op on a created or stopped container.
        ``timeout=0`` kills at once. Cancellation: the group is SIGKILLed at
        once and reaped (shielded), the container is stopped, then the
        cancellation propagates.
        """
        timeout = self._spec.stop_timeout if timeout is None else check_timeout(timeout)
        async with self._operation():
            self._restarts.manually_stopped = True
            self._cancel_pending_restart()
            if self._check(Trigger.STOP) is None:
                return
            await self._terminate(Trigger.STOP, self._spec.stop_signal, timeout)

    async def kill(self, sig: SignalLike = signal.SIGKILL) -> None:
        """Send ``sig`` (name, number or ``signal.Signals``; default SIGKILL) to the group.

        SIGKILL returns once the container is stopped. Any other signal returns
        once it is sent; the container stops only if the process dies of it.
        On a paused container the signal is followed by SIGCONT, as Docker
        does, so a survivor is running again. Cancellation: a SIGKILL that
        was sent is still waited for (shielded) and committed.
        """
        parsed = parse_signal(sig)
        async with self._operation():
            if parsed in (signal.SIGKILL, self._spec.stop_signal):
                # Meant to stop it: the restart policy must not undo that (moby
                # marks the container manually stopped). Other signals (HUP to
                # reload, USR1...) leave the policy alone.
                self._restarts.manually_stopped = True
                if self._restarts.pending:
                    self._cancel_pending_restart()
                    return
            self._check(Trigger.KILL)
            handle = self._live_handle()
            if parsed is signal.SIGKILL:
                await self._terminate(Trigger.KILL, signal.SIGKILL, 0.0)
                return
            self._send(handle, parsed)
            if self._model.state is State.PAUSED:
                await handle.thaw()
                if not handle.has_exited_now():
                    self._commit(Trigger.UNPAUSE, "unpause")

    async def restart(self, timeout: float | None = None) -> None:
        """Stop (as ``stop(timeout)``) if live, then start again.

        Raises ``SpawnError`` if the new process cannot start (the container
        is then stopped). Cancellation: during the stop, as ``stop()``; the
        container ends stopped.
        """
        timeout = self._spec.stop_timeout if timeout is None else check_timeout(timeout)
        async with self._operation():
            self._check(Trigger.RESTART)
            self._reset_restart_policy()
            source = self._model.state
            if source in _LIVE:
                # The state stays running/paused while the old process goes, so
                # the committed transition is the table's running -> running.
                await self._terminate(Trigger.STOP, self._spec.stop_signal, timeout, move=False)
            try:
                with self._driver.starting():
                    handle = await self._spawn()
            except SpawnError:
                if self._model.state in _LIVE:  # the old process is gone: say so
                    self._apply(Trigger.STOP)
                    self._log_transition(Trigger.STOP, source)
                    self._notify()
                raise
            self._commit_spawned(
                Trigger.RESTART, handle, State.STOPPED if source in _LIVE else source
            )
            self._emit("restart", State.RUNNING)

    async def remove(self, *, force: bool = False) -> None:
        """Delete the container; the engine forgets it and its name is free again.

        A running or paused container needs ``force=True``, which SIGKILLs
        and reaps it first. Cancellation: as ``kill()``; a container that was
        killed stays stopped (not deleted).
        """
        async with self._operation():
            self._cancel_pending_restart()
            if force and self._model.state in _LIVE:
                await self._terminate(Trigger.KILL, signal.SIGKILL, 0.0)
            self._check(Trigger.REMOVE)
            self._context.forget(self.id)
            self._commit(Trigger.REMOVE, "destroy")
            if self._keeper is not None:
                # Before the root filesystem goes: a crash between the two leaves a
                # filesystem no record keeps, which the next engine sweeps; never a
                # record whose filesystem is half gone.
                keeper, self._keeper = self._keeper, None
                await keeper.remove(self.id)
        await release_rootfs(self)

    async def wait(self, condition: WaitCondition = "not-running") -> int:
        """Wait for a condition (Docker's ``docker wait``); return the last exit code.

        - ``"not-running"``: until the container is not running or paused
          (at once if it is created or stopped);
        - ``"next-exit"``: until the process next exits;
        - ``"removed"``: until the container is removed.

        Returns the exit code of the last exit (0 if it never ran). Raises
        ``ContainerNotFoundError`` for ``"next-exit"`` on a removed container.
        Cancellation: simply stops waiting.
        """
        condition = check_wait_condition(condition)
        if condition == "not-running":
            while self._model.state in _LIVE or self._restarts.pending:
                await self._next_change()
        elif condition == "removed":
            while self._model.state is not State.DELETED:
                await self._next_change()
        else:
            exits = self._exit_count
            while self._exit_count == exits:
                if self._model.state is State.DELETED:
                    self._gone()
                await self._next_change()
        await anyio.lowlevel.checkpoint()
        return 0 if self.exit_code is None else self.exit_code

    def _gone(self) -> NoReturn:
        raise ContainerNotFoundError(self.name, reason="it was removed")

    def _exit_observed(self) -> None:
        """The driver completed the exit: commit ``die`` unless someone does.

        If an operation holds the lock, it commits the exit itself (stop,
        kill) or reconciles when it releases the lock. Otherwise nobody is
        mid-operation (a released anyio lock has no waiters) and ``die`` is
        committed right here, with no await.
        """
        if not self._lock.locked():
            self._reconcile()


# -- what the engine does with its containers (this module's friends) ---------


def new_container(
    context: EngineContext,
    spec: ContainerSpec,
    *,
    container_id: str,
    name: str,
    logs: LogBuffer,
    image: Image | None = None,
    created_at: datetime | None = None,
    written: JournalRecord | None = None,
) -> Container:
    """Make a container and commit its ``create`` (log line and event).

    ``written``: its record, already in the engine's journal (``Engine.create``
    writes it first, so a container exists only once its record does).
    """
    self = _new_handle(context, spec, container_id, name, logs, image, created_at, written)
    context.record(self._model.last_transition)
    self._log_transition(Trigger.CREATE, None)
    self._emit("create", None, State.CREATED)
    return self


def _new_handle(  # noqa: PLR0917 -- every field a container starts with
    context: EngineContext,
    spec: ContainerSpec,
    container_id: str,
    name: str,
    logs: LogBuffer,
    image: Image | None,
    created_at: datetime | None,
    written: JournalRecord | None,
) -> Container:
    self = object.__new__(Container)
    self._image = image
    self._context = context
    self._spec = spec
    self._driver = context.driver(spec.runtime)
    self.id = container_id
    self.name = name
    self._model = StateModel(container_id=container_id, name=name)
    self._lock = anyio.Lock()
    self._changed = None  # created by the first waiter: most containers have none
    self._handle = None
    self._exit_count = 0
    self.exit_code = None
    self.oom_killed = False
    self.error = None
    self.started_at = None
    self.finished_at = None
    self._restarts = RestartTracker(spec.restart_policy)
    self._logs = logs
    check = spec.healthcheck
    self._health = None if check is None or check.disabled else HealthMonitor(check)
    self.created_at = _now() if created_at is None else created_at
    journal = context.journal
    self._keeper = None if journal is None else RecordKeeper(journal, self._journal_record, written)
    return self


def restore_container(
    context: EngineContext,
    record: JournalRecord,
    *,
    logs: LogBuffer,
    image: Image | None,
    exit_code: int | None,
    adopted: RuntimeHandle | None = None,
) -> Container:
    """A container of the journal, back as ``created`` or ``stopped`` (no event: Docker's
    restore publishes none). ``exit_code``: the one it comes back with (the record's,
    255 for a run the engine never saw end, or what the driver kept of it).

    ``adopted`` (``live_restore``): its run, still going; it comes back running, or
    paused if it is frozen, and an exit the driver reported meanwhile is committed now.
    """
    self = _new_handle(
        context, record.spec, record.id, record.name, logs, image, record.created, record
    )
    if record.state is not State.CREATED:
        # The table's own path, so the model's last transition is a real row.
        self._model.apply(Trigger.START)
        if adopted is None:
            self._model.apply(Trigger.DIE)
        elif adopted.frozen_now():
            self._model.apply(Trigger.PAUSE)
    self.exit_code = exit_code
    self.started_at = record.started_at
    # A run nobody saw end ended, as far as anyone can say, when this engine learned of it
    # (the record's finished_at, if any, is an earlier run's).
    live = record.state in _LIVE and adopted is None
    self.finished_at = _now() if live else record.finished_at
    self._restarts.count = record.restart_count
    self._restarts.manually_stopped = record.manually_stopped
    if adopted is not None:
        self._handle = adopted
        if self._health is not None:
            self._start_health_monitor(self._health)
        self._reconcile()  # it may have exited while the engine looked
    return self


def exit_observed(container: Container) -> None:
    """An adopted run's exit, reported by its driver (``RuntimeDriver.adopt``'s on_exit)."""
    container._exit_observed()


async def detach_for_shutdown(container: Container) -> bool:
    """Shutdown with ``live_restore``: leave a live container running for the next engine
    (``RuntimeDriver.detach``); False if its driver cannot, and it is to be stopped."""
    async with container._operation(internal=True):
        container._cancel_pending_restart()
        handle = container._handle
        if handle is None or container._model.state not in _LIVE:
            return False
        if not container._driver.detach(handle):
            return False
        if container._health is not None:
            container._health.run_ended()
        get_logger().info(
            "left running for the next engine",
            container_id=container.short_id,
            name=container.name,
            pid=handle.pid,
        )
        return True


async def flush_record(container: Container) -> None:
    """Shutdown: its last state on disk (a failure is logged: nobody to raise to)."""
    if container._keeper is not None:
        await container._keeper.flush_in_background()


async def start_on_restore(container: Container) -> None:
    """Restore: a start by the restart policy (``RestartPolicy.restarts_on_restore``).

    As moby, a start like ``docker start``: the restart count starts over. A start
    that fails is recorded (exit code 127/126) and logged, not raised.
    """
    try:
        await container.start()
    except (SpawnError, JournalError) as error:
        get_logger().error(
            "restart on restore failed", container_id=container.short_id, reason=str(error)
        )


def committed_state(container: Container) -> State:
    """Its state as last committed (no look at the OS: ``Engine.graph``)."""
    return container._model.state


def is_live(container: Container) -> bool:
    """Running or paused, as last committed (no look at the OS)."""
    return container._model.state in _LIVE


def observe(container: Container) -> None:
    """The engine's periodic look for a stop or resume from outside (``Container.state``)."""
    container._observe()


def cancel_pending_restart(container: Container) -> None:
    """Shutdown: no restart by policy may begin any more."""
    container._cancel_pending_restart()


async def stop_for_shutdown(container: Container) -> None:
    """Shutdown: stop a live container with its own stop signal and timeout (shielded caller)."""
    async with container._operation(internal=True):
        container._cancel_pending_restart()
        if container._model.state in _LIVE:
            await container._terminate(
                Trigger.STOP, container._spec.stop_signal, container._spec.stop_timeout
            )


async def release_rootfs(
    container: Container, *, keep: bool = False, mounted: bool = False
) -> None:
    """Unmount and delete its root filesystem and let go of its image (removal, shutdown).

    ``keep`` (shutdown with a journal): unmount it but keep its files for the engine
    that restores it; ``mounted`` too: leave it mounted (a container left running
    uses it: ``live_restore``). Shielded: once begun, it completes. A busy mount is
    detached (the kernel frees it with its last user), so no mount is left.
    """
    snapshotter, store, image = (
        container._context.snapshotter,
        container._context.store,
        container._image,
    )
    if snapshotter is None or image is None or container._spec.rootfs is None:
        return
    with anyio.CancelScope(shield=True):
        if keep:
            await anyio.to_thread.run_sync(
                lambda: snapshotter.detach(container.id, keep_mounted=mounted)
            )
        else:
            await anyio.to_thread.run_sync(snapshotter.remove, container.id)
    if store is not None:
        store.release(image.id, container.id)
    if not keep:
        container._spec = dataclasses.replace(container._spec, rootfs=None)
