"""The seam between the engine and whatever runs a container's process.

The engine decides *when* (the transition table, locks, restarts, events);
a driver decides *how*: how a process is started, signalled, frozen and
thawed, how its exit is noticed and what its exit code was, where its output
goes. The engine knows drivers only through the two protocols below, so a
second way to run a container (an OCI runtime: a real PID 1 in namespaces,
whose exit status is not ours to ``waitid`` for) is a new driver, not a
change to the engine. containerd draws the same line between its
``TaskService`` and the runtime shims.

Rules every driver keeps (DESIGN.md, "The supervised process"):

- A handle's container is its *main process and everything it started*:
  ``signal`` reaches all of them; when the main process exits, what is left
  is killed before the exit is announced (a container stops when its PID 1
  stops).
- The exit is event driven. The driver calls the ``on_exit`` callback given
  to ``spawn`` exactly once, on the event loop's thread, when the exit is
  complete: ``exit_code`` is set (the shell's convention: 128+N for signal
  N), nothing of the container runs any more, and the output written before
  the exit has reached the sink.
- Nothing is signalled after its exit has been collected (PID reuse).
- Methods that are not ``async`` never block and never yield to the loop.
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Protocol, runtime_checkable

from anyio.abc import TaskGroup

from lifecycle.logs import Stream
from lifecycle.model import ContainerSpec

__all__ = ["OutputSink", "RuntimeDriver", "RuntimeHandle", "SpawnFailure"]


class SpawnFailure(Exception):
    """A driver could not start the process; nothing of it is left running or open.

    ``exit_code`` follows the shell and moby (daemon/start.go): 127 when the
    executable or working directory was not found, 126 when it could not be
    executed, 125 when the engine's side ran out of something (descriptors,
    memory, processes).
    """

    def __init__(self, reason: str, exit_code: int) -> None:
        super().__init__(reason)
        self.reason = reason
        self.exit_code = exit_code


class OutputSink(Protocol):
    """Where a driver delivers what the container writes (the engine's ``LogBuffer``)."""

    def feed(self, stream: Stream, chunk: bytes) -> None:
        """Bytes read from ``stream``, in order, as they come."""

    def finish(self, stream: Stream) -> None:
        """``stream`` reached its end: nothing more will come from it."""


@runtime_checkable
class RuntimeHandle(Protocol):
    """One started process (a container's main process) and what a driver can do to it."""

    @property
    def pid(self) -> int:
        """The main process's PID as this host sees it."""

    @property
    def start_time(self) -> int | None:
        """When the main process started: clock ticks since boot (proc(5), stat field 22).

        With ``pid`` it names the process for good: a journal keeps both, so a
        PID reused by someone else is never taken for the container's. None
        if it could not be read.
        """

    @property
    def exit_code(self) -> int | None:
        """The exit code, once the exit is complete (``exited``); None before."""

    @property
    def exited(self) -> bool:
        """True once the exit is complete (see the module doc); ``on_exit`` has then run."""

    @property
    def oom_killed(self) -> bool:
        """Whether the kernel's OOM killer ended it (a memory limit); read once exited."""

    async def wait(self) -> int:
        """Wait until the exit is complete; return the exit code.

        Cancellation: stops waiting; the process is not affected.
        """

    def signal(self, sig: signal.Signals) -> bool:
        """Send ``sig`` to every process of the container; False if none was there to get it."""

    def has_exited_now(self) -> bool:
        """Whether the main process has exited, whether or not its exit is complete yet."""

    def stopped_now(self) -> bool:
        """Whether the main process cannot run now (stopped or frozen, by anyone)."""

    def frozen_now(self) -> bool | None:
        """Whether every process of the container is stopped or frozen now; None once exited.

        What ``pause`` makes true, so also how the engine notices a container
        that was stopped or resumed from outside. Call it on the event loop's
        thread.
        """

    async def freeze(self, timeout: float) -> bool | None:
        """Stop every process of the container; return once that is confirmed.

        Returns True when frozen; False when it was not frozen within
        ``timeout`` seconds (the driver has thawed it again); None when the
        main process exited first. Cancellation: the container is thawed,
        then the cancellation propagates.
        """

    async def thaw(self) -> None:
        """Let every process of the container run again. Cancellation: it is thawed all the same."""

    def close(self) -> None:
        """Release what the handle holds (idempotent). Does not touch the process."""


@runtime_checkable
class RuntimeDriver(Protocol):
    """A way to run containers. One instance serves one engine."""

    @property
    def name(self) -> str:
        """The name ``Engine.create(runtime=...)`` selects it by (``"native"``)."""

    @property
    def containment(self) -> str:
        """What keeps a container's processes together here, in words (``Engine.statistics()``):
        ``"process group"``, ``"cgroup v1 (freezer, pids)"``, ...."""

    def open(self, task_group: TaskGroup, *, live_restore: bool = False) -> None:
        """Start the driver's own background work in ``task_group`` (at engine entry).

        ``live_restore`` (Docker's ``--live-restore``): start containers so that they
        can outlive the engine (``detach``, ``adopt``); a driver whose containers
        cannot (they are the engine's children) ignores it.
        """

    def check_spec(self, spec: ContainerSpec) -> None:
        """``InvalidArgumentError`` naming the reason if this driver cannot run ``spec`` here
        (checked at create, so nothing is created then)."""

    def starting(self) -> AbstractContextManager[None]:
        """Held by each start from the moment it is asked for until its spawn.

        Tells the driver how many starts are on their way (the native driver
        forks in threads only when several are and the machine is busy).
        """

    async def spawn(
        self,
        spec: ContainerSpec,
        *,
        environment: Mapping[str, str] | None,
        output: OutputSink,
        on_exit: Callable[[], None],
    ) -> RuntimeHandle:
        """Start ``spec``'s command; return once it runs (it has exec'd).

        ``environment`` is the process's complete environment (None: exactly
        this process's own). Its stdout and stderr go to ``output`` when
        ``spec.capture_output``, else to this process's. Raises
        ``SpawnFailure`` if it cannot start. Cancellation: the spawn
        completes and the handle is returned; the caller sees the
        cancellation at its next checkpoint.
        """

    async def probe(
        self,
        handle: RuntimeHandle,
        spec: ContainerSpec,
        argv: Sequence[str],
        *,
        environment: Mapping[str, str] | None,
        timeout: float,
    ) -> tuple[int, bytes]:
        """Run a health probe ``argv`` in ``handle``'s container; (exit code, output).

        Where the container's process would run it: the same environment,
        working directory and root (an OCI runtime: inside its namespaces,
        ``runc exec``). Killed at ``timeout`` seconds, exit code -1. Raises
        ``OSError`` if it cannot be started. Nothing of the probe is left
        running when it returns. Cancellation: the probe is killed, then the
        cancellation propagates.
        """

    async def release_leftovers(
        self, container_id: str, *, pid: int | None, start_time: int | None
    ) -> None:
        """Kill and clean up whatever an engine that died (``kill -9``, a crash) left of
        container ``container_id``: its processes, cgroups, runtime state, bundle.

        Called at restore, before the container comes back stopped. ``pid`` and
        ``start_time`` are its main process's as the journal last knew them
        (None: it was not known to run); a process is killed only if both
        match. Never raises (what cannot be cleaned is logged). Call it shielded.
        """

    def detach(self, handle: RuntimeHandle) -> bool:
        """Engine shutdown with ``live_restore``: let go of the live ``handle`` without
        stopping it, leaving its exit and output for an engine that ``adopt``s it.

        False (nothing done) if its container cannot outlive the engine here; the
        engine then stops it. After True the handle is closed: nothing is called on it.
        """

    async def adopt(
        self,
        container_id: str,
        *,
        pid: int,
        start_time: int | None,
        capture_output: bool,
        output: OutputSink,
        on_exit: Callable[[], None],
    ) -> RuntimeHandle | int | None:
        """Restore with ``live_restore``: take over container ``container_id``'s run that an
        engine left (``detach``, or a crash), as ``spawn`` returns one.

        A handle if its main process still runs and is ``pid`` started at
        ``start_time`` (never a reused pid); its exit code if it ended while no engine
        watched and the driver kept that; None if there is nothing to adopt (then
        ``release_leftovers``). Cancellation: the look completes (shielded).
        """

    async def aclose(self, grace: float) -> None:
        """End the driver's background work, once every container has been stopped.

        Exit handling still in progress gets up to ``grace`` seconds; then
        everything the driver holds is released (output pipes reach their
        end for their readers). Call it shielded.
        """
