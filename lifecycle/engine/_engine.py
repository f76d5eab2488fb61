"""The engine: creates containers, finds them, and owns their lifetime.

``Engine`` is an async context manager that owns a task group. It holds the
registry of containers, the ``EngineContext`` they share (event bus, fleet
counters, runtime drivers, the environment) and the background tasks of
the engine itself: event deliverers, log-file writers, and the periodic
look for stops from outside. Each runtime driver runs its own supervision
in the same task group (the native driver: one dispatcher for every pidfd
and pipe, shielded exit watchers); the engine knows drivers only through
``lifecycle.runtime``'s protocols.

Leaving the ``async with`` block, however it is left, stops every running
or paused container concurrently (each with its own stop timeout), waits
for every process to be reaped, closes the drivers, and only then closes
the task group.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Final, Self, final

import anyio
import anyio.lowlevel
import graphviz
from anyio.abc import TaskGroup

from lifecycle._errors import EngineClosedError, ImageNotFoundError, InvalidArgumentError
from lifecycle._logging import get_logger
from lifecycle._stringid import new_id, truncate_id
from lifecycle._tasks import ShieldedTasks
from lifecycle.containment import (
    DESCRIPTORS_PER_CONTAINER,
    UNKNOWN_EXIT_CODE,  # a run nobody saw end: moby's 255
    OpenFilesLimit,
    raise_open_files_limit,
)
from lifecycle.engine._container import (
    Container,
    cancel_pending_restart,
    committed_state,
    detach_for_shutdown,
    exit_observed,
    flush_record,
    is_live,
    new_container,
    observe,
    release_rootfs,
    restore_container,
    start_on_restore,
    stop_for_shutdown,
)
from lifecycle.engine._context import EngineContext
from lifecycle.engine._registry import ContainerRegistry
from lifecycle.events import DEFAULT_MAX_BUFFER, Event, Subscription, deliver_to_callback
from lifecycle.images import Image, ImageStore
from lifecycle.journal import Journal, JournalRecord
from lifecycle.logs import LogBuffer, open_log_file, read_log_file
from lifecycle.model import (
    DEFAULT_LOG_BYTES,
    DEFAULT_PATH,
    DEFAULT_RUNTIME,
    DEFAULT_STOP_SIGNAL,
    DEFAULT_STOP_TIMEOUT,
    ContainerSpec,
    Healthcheck,
    RestartPolicy,
    SignalLike,
    State,
    check_env,
    check_interval,
    generate_name,
    validate_name,
)
from lifecycle.rootfs import choose_snapshotter
from lifecycle.runtime import (
    BUILTIN_DRIVERS,
    IMAGE_ONLY_DRIVERS,
    RuntimeDriver,
    RuntimeHandle,
    check_driver_name,
)

__all__ = ["Engine", "EngineStatistics"]

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
# The longest the observer holds the loop before it lets other work run (0.5 ms: well
# under the ~1 ms an idle loop's own wake-up takes, so no operation waits on a scan).
OBSERVE_SLICE: Final = 0.0005


@final
@dataclasses.dataclass(frozen=True, slots=True)
class EngineStatistics:
    """A snapshot of an engine (trio's ``statistics()`` convention)."""

    containers: int
    subscribers: int
    events_published: int
    events_dropped: int
    # How container root filesystems are made: "overlayfs", "vfs", or None (no image store).
    snapshotter: str | None = None
    # What keeps a container's processes together on the default driver (RuntimeDriver.containment).
    containment: str | None = None
    # This process's soft RLIMIT_NOFILE, raised to the hard limit at entry (Go's rule):
    # about (open_files_limit - what the host program holds) / 3 containers can run.
    open_files_limit: int | None = None


def _check_drivers(drivers: Iterable[RuntimeDriver] | None) -> dict[str, RuntimeDriver]:
    chosen: dict[str, RuntimeDriver] = {}
    for driver in drivers or ():
        if not isinstance(driver, RuntimeDriver):
            raise InvalidArgumentError(f"drivers must be RuntimeDrivers, not {driver!r}")
        if driver.name in chosen:
            raise InvalidArgumentError(f"two drivers are called {driver.name!r}")
        chosen[driver.name] = driver
    return chosen


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

    ``runtime`` names the driver containers run on unless ``create`` says
    otherwise (``"native"``: a process group of this process).
    ``drivers`` adds driver instances of your own (``lifecycle.runtime``'s
    ``RuntimeDriver`` protocol), each selectable by its ``name``.

    ``root`` (a directory) keeps the image store there and a journal of every
    container (``root/containers/<id>.json``, written at each committed
    transition before the operation returns; ``JournalError`` if it cannot
    be): entering an engine on that root restores them -- created and stopped
    ones as they were, running ones stopped with exit code 255 after what is
    left of them is killed, then Docker's restart rules on restore (README,
    "Restore"). One engine per root (``JournalError`` for a second).

    ``live_restore`` (Docker's ``--live-restore``; needs ``root``): containers of a
    driver that can (an OCI runtime's, each under a monitor process) keep running
    when the engine ends or dies, and the next engine on the root adopts them, their
    PID 1 checked by pidfd and start time. A native container is stopped as ever.

    Cancellation: leaving the block because of a cancellation still stops
    and reaps every container (shielded) before the cancellation propagates.
    Entering is not interrupted by a cancellation while it restores.
    """

    def __init__(
        self,
        *,
        environ: Mapping[str, str] | None = None,
        observe_interval: float | None = DEFAULT_OBSERVE_INTERVAL,
        runtime: str = DEFAULT_RUNTIME,
        drivers: Iterable[RuntimeDriver] | None = None,
        store: ImageStore | None = None,
        root: str | os.PathLike[str] | None = None,
        snapshotter: str | None = None,
        live_restore: bool = False,
    ) -> None:
        if not isinstance(live_restore, bool):
            raise InvalidArgumentError(f"live_restore must be True or False, not {live_restore!r}")
        if live_restore and root is None:
            raise InvalidArgumentError(
                "live_restore needs root=DIR: the journal is how the next engine finds "
                "the containers it left running"
            )
        checked_environ = None if environ is None else check_env(environ)
        if store is not None and not isinstance(store, ImageStore):
            raise InvalidArgumentError(f"store must be an ImageStore, not {store!r}")
        if store is None and root is not None:
            store = ImageStore(root)
        # With a root, each container's record is kept on disk and restored at entry.
        journal = None if root is None else Journal(root)
        if snapshotter not in (None, "overlayfs", "vfs"):
            raise InvalidArgumentError(
                f"unknown snapshotter {snapshotter!r} (expected overlayfs, vfs or None: the best)"
            )
        snapshots = (
            None
            if store is None
            else choose_snapshotter(
                store.root / "snapshots",
                store,
                snapshotter,
                keep=frozenset() if journal is None else journal.ids(),
            )
        )
        self._observe_interval = check_interval(observe_interval, "observe_interval")
        given = _check_drivers(drivers)
        runtimes = tuple(dict.fromkeys([*BUILTIN_DRIVERS, *given]))
        self._registry: ContainerRegistry[Container] = ContainerRegistry()
        self._context = EngineContext(
            environ=checked_environ,
            runtimes=runtimes,
            default_runtime=check_driver_name(runtime, runtimes),
            drivers=given,
            forget=self._registry.remove,
            store=store,
            snapshotter=snapshots,
            journal=journal,
            live_restore=live_restore,
        )
        self._observer = ShieldedTasks()
        self._task_group: TaskGroup | None = None
        self._exit_stack: AsyncExitStack | None = None
        self._deliverers = ShieldedTasks()
        self._log_writers = ShieldedTasks()
        self._log_files: list[LogBuffer] = []
        self._open_files: OpenFilesLimit | None = None

    def __repr__(self) -> str:
        context = self._context
        status = "closed" if context.closed else "closing" if context.closing else "open"
        if self._task_group is None and not context.closed:
            status = "not started"
        return f"<Engine {status}, {len(self._registry)} containers>"

    # -- context management ------------------------------------------------

    async def __aenter__(self) -> Self:
        if self._task_group is not None or self._context.closed:
            raise RuntimeError("an Engine can be entered only once")
        journal = self._context.journal
        if journal is not None:
            journal.lock()  # before anything runs: a refused engine started nothing
        async with AsyncExitStack() as stack:
            if journal is not None:
                stack.callback(journal.unlock)
            self._task_group = await stack.enter_async_context(anyio.create_task_group())
            self._open_files = raise_open_files_limit()
            if self._open_files.raised:
                get_logger().info(
                    "raised the open files limit",
                    soft_before=self._open_files.before,
                    soft=self._open_files.soft,
                    containers_about=self._open_files.soft // DESCRIPTORS_PER_CONTAINER,
                )
            self._context.enter(self._task_group)
            # The default driver is ready before the first create (its
            # supervision runs from the start, as it always has).
            self._context.driver(self._context.default_runtime)
            if journal is not None:
                try:
                    with anyio.CancelScope(shield=True):
                        await self._restore(journal)
                except BaseException:
                    # What was restored is shut down as at exit, then the error propagates.
                    self._context.closing = True
                    with anyio.CancelScope(shield=True):
                        await self._stop_everything()
                    self._context.closed = True
                    raise
            if self._observe_interval is not None:
                self._observer.start(self._task_group, self._observe_periodically)
            self._exit_stack = stack.pop_all()
        return self

    async def _restore(self, journal: Journal) -> None:
        """Bring back the journal's containers (moby ``daemon.restore``), then start those
        their restart policy starts on restore (``RestartPolicy.restarts_on_restore``).

        A container that was running or paused comes back stopped: whatever is left of
        its run (an engine that died leaves its processes, an OCI runtime's container)
        is killed first, and a run nobody saw end gets exit code 255. With
        ``live_restore`` a run its driver kept is adopted instead (it comes back
        running, or paused), or, if it ended meanwhile, comes back stopped with the
        exit code the driver kept. Every other container, whatever its state, has its
        leftovers released: the engine may have died between a spawn and the record.
        """
        records, broken = await anyio.to_thread.run_sync(journal.read_each)
        for error in broken:
            get_logger().error("container not restored", path=error.path, problem=error.problem)
        to_start: list[Container] = []
        for record in records:
            container = await self._restore_one(record)
            if container is None or is_live(container):  # not restored, or adopted
                continue
            policy = container.restart_policy
            ran = None if record.started_at is None else container.exit_code
            if policy.restarts_on_restore(
                ran, record.restart_count, manually_stopped=record.manually_stopped
            ):
                to_start.append(container)
            await flush_record(container)  # a run that ended unseen: stopped, 255, on disk
        async with anyio.create_task_group() as group:
            for container in to_start:
                group.start_soon(start_on_restore, container)

    async def _restore_one(self, record: JournalRecord) -> Container | None:
        context = self._context
        spec = record.spec
        try:
            context.check_runtime(spec.runtime)
            driver = context.driver(spec.runtime)
        except InvalidArgumentError as error:
            get_logger().error("container not restored", container_id=record.id, reason=str(error))
            return None
        log_path = None if spec.log_file is None else Path(spec.log_file)
        logs = LogBuffer(spec.log_bytes, log_path)
        if log_path is not None:
            logs.preload(await anyio.to_thread.run_sync(read_log_file, log_path, spec.log_bytes))
        was_live = record.state in (State.RUNNING, State.PAUSED)
        found = await self._adopt(driver, record, logs) if was_live else None
        adopted = found if isinstance(found, RuntimeHandle) else None
        if adopted is None:
            await driver.release_leftovers(
                record.id, pid=record.pid, start_time=record.pid_start_time
            )
        image = None
        if spec.image is not None:
            attached = await self._attach_rootfs(record)
            if attached is None:
                if adopted is not None:  # nothing to run it as: what was adopted ends
                    await _end_adopted(driver, adopted, record)
                return None
            image, record = attached
        if adopted is not None:
            exit_code = record.exit_code
            get_logger().info(
                "restored running: it kept running while no engine watched",
                container_id=truncate_id(record.id),
                name=record.name,
                pid=adopted.pid,
            )
        elif isinstance(found, int):
            exit_code = found
            get_logger().warning(
                "restored stopped: its run ended while no engine watched",
                container_id=truncate_id(record.id),
                name=record.name,
                exit_code=found,
            )
        elif was_live:
            exit_code = UNKNOWN_EXIT_CODE
            get_logger().warning(
                "restored stopped: its run ended with the engine that ran it",
                container_id=truncate_id(record.id),
                name=record.name,
                exit_code=UNKNOWN_EXIT_CODE,
            )
        else:
            exit_code = record.exit_code
        container = restore_container(
            context, record, logs=logs, image=image, exit_code=exit_code, adopted=adopted
        )
        self._add(container, logs, log_path)
        return container

    async def _adopt(
        self, driver: RuntimeDriver, record: JournalRecord, logs: LogBuffer
    ) -> RuntimeHandle | int | None:
        """``live_restore``: the run a dead engine left of a live record, if its driver
        can take it over (or its exit code, if the run ended meanwhile)."""
        if not self._context.live_restore or record.pid is None:
            return None
        container_id = record.id

        def exited() -> None:
            # Until the container is registered there is nothing to tell: restore_container
            # commits an exit that came before, and no await lies between the two.
            if self._registry.has_id(container_id):
                exit_observed(self._registry.get(container_id))

        return await driver.adopt(
            container_id,
            pid=record.pid,
            start_time=record.pid_start_time,
            capture_output=record.spec.capture_output,
            output=logs,
            on_exit=exited,
        )

    async def _attach_rootfs(self, record: JournalRecord) -> tuple[Image, JournalRecord] | None:
        """Mount a restored container's root filesystem again; None (logged) if it cannot be."""
        context, spec = self._context, record.spec
        store, snapshotter = context.store, context.snapshotter
        try:
            image = None if store is None or spec.image is None else store.get(spec.image)
        except ImageNotFoundError:
            image = None
        if image is None or snapshotter is None or store is None:
            get_logger().error(
                "container not restored: its image is gone",
                container_id=record.id,
                image=spec.image,
            )
            return None
        try:
            rootfs = await anyio.to_thread.run_sync(snapshotter.attach, record.id, image)
        except OSError as error:
            get_logger().error(
                "container not restored: its root filesystem cannot be mounted",
                container_id=record.id,
                reason=str(error),
            )
            return None
        store.hold(image.id, record.id)
        return image, dataclasses.replace(
            record, spec=dataclasses.replace(spec, rootfs=str(rootfs))
        )

    def _add(self, container: Container, logs: LogBuffer, log_path: Path | None) -> None:
        if log_path is not None and self._task_group is not None:
            self._log_writers.start(self._task_group, logs.write_file_forever)
            self._log_files.append(logs)
        self._registry.add(container)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool | None:
        self._context.closing = True
        stack, self._exit_stack = self._exit_stack, None
        try:
            with anyio.CancelScope(shield=True):
                await self._stop_everything()
        finally:
            self._context.closed = True
            # Every watcher has ended: the task group closes without the body's
            # exception, which then propagates as it was raised (not wrapped in
            # an ExceptionGroup by a task group the caller never asked for).
            if stack is not None:
                await stack.aclose()
        return None

    async def _stop_everything(self) -> None:
        self._observer.cancel_all()
        containers = self._registry.all()
        for container in containers:
            cancel_pending_restart(container)
        # live_restore: what its driver can leave running is left running (moby's
        # --live-restore: the daemon goes, containerd's shims keep the containers).
        left_running = (
            {c.id for c in containers if is_live(c) and await detach_for_shutdown(c)}
            if self._context.live_restore
            else set()
        )
        async with anyio.create_task_group() as group:
            for container in containers:
                if container.id not in left_running and is_live(container):
                    group.start_soon(stop_for_shutdown, container)
        if self._context.journal is None:
            # The engine forgets its containers when it ends, so their root
            # filesystems must not outlive it: unmounted and deleted, as remove would.
            for container in containers:
                await release_rootfs(container)
        else:
            # The journal keeps them: each one's last state on disk (a stop by the
            # shutdown is not by hand: unless-stopped starts it again on restore),
            # its filesystem unmounted but kept for the next engine to mount.
            for container in containers:
                await flush_record(container)
                await release_rootfs(container, keep=True, mounted=container.id in left_running)
        for driver in self._context.opened_drivers():
            await driver.aclose(SHUTDOWN_GRACE)
        self._log_writers.cancel_all()
        for logs in self._log_files:
            await logs.flush_file()
        # Subscribers get the final events, then their iterations end.
        self._context.bus.close()
        await self._deliverers.wait_all(SHUTDOWN_GRACE)
        self._deliverers.cancel_all()

    async def _observe_periodically(self) -> None:
        """Every ``observe_interval``: each live container compared with ``/proc``.

        In slices of at most ``OBSERVE_SLICE`` seconds of the loop's time, with a
        checkpoint between them, so a fleet never stalls the loop for a whole scan
        (10,000 looks take ~150 ms: issue 20's profile). Each look is still one
        piece on the loop's thread, while the process is unreaped (``Container.state``).
        """
        interval = self._observe_interval
        if interval is None:  # pragma: no cover -- not started then
            return
        while True:
            began = anyio.current_time()
            sliced_at = time.perf_counter()
            for looked, container in enumerate(self._registry.all(), 1):
                if is_live(container):
                    observe(container)
                if looked % 16 == 0 and time.perf_counter() - sliced_at > OBSERVE_SLICE:
                    await anyio.lowlevel.checkpoint()
                    sliced_at = time.perf_counter()
            await anyio.sleep(max(0.0, interval - (anyio.current_time() - began)))

    def _callback_failed(
        self, callback: Callable[[Event], object], event: Event, error: BaseException
    ) -> None:
        get_logger().error(
            "event callback failed",
            callback=getattr(callback, "__qualname__", repr(callback)),
            action=event.action,
            container_id=truncate_id(event.container_id),
            name=event.name,
            exc_info=error,
        )

    # -- public API ----------------------------------------------------------

    async def create(
        self,
        command: list[str] | tuple[str, ...] | None = None,
        *,
        image: str | None = None,
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
        runtime: str | None = None,
        user: str | None = None,
        network: str | None = None,
        memory: int | None = None,
        pids_limit: int | None = None,
        cpu_shares: int | None = None,
        cpus: float | None = None,
        healthcheck: Healthcheck | None = None,
        health_on_failure: str = "none",
        labels: Mapping[str, str] | None = None,
    ) -> Container:
        """Create a container for ``command`` (an argv list; no shell). It starts ``created``.

        Its stdout and stderr are captured (``container.logs()``; the last
        ``log_bytes`` bytes are kept, 1 MiB by default) and, with ``log_file``,
        appended to that file as JSON lines like Docker's json-file driver
        (a path that cannot be opened for appending is refused here; lines a
        failing disk does not take later are counted in ``log_statistics()``).
        ``capture_output=False`` hands it this process's stdout and stderr
        instead. Its stdin is ``/dev/null`` unless ``interactive=True``
        (Docker's ``-i``). ``restart`` is a restart policy: ``"no"``
        (default), ``"on-failure"``, ``"on-failure:N"``, ``"always"``,
        ``"unless-stopped"`` or a ``RestartPolicy``. ``runtime`` picks the
        driver that runs it (default: the engine's ``runtime``). ``user``
        (default: the image's), ``network`` (``"none"``, a loopback only, is an
        OCI runtime's default; ``"host"``), ``memory`` (bytes), ``pids_limit``,
        ``cpu_shares`` and ``cpus`` are Docker's options of the same names; an
        OCI runtime applies them (an out-of-memory kill sets
        ``container.oom_killed``), the native driver refuses what it cannot do.
        ``healthcheck`` is Docker's health check (default: the image's, if it
        has one; ``Healthcheck(("NONE",))`` turns it off): ``container.health``,
        ``wait_healthy()``, ``health_status`` events; ``health_on_failure``
        (``"none"``, ``"kill"``, ``"restart"``, ``"stop"``: Podman's) is what
        happens each time it turns unhealthy. ``labels`` are Docker's: your
        key/value metadata, kept (and journaled) with the container.

        With ``image`` (a reference or id in the engine's store) the container
        runs on a copy-on-write root filesystem of that image, made now
        (``container.rootfs``); ``command`` defaults to the image's
        Entrypoint + Cmd, its Env and WorkingDir apply (``env``, ``cwd``
        override them; Docker adds a default PATH), and this process's
        environment is not inherited. ``ImageNotFoundError`` if the store
        has no such image.

        Raises ``InvalidArgumentError`` (or its ``InvalidNameError`` /
        ``InvalidSignalError``) for bad input and ``NameConflictError`` for a
        name in use; nothing is created then. Cancellation: if cancelled,
        nothing was created.
        """
        await anyio.lowlevel.checkpoint()
        context = self._context
        context.check_open()
        chosen_image = self._image_for(image)
        if chosen_image is not None:
            command, env, cwd, inherit_env = _from_image(chosen_image, command, env, cwd)
        spec = ContainerSpec.build(
            command,
            env=env,
            inherit_env=inherit_env,
            interactive=interactive,
            cwd=cwd,
            stop_signal=stop_signal,
            stop_timeout=stop_timeout,
            restart=restart,
            capture_output=capture_output,
            log_bytes=log_bytes,
            log_file=log_file,
            runtime=_runtime_for(context.check_runtime(runtime), runtime, chosen_image),
            user=user if user is not None or chosen_image is None else chosen_image.config.user,
            network=network,
            memory=memory,
            pids_limit=pids_limit,
            cpu_shares=cpu_shares,
            cpus=cpus,
            healthcheck=_healthcheck_for(healthcheck, chosen_image),
            health_on_failure=health_on_failure,
            labels=labels,
            image=None if chosen_image is None else chosen_image.id,
            rootfs="" if chosen_image is not None else None,  # made below, once all is checked
        )
        context.driver(spec.runtime).check_spec(spec)
        log_path = None if spec.log_file is None else Path(spec.log_file)
        logs = LogBuffer(spec.log_bytes, log_path)
        registry = self._registry
        if name is None:
            name = generate_name(registry.name_taken)
        else:
            name = validate_name(name)
            registry.check_name_free(name)
        container_id = new_id()
        while registry.has_id(container_id):  # pragma: no cover -- 2**256 ids
            container_id = new_id()
        spec = dataclasses.replace(spec, hostname=truncate_id(container_id))
        # The last check, as it may create the file: it is removed again if what follows fails.
        log_created = log_path is not None and await anyio.to_thread.run_sync(
            open_log_file, log_path
        )
        if chosen_image is not None and context.snapshotter is not None and context.store:
            snapshotter, store = context.snapshotter, context.store
            try:
                with anyio.CancelScope(shield=True):  # made and registered, or not made at all
                    rootfs = await anyio.to_thread.run_sync(
                        snapshotter.prepare, container_id, chosen_image
                    )
            except BaseException:
                # prepare left nothing behind and nothing is held yet: only the log file.
                await self._undo_create(container_id, None, log_path, log_created)
                raise
            spec = dataclasses.replace(spec, rootfs=str(rootfs))
            store.hold(chosen_image.id, container_id)
        created_at = datetime.now(UTC)
        written = None
        if context.journal is not None:
            # The record first: a container exists once its record does, so a crash
            # after create returned never loses it (one before leaves a filesystem no
            # record keeps, which the next engine sweeps).
            written = JournalRecord(
                id=container_id, name=name, spec=spec, state=State.CREATED, created=created_at
            )
            try:
                with anyio.CancelScope(shield=True):
                    await anyio.to_thread.run_sync(context.journal.write, written)
            except BaseException:
                await self._undo_create(container_id, chosen_image, log_path, log_created)
                raise
        container = new_container(
            context,
            spec,
            container_id=container_id,
            name=name,
            logs=logs,
            image=chosen_image,
            created_at=created_at,
            written=written,
        )
        self._add(container, logs, log_path)
        return container

    async def _undo_create(
        self, container_id: str, image: Image | None, log_path: Path | None, log_created: bool
    ) -> None:
        """A create that failed after its checks: nothing of it is left. ``image``: the
        root filesystem made from it and its hold are undone too. Shielded."""
        context = self._context
        with anyio.CancelScope(shield=True):
            if image is not None and context.snapshotter is not None:
                await anyio.to_thread.run_sync(context.snapshotter.remove, container_id)
            if image is not None and context.store is not None:
                context.store.release(image.id, container_id)
            if log_created and log_path is not None:
                await anyio.to_thread.run_sync(lambda: log_path.unlink(missing_ok=True))

    def _image_for(self, reference: str | None) -> Image | None:
        if reference is None:
            return None
        if self._context.store is None:
            raise InvalidArgumentError(
                f"cannot create a container from image {reference!r}: the engine has no image "
                "store (Engine(store=ImageStore(root)) or Engine(root=...))"
            )
        return self._context.store.get(reference)

    def get(self, reference: str) -> Container:
        """Find a live container by full id, name, or unique id prefix (Docker's order).

        Raises ``ContainerNotFoundError`` saying whether nothing matched or
        the prefix matched several containers.
        """
        return self._registry.get(reference)

    def containers(self) -> list[Container]:
        """The live (not deleted) containers, oldest first."""
        return self._registry.all()

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
        self._context.check_open()
        subscription = self._context.bus.open(
            container=_reference(container),
            actions=actions,
            max_buffer=max_buffer,
            lossless=lossless,
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
        self._context.check_open()
        if not callable(callback):
            raise InvalidArgumentError(f"callback must be callable, not {callback!r}")
        if self._task_group is None:  # pragma: no cover -- check_open ensures it
            raise EngineClosedError("the engine has not been entered")
        subscription = self._context.bus.open(
            container=_reference(container),
            actions=actions,
            max_buffer=max_buffer,
            lossless=lossless,
        )
        self._deliverers.start(
            self._task_group, deliver_to_callback, subscription, callback, self._callback_failed
        )
        return subscription.close

    def graph(self) -> graphviz.Digraph:
        """The fleet: how many containers sit in each state, how often each edge was taken.

        Built on demand: O(containers + states + edges), nothing paid per transition
        beyond one counter, and no look at ``/proc``: each container counts in its
        committed state (the observer keeps that within ``observe_interval`` of the
        OS). Removed containers are counted in ``deleted``.
        """
        return self._context.fleet.graph(
            committed_state(container) for container in self._registry.all()
        )

    def statistics(self) -> EngineStatistics:
        """Containers, subscribers (including callbacks), events published and dropped."""
        events = self._context.bus.statistics()
        return EngineStatistics(
            containers=len(self._registry),
            subscribers=events.subscribers,
            events_published=events.events_published,
            events_dropped=events.events_dropped,
            snapshotter=None
            if self._context.snapshotter is None
            else self._context.snapshotter.name,
            containment=self._context.driver(self._context.default_runtime).containment,
            open_files_limit=None if self._open_files is None else self._open_files.soft,
        )


def _healthcheck_for(given: Healthcheck | None, image: Image | None) -> Healthcheck | None:
    """The check given, else the image's own (Docker: an image's HEALTHCHECK applies unless
    the container overrides it). A broken image check is an error naming the image."""
    if given is not None or image is None or image.config.healthcheck is None:
        return given
    try:
        return Healthcheck.from_docker(image.config.healthcheck)
    except InvalidArgumentError as error:
        raise InvalidArgumentError(
            f"image {image.short_id} has a bad Healthcheck: {error}"
        ) from None


async def _end_adopted(driver: RuntimeDriver, handle: RuntimeHandle, record: JournalRecord) -> None:
    """An adopted run of a container that cannot be restored after all: killed, reaped."""
    handle.signal(signal.SIGKILL)
    with anyio.move_on_after(SHUTDOWN_GRACE * 4):
        await handle.wait()
    handle.close()
    await driver.release_leftovers(record.id, pid=record.pid, start_time=record.pid_start_time)


def _runtime_for(checked: str, asked: str | None, image: Image | None) -> str:
    """The driver of a new container: the one asked for, else the engine's default; but an
    argv-only container on an engine whose default needs an image keeps the native driver
    (``Engine(runtime="runc")`` still runs plain commands)."""
    if asked is None and image is None and checked in IMAGE_ONLY_DRIVERS:
        return DEFAULT_RUNTIME
    return checked


def _reference(container: str | Container | None) -> str | None:
    """What the event filter matches: a name, id or id prefix (a handle: its id)."""
    return container.id if isinstance(container, Container) else container


def _from_image(
    image: Image,
    command: list[str] | tuple[str, ...] | None,
    env: Mapping[str, str] | None,
    cwd: str | os.PathLike[str] | None,
) -> tuple[list[str] | tuple[str, ...], dict[str, str], str | os.PathLike[str] | None, bool]:
    """What a container from ``image`` runs: Docker's merge of the image config and create."""
    config = image.config
    if command is None:
        command = config.command()
        if not command:
            raise InvalidArgumentError(
                f"no command given and image {image.short_id} has no Entrypoint or Cmd"
            )
    merged = {"PATH": DEFAULT_PATH, **config.env, **(env or {})}
    return command, merged, cwd if cwd is not None else config.working_dir, False
