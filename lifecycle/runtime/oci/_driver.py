"""The OCI runtime driver: a container's process is a real PID 1, in its own namespaces.

The way containerd's shim and Podman's conmon drive runc: a bundle per run
(``_bundle.py``), ``runc create`` with the engine's capture pipes as the
container's stdout and stderr and ``--pid-file``, a pidfd on PID 1, ``runc
start``; the exit is the pidfd turning readable (``_process.py``); after it
``runc delete`` removes the runtime's state and cgroups, and the bundle goes.
Pause is ``runc pause`` (the cgroup freezer). Needs root, the runtime
binary, and a cgroup v1 freezer hierarchy; ``check_spec`` says which is
missing and how to get it, at create.

Each run gets its own runtime id (``<short id>-<n>``), so the next start of
a container never waits for the previous run's ``delete``, which happens
after the exit has been reported (exit detection stays event-fast).

With ``live_restore`` (Docker's ``--live-restore``) a container can outlive the
engine: ``create`` runs under a monitor (``_monitored.py``) that stays PID 1's
parent and keeps its exit code in an exit file, and stdout and stderr are FIFOs in
the bundle that the container holds open for reading as well as writing (so it
never gets SIGPIPE when the engine is gone; its writes block once the 64 KiB pipe
buffer is full, as Docker's do, until an engine reads again). At shutdown the engine
``detach``es such a container; the next engine ``adopt``s it: its PID 1 checked by
pidfd and start time, its monitor by being PID 1's parent.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import signal
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Final, final

import anyio
import anyio.to_thread
from anyio.abc import TaskGroup

from lifecycle._errors import InvalidArgumentError
from lifecycle._logging import get_logger
from lifecycle._polling import poll_until
from lifecycle._stringid import truncate_id
from lifecycle._tasks import ShieldedTasks
from lifecycle.containment import Cgroup, SubreaperLease, pidfd_exited, procfs
from lifecycle.model import ContainerSpec
from lifecycle.runtime import Multiplexer, OutputSink, RuntimeHandle, SpawnFailure, run_probe
from lifecycle.runtime.oci._bundle import bundle_config, resolve_user, write_bundle
from lifecycle.runtime.oci._monitored import (
    MONITOR_EXIT_TIMEOUT,
    MONITOR_PROGRAM,
    Monitor,
    read_exit_file,
    start_monitored,
)
from lifecycle.runtime.oci._process import OciProcess
from lifecycle.runtime.oci._runtime import Runtime, remove_tree

__all__ = ["CrunDriver", "OciDriver", "RuncDriver", "missing_requirement"]

STATE_ROOT: Final = Path("/run/lifecycle")
# Monitors' exit files (``<runtime id>``): kept apart from the bundles, which a starting
# engine deletes once their container has stopped, until a restore reads them.
EXITS: Final = STATE_ROOT / "exits"
CGROUP_MOUNT: Final = Path("/sys/fs/cgroup")
# Below each hierarchy's root, as Docker's cgroupfs driver puts them under /docker.
CGROUP_PARENT: Final = "lifecycle-oci"


def missing_requirement(binary: str) -> str | None:
    """Why ``binary`` cannot run containers here, with how to fix it; None if it can."""
    if os.geteuid() != 0:
        return f"the {binary} runtime needs root (rootless containers are not supported yet)"
    if shutil.which(binary) is None:
        return f"the {binary} runtime is not installed (Debian: apt-get install {binary})"
    if not (CGROUP_MOUNT / "freezer" / "tasks").exists():
        return "no cgroup v1 freezer hierarchy is mounted at /sys/fs/cgroup/freezer"
    if binary == "crun" and _hybrid_without_hugetlb():
        return (
            "crun refuses cgroups in hybrid mode unless the hugetlb v1 controller is mounted: "
            "mkdir /sys/fs/cgroup/hugetlb && mount -t cgroup -o hugetlb cgroup "
            "/sys/fs/cgroup/hugetlb"
        )
    return None


def _hybrid_without_hugetlb() -> bool:
    """v1 controllers beside a cgroup2 mount (hybrid), with hugetlb not mounted as v1."""
    hybrid = (CGROUP_MOUNT / "unified" / "cgroup.controllers").exists()
    return hybrid and not (CGROUP_MOUNT / "hugetlb" / "tasks").exists()


class OciDriver:
    """Runs image containers through an OCI runtime binary (``RuntimeDriver``)."""

    __slots__ = (
        "_binary",
        "_bundles",
        "_cleanups",
        "_detached",
        "_dispatcher",
        "_live_restore",
        "_multiplexer",
        "_name",
        "_probes",
        "_runs",
        "_runtime",
        "_subreaper",
        "_task_group",
        "_watchers",
    )

    def __init__(self, binary: str = "runc", *, name: str | None = None) -> None:
        self._binary = binary
        self._name = name or os.path.basename(binary)
        self._runtime = Runtime(binary, STATE_ROOT / self._name)
        self._bundles = STATE_ROOT / "bundles" / f"{os.getpid()}-{id(self):x}"
        self._runs = 0  # the last run's number (runtime ids <short id>-<n>)
        self._probes = itertools.count(1)
        self._multiplexer = Multiplexer()
        self._dispatcher = ShieldedTasks()
        self._watchers = ShieldedTasks()
        self._cleanups = ShieldedTasks()
        self._subreaper = SubreaperLease()
        self._task_group: TaskGroup | None = None
        self._live_restore = False
        self._detached: set[Path] = set()  # bundles of containers left running at shutdown

    def __repr__(self) -> str:
        return f"<OciDriver {self._name}>"

    @property
    def name(self) -> str:
        return self._name

    @property
    def containment(self) -> str:
        return f"OCI runtime {self._name}: PID, mount, IPC, UTS and network namespaces, cgroup v1"

    def open(self, task_group: TaskGroup, *, live_restore: bool = False) -> None:
        if self._task_group is not None:
            raise RuntimeError(f"an OciDriver serves one engine, once ({self!r})")
        self._live_restore = live_restore
        self._subreaper.acquire()  # PID 1 is re-parented to us when `create` exits
        self._delete_what_dead_engines_finished()
        _sweep_empty_bundle_directories(self._bundles.parent)
        self._task_group = task_group
        self._dispatcher.start(task_group, self._multiplexer.run)

    def _delete_what_dead_engines_finished(self) -> None:
        """Delete the runtime containers of engines that died whose PID 1 is gone already
        (``stopped``), and their bundles: nothing is left to adopt or kill there (a crash
        between a container's exit and its delete, or mid-remove, after its record went).
        One still running is left for its journal's restore (``release_leftovers``)."""
        for engine in _dead_engine_directories(self._bundles.parent):
            for bundle in list(engine.iterdir()):
                if self._runtime.status_now(bundle.name) in (None, "stopped"):
                    self._runtime.delete_now(bundle.name)
                    remove_tree(bundle)

    def check_spec(self, spec: ContainerSpec) -> None:
        missing = missing_requirement(self._binary)
        if missing is not None:
            raise InvalidArgumentError(f"cannot run this container: {missing}")
        if spec.rootfs is None:
            raise InvalidArgumentError(
                f"the {self._name} runtime runs containers made from an image (create(image=...));"
                " a plain command runs on the native driver (runtime='native')"
            )
        if spec.interactive:
            raise InvalidArgumentError(f"interactive=True is not supported by {self._name} yet")

    @contextmanager
    def starting(self) -> Iterator[None]:
        """Nothing to count: every start runs the runtime in a worker thread anyway."""
        yield

    async def spawn(
        self,
        spec: ContainerSpec,
        *,
        environment: Mapping[str, str] | None,
        output: OutputSink,
        on_exit: Callable[[], None],
    ) -> OciProcess:
        """Create and start the container; return once its PID 1 runs the command.

        Cancellation: the spawn completes (shielded) and the handle is
        returned; the caller sees the cancellation at its next checkpoint.
        """
        task_group = self._task_group
        if task_group is None:
            raise RuntimeError("the driver has not been opened (Engine.__aenter__ opens it)")
        with anyio.CancelScope(shield=True):
            process = await self._create_and_start(spec, dict(environment or {}))
        self._supervise(task_group, process, output, on_exit)
        return process

    async def _create_and_start(
        self, spec: ContainerSpec, environment: dict[str, str]
    ) -> OciProcess:
        if spec.rootfs is None:  # pragma: no cover -- check_spec refused it
            raise SpawnFailure("no root filesystem", 125)
        self._runs += 1
        runtime_id = f"{spec.hostname or 'lifecycle'}-{self._runs}"
        bundle = self._bundles / runtime_id
        cgroups_path = f"/{CGROUP_PARENT}/{runtime_id}"
        try:
            user = resolve_user(spec.user, spec.rootfs)
        except InvalidArgumentError as error:
            raise SpawnFailure(str(error), 125) from None
        config = bundle_config(spec, environment, cgroups_path=cgroups_path, user=user)
        await anyio.to_thread.run_sync(write_bundle, bundle, config)
        if self._live_restore:
            pid, pidfd, output_fds, monitor = await self._create_monitored(
                runtime_id, bundle, capture=spec.capture_output
            )
        else:
            pid, pidfd, output_fds = await self._create(
                runtime_id, bundle, capture=spec.capture_output
            )
            monitor = None
        process = self._process(runtime_id, bundle, pid, pidfd, output_fds, monitor)
        try:
            await self._runtime.run("start", runtime_id)
        except BaseException as error:
            process.signal(signal.SIGKILL)
            await poll_until(process.has_exited_now, 5)
            await process.collect_exit_code()
            for fd in process.output_fds or ():
                os.close(fd)
            await self._delete(runtime_id, bundle)
            raise SpawnFailure(f"{self._name} start: {error}", 125) from None
        return process

    def _process(  # noqa: PLR0917 -- what one run is made of
        self,
        runtime_id: str,
        bundle: Path,
        pid: int,
        pidfd: int,
        output_fds: tuple[int, int] | None,
        monitor: Monitor | None,
    ) -> OciProcess:
        freezer = Cgroup({"freezer": str(CGROUP_MOUNT / "freezer" / CGROUP_PARENT / runtime_id)})
        memory = CGROUP_MOUNT / "memory" / CGROUP_PARENT / runtime_id
        return OciProcess(
            self._runtime,
            runtime_id,
            bundle,
            pid,
            pidfd,
            output_fds=output_fds,
            freezer=freezer,
            memory=memory if memory.is_dir() else None,
            monitor=monitor,
        )

    async def _create(
        self, runtime_id: str, bundle: Path, *, capture: bool
    ) -> tuple[int, int, tuple[int, int] | None]:
        """``create`` with the engine's capture pipes; (PID 1, its pidfd, read ends)."""
        pipes = [os.pipe2(os.O_CLOEXEC), os.pipe2(os.O_CLOEXEC)] if capture else []
        try:
            stdout, stderr = (pipes[0][1], pipes[1][1]) if pipes else (1, 2)
            try:
                pid = await anyio.to_thread.run_sync(
                    self._runtime.create_now, runtime_id, bundle, stdout, stderr
                )
            finally:
                for _, write_end in pipes:  # the container holds its own copies now
                    os.close(write_end)
            pidfd = os.pidfd_open(pid)
        except BaseException:
            for read_end, _ in pipes:
                os.close(read_end)
            # A runtime that died after making the container (killed, say) left PID 1
            # waiting for `start`, re-parented to us: delete kills it, and we reap it.
            leftover = _open_pid_file(bundle / "pid")
            await self._delete(runtime_id, bundle)
            if leftover is not None:
                await poll_until(lambda: pidfd_exited(leftover), 5)
                with contextlib.suppress(ChildProcessError):
                    os.waitid(os.P_PIDFD, leftover, os.WEXITED | os.WNOHANG)  # noqa: ASYNC222 -- WNOHANG
                os.close(leftover)
            raise
        return pid, pidfd, (pipes[0][0], pipes[1][0]) if pipes else None

    async def _create_monitored(
        self, runtime_id: str, bundle: Path, *, capture: bool
    ) -> tuple[int, int, tuple[int, int] | None, Monitor]:
        """``create`` under a monitor, stdout and stderr FIFOs in the bundle (module doc);
        (PID 1, its pidfd, the FIFOs' read ends, the monitor)."""
        container_ends: list[int] = []
        read_ends: list[int] = []
        monitor: Monitor | None = None
        try:
            for stream in ("stdout", "stderr") if capture else ():
                fifo = bundle / stream
                os.mkfifo(fifo, 0o600)
                # Read-write for the container: a FIFO with a reader never raises SIGPIPE.
                container_ends.append(os.open(fifo, os.O_RDWR | os.O_CLOEXEC))
                read_ends.append(os.open(fifo, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC))
            stdio = (container_ends[0], container_ends[1]) if capture else (1, 2)
            EXITS.mkdir(parents=True, exist_ok=True)
            try:
                pid, started = await anyio.to_thread.run_sync(
                    start_monitored, self._runtime, runtime_id, bundle, stdio, EXITS / runtime_id
                )
                monitor = started
            finally:
                for fd in container_ends:
                    os.close(fd)
                container_ends.clear()
            pidfd = os.pidfd_open(pid)
            return pid, pidfd, (read_ends[0], read_ends[1]) if capture else None, started
        except BaseException:
            for fd in container_ends + read_ends:
                os.close(fd)
            await self._delete(runtime_id, bundle)
            if monitor is not None:  # PID 1 is gone: it exits, and we reap it
                with anyio.CancelScope(shield=True):
                    await anyio.to_thread.run_sync(monitor.reap_blocking, 5.0)
            raise

    def _supervise(
        self,
        task_group: TaskGroup,
        process: OciProcess,
        output: OutputSink,
        on_exit: Callable[[], None],
    ) -> None:
        pidfd = process.pidfd
        if pidfd is None:  # pragma: no cover -- a fresh process has its pidfd
            raise RuntimeError(f"{process!r} has no pidfd")
        multiplexer = self._multiplexer

        def exited() -> None:
            if not process.has_exited_now():
                return
            multiplexer.forget(pidfd)
            if process.try_complete_exit_now():
                on_exit()
                self._cleanups.start(task_group, self._delete, process.runtime_id, process.bundle)
            else:
                self._watchers.start(task_group, self._complete_exit, process, on_exit)

        multiplexer.watch(pidfd, exited)
        if process.output_fds is not None:
            multiplexer.watch_outputs(process.output_fds, output, process.output_closed)

    async def _complete_exit(self, process: OciProcess, on_exit: Callable[[], None]) -> None:
        try:
            await process.complete_exit()
            if process.exited:
                on_exit()
        finally:
            process.close()
            await self._delete(process.runtime_id, process.bundle)

    async def _delete(self, runtime_id: str, bundle: Path) -> None:
        """``runtime delete --force`` (state and cgroups), then the bundle. Never raises."""
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(self._runtime.delete_now, runtime_id)
            await anyio.to_thread.run_sync(self._remove_bundle, bundle)

    def _remove_bundle(self, bundle: Path) -> None:
        """Remove a run's bundle; an adopted run's was another engine's, whose directory
        may be empty now (blocking)."""
        remove_tree(bundle)
        if bundle.parent != self._bundles:
            with contextlib.suppress(OSError):
                bundle.parent.rmdir()

    async def probe(
        self,
        handle: RuntimeHandle,
        spec: ContainerSpec,
        argv: Sequence[str],
        *,
        environment: Mapping[str, str] | None,
        timeout: float,
    ) -> tuple[int, bytes]:
        """``runc exec``: inside the container's namespaces and cgroup, with its process's
        environment, working directory and user (runc copies them from config.json)."""
        if not isinstance(handle, OciProcess):
            raise TypeError(f"{handle!r} is not a container of this driver")
        pid_file = handle.bundle / f"probe-{next(self._probes)}.pid"
        command = self._runtime.argv("exec", "--pid-file", str(pid_file), handle.runtime_id, *argv)

        def kill_probe() -> None:
            # runc exec does not kill what it exec'd when it is killed itself: the probe's
            # own process (its host pid is in the pid file) goes first. A pid from the file
            # is checked against the container's cgroup before it is signalled.
            pid = _read_pid_file(pid_file)
            if pid is not None:
                handle.kill_member(pid)

        try:
            return await run_probe(
                command, env=None, cwd=None, timeout=timeout, kill_also=kill_probe
            )
        finally:
            pid_file.unlink(missing_ok=True)

    async def release_leftovers(
        self, container_id: str, *, pid: int | None, start_time: int | None
    ) -> None:
        """``delete --force`` every runtime container an engine that died left of it
        (runtime ids are ``<short id>-<n>``: found by name even if it died between
        the runtime's create and the journal's record), and their bundles. Its PID 1
        is killed with them: without ``live_restore`` nothing is adopted (Docker's
        ``--live-restore`` off: moby kills what containerd still runs)."""
        del pid, start_time  # found by name: the runtime knows its own containers
        prefix = f"{truncate_id(container_id)}-"

        def release() -> list[str]:
            try:
                names = [entry.name for entry in self._runtime.state_root.iterdir()]
            except OSError:
                names = []
            left = [name for name in names if name.startswith(prefix)]
            bundles = list(STATE_ROOT.glob(f"bundles/*/{prefix}*"))
            # live_restore: a run's monitor exits once its PID 1 is killed; reaped if ours.
            found = (_monitor_of(_read_pid_file(b / "pid"), b.name) for b in bundles)
            monitors = [monitor for monitor in found if monitor is not None]
            for runtime_id in left:
                self._runtime.delete_now(runtime_id)
            for monitor in monitors:
                monitor.reap_blocking(MONITOR_EXIT_TIMEOUT)
            for bundle in bundles:
                self._remove_bundle(bundle)
            for exit_file in EXITS.glob(f"{prefix}*"):  # a monitor's, for a run now over
                exit_file.unlink(missing_ok=True)
            return left

        with anyio.CancelScope(shield=True):
            left = await anyio.to_thread.run_sync(release)
        if left:
            get_logger().warning(
                "deleted what a dead engine left", container_id=prefix[:-1], runtime_ids=left
            )

    def detach(self, handle: RuntimeHandle) -> bool:
        """Let go of a running container started under a monitor (``live_restore``): its
        exit and bundle are left for the engine that adopts it. False for any other."""
        if not isinstance(handle, OciProcess) or not handle.monitored or handle.exited:
            return False
        pidfd = handle.pidfd
        if pidfd is not None:
            self._multiplexer.forget(pidfd)
        self._detached.add(handle.bundle)
        handle.close()  # its output FIFOs end for us at aclose; the container keeps them
        return True

    async def adopt(
        self,
        container_id: str,
        *,
        pid: int,
        start_time: int | None,
        capture_output: bool,
        output: OutputSink,
        on_exit: Callable[[], None],
    ) -> OciProcess | int | None:
        """Take over a container a dead engine left running under its monitor.

        Adopted only if its PID 1 is ``pid`` started at ``start_time`` (read through a
        pidfd, so a reused pid is never taken) and its parent is the run's monitor.
        The exit code if it ended while no engine ran (the monitor's exit file).
        Cancellation: the look completes (shielded).
        """
        task_group = self._task_group
        if task_group is None:
            raise RuntimeError("the driver has not been opened (Engine.__aenter__ opens it)")
        if start_time is None:
            return None  # nothing to prove it is the same process by
        prefix = f"{truncate_id(container_id)}-"
        with anyio.CancelScope(shield=True):
            found = await anyio.to_thread.run_sync(
                self._find_run, prefix, pid, start_time, capture_output
            )
        if isinstance(found, OciProcess):
            self._supervise(task_group, found, output, on_exit)
        return found

    def _find_run(
        self, prefix: str, pid: int, start_time: int, capture_output: bool
    ) -> OciProcess | int | None:
        for bundle in sorted(STATE_ROOT.glob(f"bundles/*/{prefix}*")):
            process = self._adopt_run(bundle, pid, start_time, capture_output)
            if process is not None:
                number = bundle.name.rpartition("-")[2]
                # The next run of this driver must not reuse the adopted run's runtime id.
                self._runs = max(self._runs, int(number) if number.isdigit() else 0)
                return process
        for exit_file in EXITS.glob(f"{prefix}*"):
            code = read_exit_file(exit_file, pid, start_time)
            if code is not None:
                return code
        return None

    def _adopt_run(  # noqa: PLR0911 -- each check that fails is one more reason not to adopt
        self, bundle: Path, pid: int, start_time: int, capture_output: bool
    ) -> OciProcess | None:
        """The run in ``bundle`` if its PID 1 is the journal's and its monitor lives."""
        runtime_id = bundle.name
        if _read_pid_file(bundle / "pid") != pid:
            return None
        try:
            pidfd = os.pidfd_open(pid)
        except OSError:
            return None
        output_fds: list[int] = []
        monitor: Monitor | None = None
        adopted = False
        try:
            # The pidfd holds the pid now: what /proc says of it is that process's.
            if procfs.start_time(pid) != start_time:
                return None
            if self._runtime.status_now(runtime_id) not in ("running", "paused"):
                return None
            monitor = _monitor_of(pid, runtime_id)
            parent = procfs.read_stat(pid)  # still its parent, now that a pidfd holds it
            if monitor is None or parent is None or parent.ppid != monitor.pid:
                return None  # no monitor (killed?): its exit code would be lost
            for stream in ("stdout", "stderr") if capture_output else ():
                fifo = bundle / stream
                output_fds.append(os.open(fifo, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC))
            adopted = True
        except OSError:
            return None
        finally:
            if not adopted:
                os.close(pidfd)
                for fd in output_fds:
                    os.close(fd)
                if monitor is not None:
                    monitor.close()
        fds = (output_fds[0], output_fds[1]) if output_fds else None
        return self._process(runtime_id, bundle, pid, pidfd, fds, monitor)

    async def aclose(self, grace: float) -> None:
        await self._watchers.wait_all(grace)
        self._watchers.cancel_all()
        await self._cleanups.wait_all(grace * 4)  # each delete is a runtime run (~10 ms)
        self._cleanups.cancel_all()
        self._dispatcher.cancel_all()
        await self._dispatcher.wait_all(grace)
        self._multiplexer.close()
        await anyio.to_thread.run_sync(_remove_bundles, self._bundles, self._detached)
        self._subreaper.release()


def _monitor_of(pid: int | None, runtime_id: str) -> Monitor | None:
    """The monitor of run ``runtime_id`` if it still runs and is the parent of PID 1
    ``pid`` (``live_restore``); checked again once a pidfd holds it."""
    stat = None if pid is None else procfs.read_stat(pid)
    if stat is None or not _is_monitor(stat.ppid, runtime_id):
        return None
    try:
        monitor = Monitor(stat.ppid, os.pidfd_open(stat.ppid), EXITS / runtime_id)
    except OSError:
        return None
    if not _is_monitor(monitor.pid, runtime_id):  # the pid was reused before the pidfd
        monitor.close()
        return None
    return monitor


def _is_monitor(pid: int, runtime_id: str) -> bool:
    """Whether ``pid`` is the monitor program watching run ``runtime_id``."""
    try:
        arguments = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    program = MONITOR_PROGRAM.name.encode()
    return any(a.endswith(program) for a in arguments) and runtime_id.encode() in arguments


def _read_pid_file(path: Path) -> int | None:
    """The pid a runtime's ``--pid-file`` names (None: no file, or not a pid)."""
    try:
        return int(path.read_text(encoding="ascii").strip())
    except (OSError, ValueError):
        return None


def _open_pid_file(path: Path) -> int | None:
    """A pidfd on the process a runtime's --pid-file names (None: no file, or gone)."""
    pid = _read_pid_file(path)
    try:
        return None if pid is None else os.pidfd_open(pid)
    except OSError:
        return None


def _dead_engine_directories(parent: Path) -> list[Path]:
    """The bundle directories (``<pid>-<n>``) of engines that no longer run."""
    try:
        entries = list(parent.iterdir())
    except OSError:
        return []
    found = []
    for entry in entries:
        pid, _, _ = entry.name.partition("-")
        if pid.isdigit() and not os.path.exists(f"/proc/{pid}"):
            found.append(entry)
    return found


def _remove_bundles(directory: Path, keep: set[Path]) -> None:
    """Remove an engine's bundle directory at its shutdown, but for the bundles of the
    containers it left running (``keep``: ``live_restore``)."""
    if not keep:
        remove_tree(directory)
        return
    with contextlib.suppress(OSError):
        for bundle in list(directory.iterdir()):
            if bundle not in keep:
                remove_tree(bundle)


def _sweep_empty_bundle_directories(parent: Path) -> None:
    """Remove the empty bundle directories of engines that no longer run (killed ones).

    One that still holds a bundle is left: its container may still run, which is for a
    restore to settle (``release_leftovers``), not for a sweep to kill.
    """
    for entry in _dead_engine_directories(parent):
        with contextlib.suppress(OSError):
            entry.rmdir()


@final
class RuncDriver(OciDriver):
    """runc (Debian's ``runc``): ``Engine(runtime="runc")``."""

    __slots__ = ()

    def __init__(self) -> None:
        super().__init__("runc")


@final
class CrunDriver(OciDriver):
    """crun (Debian's ``crun``): ``Engine(runtime="crun")``; faster to start than runc."""

    __slots__ = ()

    def __init__(self) -> None:
        super().__init__("crun")
