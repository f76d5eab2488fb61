"""Container handles: one supervised process driven through the transition table.

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
import signal
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Final, Literal, NoReturn, final, overload

import anyio
import anyio.lowlevel

from lifecycle._diagram import lifecycle_graph
from lifecycle._errors import (
    ContainerNotFoundError,
    InvalidArgumentError,
    InvalidTransitionError,
    PauseTimeoutError,
    SpawnError,
)
from lifecycle._identity import SHORT_ID_LENGTH
from lifecycle._logging import get_logger
from lifecycle._logs import LogBuffer, LogLine
from lifecycle._logs import follow as follow_logs
from lifecycle._options import WaitCondition, check_timeout, check_wait_condition
from lifecycle._process import SpawnFailure, SupervisedProcess
from lifecycle._restart import RestartPolicy
from lifecycle._signals import SignalLike, parse_signal
from lifecycle._states import State, StateModel, Transition, Trigger

if TYPE_CHECKING:
    import graphviz

    from lifecycle._engine import Engine

__all__ = ["Container", "LogStatistics"]

# How long pause() waits for every process of the group to show state T.
PAUSE_TIMEOUT: Final = 5.0
# After SIGKILL, how long a cancelled operation waits (shielded) for the exit
# before giving up and letting the cancellation through; the watcher still
# commits the die whenever it comes.
KILL_REAP_TIMEOUT: Final = 5.0

_LIVE: Final = frozenset({State.RUNNING, State.PAUSED})


def _now() -> datetime:
    return datetime.now(UTC)


def _since_ns(since: datetime | float | None) -> int | None:
    if since is None:
        return None
    if isinstance(since, datetime):
        if since.tzinfo is None:
            raise InvalidArgumentError("since must be an aware datetime (with a time zone)")
        return int(since.timestamp() * 1e9)
    if isinstance(since, bool) or not isinstance(since, int | float):
        raise InvalidArgumentError(f"since must be a datetime or Unix seconds, not {since!r}")
    return int(since * 1e9)


@final
@dataclasses.dataclass(frozen=True, slots=True)
class LogStatistics:
    """The kept output of a container, and what fell off the end of its buffer."""

    lines: int
    max_bytes: int
    dropped_lines: int
    dropped_bytes: int


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
            container._engine._check_open()
        # A caller cancelled before it begins gets nothing done, deterministically.
        await anyio.lowlevel.checkpoint_if_cancelled()
        await container._lock.acquire()
        try:
            if not self._internal:
                # Queued before a shutdown began: must not start anything now.
                container._engine._check_open()
            container._reconcile()
        except BaseException:
            container._lock.release()
            raise

    async def __aexit__(self, *exc_info: object) -> None:
        container = self._container
        try:
            # An exit noticed while we held the lock is committed now (see
            # Container._exit_observed): never lost, never out of order.
            container._reconcile()
        finally:
            container._lock.release()


@final
class Container:
    """A handle on one container of an ``Engine``. Made by ``Engine.create``; no public constructor.

    The attributes are read-only views of the container's live state.
    """

    __slots__ = (
        "__weakref__",  # handles may be held weakly (registries, caches, the soak test)
        "_capture",
        "_changed",
        "_cwd",
        "_engine",
        "_env",
        "_exit_count",
        "_inherit_env",
        "_inherit_stdin",
        "_lock",
        "_logs",
        "_manually_stopped",
        "_model",
        "_policy",
        "_process",
        "_restart_delay",
        "_restart_pending",
        "_restart_scope",
        "_started_monotonic",
        "_stop_signal",
        "_stop_timeout",
        "command",
        "error",
        "exit_code",
        "finished_at",
        "id",
        "name",
        "restart_count",
        "started_at",
    )

    _engine: Engine
    _capture: bool
    _logs: LogBuffer
    _manually_stopped: bool
    _policy: RestartPolicy
    _restart_delay: float
    _restart_pending: bool
    _restart_scope: anyio.CancelScope | None
    _started_monotonic: float
    _env: dict[str, str]
    _inherit_env: bool
    _inherit_stdin: bool
    _cwd: str | None
    _stop_signal: signal.Signals
    _stop_timeout: float
    _model: StateModel
    _lock: anyio.Lock
    _changed: anyio.Event | None
    _process: SupervisedProcess | None
    _exit_count: int
    id: str
    name: str
    command: tuple[str, ...]
    exit_code: int | None
    error: str | None
    started_at: datetime | None
    finished_at: datetime | None
    restart_count: int

    def __init__(self) -> None:
        raise TypeError("Container has no public constructor; use Engine.create()")

    @classmethod
    def _new(
        cls,
        *,
        engine: Engine,
        container_id: str,
        name: str,
        command: tuple[str, ...],
        env: dict[str, str],
        inherit_env: bool,
        inherit_stdin: bool,
        cwd: str | None,
        stop_signal: signal.Signals,
        stop_timeout: float,
        restart_policy: RestartPolicy,
        capture_output: bool,
        logs: LogBuffer,
    ) -> Container:
        self = object.__new__(cls)
        self._engine = engine
        self.id = container_id
        self.name = name
        self.command = command
        self._env = env
        self._inherit_env = inherit_env
        self._inherit_stdin = inherit_stdin
        self._cwd = cwd
        self._stop_signal = stop_signal
        self._stop_timeout = stop_timeout
        self._model = StateModel(container_id=container_id, name=name)
        self._lock = anyio.Lock()
        self._changed = None  # created by the first waiter: most containers have none
        self._process = None
        self._exit_count = 0
        self.exit_code = None
        self.error = None
        self.started_at = None
        self.finished_at = None
        self.restart_count = 0
        self._policy = restart_policy
        self._restart_delay = 0.0
        self._restart_pending = False
        self._restart_scope = None
        self._manually_stopped = False
        self._started_monotonic = 0.0
        self._capture = capture_output
        self._logs = logs
        return self

    # -- read-only views -------------------------------------------------

    @property
    def short_id(self) -> str:
        """The first 12 characters of ``id``, as Docker shows it."""
        return self.id[:SHORT_ID_LENGTH]

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
        if self._process is None or self._model.state not in _LIVE:
            return None
        return self._process.pid

    @property
    def stop_signal(self) -> signal.Signals:
        """The signal ``stop()`` sends first (default SIGTERM)."""
        return self._stop_signal

    @property
    def stop_timeout(self) -> float:
        """Seconds ``stop()`` waits before SIGKILL (default 10)."""
        return self._stop_timeout

    @property
    def restarting(self) -> bool:
        """True while a restart by the restart policy is pending (the state is then stopped)."""
        return self._restart_pending

    @property
    def restart_policy(self) -> RestartPolicy:
        """The restart policy (``no`` unless given to ``Engine.create``)."""
        return self._policy

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
        if tail is not None and (isinstance(tail, bool) or not isinstance(tail, int) or tail < 0):
            raise InvalidArgumentError(f"tail must be a whole number >= 0 or None, not {tail!r}")
        since_ns = _since_ns(since)
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
        buffer = self._logs
        return LogStatistics(
            lines=len(buffer),
            max_bytes=buffer.max_bytes,
            dropped_lines=buffer.dropped_lines,
            dropped_bytes=buffer.dropped_bytes,
        )

    def _stopped_for_good(self) -> bool:
        return self._model.state not in _LIVE and not self._restart_pending

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
            title=f"{self.name} ({self.short_id}): {state.value}",
        )

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
        process = self._process
        if process is not None and process.exited and self._model.state in _LIVE:
            self._commit_exit(Trigger.DIE, process)

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
            and self._engine._on_event_loop_thread()
        ):
            self._reconcile_stop_state()

    def _reconcile_stop_state(self) -> bool:
        """Commit running <-> paused when ``/proc`` says the group was stopped or resumed.

        ``paused`` means what ``pause()`` makes true: every process of the group
        is stopped (DESIGN.md, "The supervised process"). So a group stopped by
        anyone is paused, and a paused group that anyone resumed is running.
        Docker differs: it pauses with the cgroup freezer and does not notice a
        SIGSTOP (``docker ps`` still says Up). A group stopped only in part
        stays running. Only call it with the lock held or free (no operation
        in flight) and on the event loop's thread: the process is then
        unreaped for the whole look, so its PID cannot belong to anyone else.
        Returns whether it committed a change.
        """
        process = self._process
        state = self._model.state
        if process is None or state not in _LIVE:
            return False
        stopped = process.group_stopped_now()
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
            self._engine._transitions_taken[transition] += 1

    async def _next_change(self) -> None:
        if self._changed is None:
            self._changed = anyio.Event()
        await self._changed.wait()

    def _notify(self) -> None:
        changed, self._changed = self._changed, None
        if changed is not None:
            changed.set()
        self._logs.wake_followers()

    def _emit(
        self,
        action: str,
        from_state: State,
        to_state: State | None = None,
        attributes: dict[str, str] | None = None,
    ) -> None:
        self._engine._emit(self, action, from_state, to_state, attributes)

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

    def _commit_exit(
        self, trigger: Trigger, process: SupervisedProcess, *, move: bool = True
    ) -> None:
        """Take note of ``process``'s exit: exit code, the ``die`` (and ``stop``) events.

        With ``move`` (always, except in the middle of a restart) the container
        moves to stopped through ``trigger`` (stop, kill or die). A restart
        keeps its state and commits running -> running once the new process runs.
        """
        source = self._model.state
        self.exit_code = process.exit_code
        self.finished_at = _now()
        self._process = None
        self._exit_count += 1
        if move:
            self._apply(trigger)
            self._log_transition(trigger, source, process.pid)
        self._emit("die", source, State.STOPPED, {"exitCode": str(process.exit_code)})
        if trigger is Trigger.STOP:
            self._emit("stop", State.STOPPED)
        if trigger is Trigger.DIE and process.exit_code is not None:
            self._consider_restart(process.exit_code, time.monotonic() - self._started_monotonic)
        self._notify()

    # -- the restart policy -------------------------------------------------

    def _consider_restart(self, exit_code: int, ran_for: float) -> None:
        """After an exit nobody asked for: schedule a restart if the policy says so."""
        if self._manually_stopped or self._engine._closing:
            return
        if not self._policy.should_restart(exit_code, self.restart_count):
            return
        self._restart_delay = self._policy.next_delay(self._restart_delay, ran_for)
        self._restart_pending = True
        self._engine._schedule(self._restart_after, self._restart_delay)

    async def _restart_after(self, delay: float) -> None:
        scope = self._restart_scope = anyio.CancelScope()
        with scope:
            await anyio.sleep(delay)
            with self._engine._start_in_flight():
                await self._restart_by_policy()

    async def _restart_by_policy(self) -> None:
        async with self._operation(internal=True):
            if not self._restart_pending or self._engine._closing:
                return
            self._restart_pending = False
            self._restart_scope = None
            try:
                process = await self._spawn()
            except SpawnError:
                # Counts as another failed run (exit code 127/126 recorded).
                self._consider_restart(self.exit_code or 0, 0.0)
                self._notify()
                return
            self.restart_count += 1
            self._commit_spawned(Trigger.START, process, State.STOPPED)

    def _reset_restart_policy(self) -> None:
        """A manual start or restart: the policy's count and backoff start over (moby: a
        new restart manager on every `docker start`)."""
        self._cancel_pending_restart()
        self._manually_stopped = False
        self.restart_count = 0
        self._restart_delay = 0.0

    def _cancel_pending_restart(self) -> None:
        """A manual stop/kill/remove/start: no pending restart survives it."""
        if self._restart_pending:
            self._restart_pending = False
            if self._restart_scope is not None:
                self._restart_scope.cancel()
                self._restart_scope = None
            self._notify()

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

    async def _spawn(self) -> SupervisedProcess:
        """Start the command; on failure record exit code and error and raise SpawnError.

        On the loop's thread (the cheapest way), unless the machine is busy
        and other starts are waiting: then in a worker thread, so their forks
        overlap instead of queueing on the loop (``Engine._spawn_in_thread``).
        Cancellation: the spawn completes.
        """
        engine = self._engine
        try:
            process = await SupervisedProcess.spawn(
                self.command,
                env=engine._environment(self._env, self._inherit_env),
                cwd=self._cwd,
                inherit_stdin=self._inherit_stdin,
                capture_output=self._capture,
                in_thread=engine._spawn_in_thread(),
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
        engine._note_spawn(process.spawn_seconds)
        engine._supervise(self, process)
        return process

    def _commit_spawned(
        self, trigger: Trigger, process: SupervisedProcess, event_from: State
    ) -> None:
        """Commit start or restart for a process that runs; publish ``start``."""
        source = self._model.state
        self._process = process
        self.error = None
        self.started_at = _now()
        self._started_monotonic = time.monotonic()
        self._apply(trigger)
        self._log_transition(trigger, source)
        self._emit("start", event_from, State.RUNNING)
        self._notify()

    async def _terminate(
        self,
        trigger: Trigger,
        first_signal: signal.Signals,
        timeout: float,
        *,
        move: bool = True,
    ) -> None:
        """Signal, wait up to ``timeout``, SIGKILL, wait; commit ``trigger`` once reaped.

        ``move=False`` (restart) records the exit but leaves the state to the
        caller -- unless the wait is interrupted, in which case the container
        moves to stopped all the same, so the state stays true.
        """
        process = self._process
        if process is None:  # pragma: no cover -- callers checked the state
            raise RuntimeError(f"{self!r} has no process to terminate")
        was_paused = self._model.state is State.PAUSED
        killed = False
        completed = False
        try:
            self._send(process, first_signal)
            killed = first_signal is signal.SIGKILL
            if not killed and (was_paused or process.is_stopped_now()):
                # A handled signal stays pending in a stopped process: wake it
                # so it can act (Docker does this for a paused container; we do
                # it too for one that was stopped from outside or by itself).
                process.signal_group(signal.SIGCONT)
            if not killed:
                with anyio.move_on_after(timeout):
                    await process.wait()
                if not process.exited:
                    get_logger().warning(
                        "stop escalated to SIGKILL",
                        container_id=self.short_id,
                        name=self.name,
                        pid=process.pid,
                        signal=first_signal.name,
                        timeout=timeout,
                    )
                    self._send(process, signal.SIGKILL)
                    killed = True
            await process.wait()
            completed = True
        finally:
            if not process.exited:
                # Cancelled (or failed) mid-way: finish the kill so the state stays true.
                with anyio.CancelScope(shield=True):
                    if not killed:
                        self._send(process, signal.SIGKILL)
                    with anyio.move_on_after(KILL_REAP_TIMEOUT):
                        await process.wait()
            if process.exited and self._process is process:
                self._commit_exit(trigger, process, move=move or not completed)

    def _send(self, process: SupervisedProcess, sig: signal.Signals) -> None:
        """Signal the group and publish the kill event (Docker logs it after sending)."""
        process.signal_group(sig)
        self._emit("kill", self._model.state, None, {"signal": str(int(sig))})

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
        with self._engine._start_in_flight():
            async with self._operation():
                if self._check(Trigger.START) is None:
                    return
                self._reset_restart_policy()
                process = await self._spawn()
                self._commit_spawned(Trigger.START, process, self._model.state)

    async def pause(self) -> None:
        """Stop every process of the group (SIGSTOP); return once ``/proc`` shows them stopped.

        Raises ``PauseTimeoutError`` (after resuming it) if the group does not
        stop within 5 s. Cancellation: the group is resumed (SIGCONT) and the
        container stays running.
        """
        async with self._operation():
            self._check(Trigger.PAUSE)
            process = self._process
            if process is None:  # pragma: no cover -- running implies a process
                raise RuntimeError(f"{self!r} is running without a process")
            process.signal_group(signal.SIGSTOP)
            try:
                stopped = await process.wait_group_stopped(PAUSE_TIMEOUT)
            except BaseException:
                process.signal_group(signal.SIGCONT)  # takes effect at once
                raise
            if stopped is None:
                # It exited before it stopped: that exit is what happened.
                await process.wait()
                self._reconcile()
                self._model.check(Trigger.PAUSE)  # raises: container is stopped
            elif not stopped:
                process.signal_group(signal.SIGCONT)
                raise PauseTimeoutError(timeout=PAUSE_TIMEOUT, container_id=self.id, name=self.name)
            else:
                self._commit(Trigger.PAUSE, "pause")

    async def unpause(self) -> None:
        """Resume the group (SIGCONT, which takes effect at once). Cancellation: atomic."""
        async with self._operation():
            self._check(Trigger.UNPAUSE)
            if self._process is not None:
                self._process.signal_group(signal.SIGCONT)
            self._commit(Trigger.UNPAUSE, "unpause")

    async def stop(self, timeout: float | None = None) -> None:
        """Send the stop signal, wait ``timeout`` (default: the container's), then SIGKILL.

        Returns once the process has exited and been reaped (exit code 128+N
        if signal N killed it). A no-op on a created or stopped container.
        ``timeout=0`` kills at once. Cancellation: the group is SIGKILLed at
        once and reaped (shielded), the container is stopped, then the
        cancellation propagates.
        """
        timeout = self._stop_timeout if timeout is None else check_timeout(timeout)
        async with self._operation():
            self._manually_stopped = True
            self._cancel_pending_restart()
            if self._check(Trigger.STOP) is None:
                return
            await self._terminate(Trigger.STOP, self._stop_signal, timeout)

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
            if parsed in (signal.SIGKILL, self._stop_signal):
                # Meant to stop it: the restart policy must not undo that (moby
                # marks the container manually stopped). Other signals (HUP to
                # reload, USR1...) leave the policy alone.
                self._manually_stopped = True
                if self._restart_pending:
                    self._cancel_pending_restart()
                    return
            self._check(Trigger.KILL)
            process = self._process
            if process is None:  # pragma: no cover -- running implies a process
                raise RuntimeError(f"{self!r} is live without a process")
            if parsed is signal.SIGKILL:
                await self._terminate(Trigger.KILL, signal.SIGKILL, 0.0)
                return
            self._send(process, parsed)
            if self._model.state is State.PAUSED:
                process.signal_group(signal.SIGCONT)
                if not process.has_exited_now():
                    self._commit(Trigger.UNPAUSE, "unpause")

    async def restart(self, timeout: float | None = None) -> None:
        """Stop (as ``stop(timeout)``) if live, then start again.

        Raises ``SpawnError`` if the new process cannot start (the container
        is then stopped). Cancellation: during the stop, as ``stop()``; the
        container ends stopped.
        """
        timeout = self._stop_timeout if timeout is None else check_timeout(timeout)
        async with self._operation():
            self._check(Trigger.RESTART)
            self._reset_restart_policy()
            source = self._model.state
            if source in _LIVE:
                # The state stays running/paused while the old process goes, so
                # the committed transition is the table's running -> running.
                await self._terminate(Trigger.STOP, self._stop_signal, timeout, move=False)
            try:
                with self._engine._start_in_flight():
                    process = await self._spawn()
            except SpawnError:
                if self._model.state in _LIVE:  # the old process is gone: say so
                    self._apply(Trigger.STOP)
                    self._log_transition(Trigger.STOP, source)
                    self._notify()
                raise
            self._commit_spawned(
                Trigger.RESTART, process, State.STOPPED if source in _LIVE else source
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
            self._engine._forget(self)
            self._commit(Trigger.REMOVE, "destroy")

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
            while self._model.state in _LIVE or self._restart_pending:
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

    # -- engine shutdown ---------------------------------------------------

    async def _stop_for_shutdown(self) -> None:
        async with self._operation(internal=True):
            self._cancel_pending_restart()
            if self._model.state in _LIVE:
                await self._terminate(Trigger.STOP, self._stop_signal, self._stop_timeout)

    def _exit_observed(self) -> None:
        """The process has exited and been reaped: commit ``die`` unless someone does.

        If an operation holds the lock, it commits the exit itself (stop,
        kill) or reconciles when it releases the lock. Otherwise nobody is
        mid-operation (a released anyio lock has no waiters) and ``die`` is
        committed right here, with no await.
        """
        if not self._lock.locked():
            self._reconcile()
