"""The native driver: a container is a process group on this host, watched through a pidfd.

What it does that the engine never sees:

- **Spawn** (``_process.py``): fork and exec in a new session and process
  group, stdin ``/dev/null``, stdout/stderr into pipes. On the loop's
  thread (the cheapest way), unless the machine is busy and other starts
  are waiting: then in a worker thread, so their forks overlap instead of
  queueing on the loop (``_spawn_in_thread``).
- **Supervision**: one dispatcher task watches every pidfd and output pipe
  through one epoll set (``lifecycle.runtime.Multiplexer``). When a pidfd turns readable,
  what is left of the group is killed, the process reaped, its output
  drained, and only then is the engine told (``on_exit``). An exit whose
  output is already at end of stream -- almost all of them -- completes
  with no task at all; the others complete in a shielded watcher task.
  Both kinds of task are shielded (a shutdown caused by cancellation must
  still see the exits it causes) and ended explicitly by ``aclose``.
- **Containment**: as root, each container gets a cgroup (v1 freezer and
  pids): a process that leaves the process group (``setsid``, ``setpgid``)
  is still the container's, signalled, frozen and killed with it; the
  cgroup is removed after the exit. Otherwise the process group is the
  container (``containment`` says which). Either way the engine is a child
  subreaper while the driver runs, so orphans of a container come back to
  it and are reaped (``lifecycle.containment``).
- **Pause**: the cgroup freezer (confirmed ``FROZEN``), as Docker; without a
  cgroup, SIGSTOP to the group, confirmed in ``/proc`` (state ``T``).
"""

from __future__ import annotations

import os
import posixpath
import shutil
import signal
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Final, Literal, final

from anyio.abc import TaskGroup

from lifecycle._errors import InvalidArgumentError
from lifecycle._logging import get_logger
from lifecycle._polling import poll_until
from lifecycle._stringid import truncate_id
from lifecycle._tasks import ShieldedTasks
from lifecycle.containment import Cgroup, CgroupRoot, SubreaperLease, find_cgroup_root, procfs
from lifecycle.model import DEFAULT_PATH, ContainerSpec
from lifecycle.runtime import Multiplexer, OutputSink, RuntimeHandle, SpawnFailure, run_probe
from lifecycle.runtime.native._process import SupervisedProcess

__all__ = ["NativeDriver"]

# A fork and exec slower than this means a busy machine (about 0.3 ms when
# idle, 2-20 ms beside a CPU-bound process on 2 cores); see _spawn_in_thread.
SLOW_SPAWN: Final = 0.001
# Weight of the latest spawn in the running average of spawn times.
SPAWN_AVERAGE_WEIGHT: Final = 0.25

Containment = Literal["auto", "cgroup", "process-group"]
CONTAINMENTS: Final[tuple[str, ...]] = ("auto", "cgroup", "process-group")
# What NativeDriver() (and so Engine(runtime="native")) uses: cgroups where we may.
DEFAULT_CONTAINMENT: Containment = "auto"


# How long the processes a dead engine left get to die of SIGKILL (uninterruptible
# sleep on a dead disk could hold one longer: logged, not waited for).
LEFTOVER_TIMEOUT: Final = 5.0


@final
class NativeDriver:
    """Runs each container as a supervised process group of this process (``RuntimeDriver``)."""

    __slots__ = (
        "_cgroups",
        "_containment",
        "_dispatcher",
        "_mains",
        "_multiplexer",
        "_spawn_seconds",
        "_starts_in_flight",
        "_subreaper",
        "_task_group",
        "_watchers",
    )

    def __init__(self, *, containment: Containment | None = None) -> None:
        """``containment``: ``"cgroup"`` (root only: a cgroup per container; refused at
        open where none can be made), ``"process-group"`` (the group is the container),
        or ``"auto"`` (the default: cgroups where we may, else process groups)."""
        chosen = DEFAULT_CONTAINMENT if containment is None else containment
        if chosen not in CONTAINMENTS:
            raise InvalidArgumentError(
                f"containment must be one of {', '.join(CONTAINMENTS)}, not {containment!r}"
            )
        self._containment: Containment = chosen
        self._cgroups: CgroupRoot | None = None
        self._subreaper = SubreaperLease()
        # PIDs of the live main processes: a child of ours not among them is an adopted orphan.
        self._mains: set[int] = set()
        self._multiplexer = Multiplexer()
        self._dispatcher = ShieldedTasks()
        self._watchers = ShieldedTasks()
        self._task_group: TaskGroup | None = None
        # Starts between their entry and their spawn, and how long recent
        # forks took (a running average): see _spawn_in_thread.
        self._starts_in_flight = 0
        self._spawn_seconds = 0.0

    def __repr__(self) -> str:
        return f"<NativeDriver {len(self._watchers)} exits in progress>"

    @property
    def name(self) -> str:
        return "native"

    @property
    def containment(self) -> str:
        """What holds a container together: ``"cgroup v1 (freezer, pids)"`` or ``"process group"``.

        Known once the driver is open (before: what it will try).
        """
        if self._cgroups is not None:
            return f"cgroup v1 ({', '.join(self._cgroups.controllers)})"
        if self._task_group is None and self._containment != "process-group":
            return f"{self._containment} (not open yet)"
        return "process group"

    def open(self, task_group: TaskGroup, *, live_restore: bool = False) -> None:
        del live_restore  # a native container is our child: it cannot outlive us (detach)
        if self._task_group is not None:
            raise RuntimeError("a NativeDriver serves one engine, once")
        if self._containment != "process-group":
            self._cgroups = find_cgroup_root()
            if self._cgroups is None and self._containment == "cgroup":
                raise InvalidArgumentError(
                    "containment='cgroup' needs root and a cgroup v1 freezer hierarchy "
                    "(/sys/fs/cgroup/freezer); use 'auto' to fall back to process groups"
                )
        self._subreaper.acquire()
        self._task_group = task_group
        self._dispatcher.start(task_group, self._multiplexer.run)

    def check_spec(self, spec: ContainerSpec) -> None:
        limits = {
            "memory": spec.memory,
            "pids_limit": spec.pids_limit,
            "cpu_shares": spec.cpu_shares,
            "cpus": spec.cpus,
        }
        given = [name for name, value in limits.items() if value is not None]
        if spec.network == "none":
            given.append("network='none'")
        if spec.user not in {None, "root", "0", "0:0"}:
            given.append(f"user={spec.user!r}")
        if given:
            raise InvalidArgumentError(
                f"the native driver cannot apply {', '.join(given)}: it runs the process "
                "as this process's user, on the host's network, without limits; use an OCI "
                "runtime (runtime='runc')"
            )
        if spec.rootfs is not None:
            if os.geteuid() != 0:
                raise InvalidArgumentError(
                    "the native driver runs a container on an image's root filesystem only as "
                    "root (it chroots the process into it); run as root, or use an OCI runtime"
                )
            if shutil.which("unshare") is None:
                raise InvalidArgumentError(
                    "the native driver needs util-linux's unshare to chroot into an image"
                )

    @contextmanager
    def starting(self) -> Iterator[None]:
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

    async def spawn(
        self,
        spec: ContainerSpec,
        *,
        environment: Mapping[str, str] | None,
        output: OutputSink,
        on_exit: Callable[[], None],
    ) -> SupervisedProcess:
        """Fork and exec ``spec.command`` and supervise it (see ``RuntimeDriver.spawn``)."""
        task_group = self._task_group
        if task_group is None:
            raise RuntimeError("the driver has not been opened (Engine.__aenter__ opens it)")
        argv, cwd = spec.command, spec.cwd
        if spec.rootfs is not None:
            # chroot for real, in the child: util-linux's unshare with no namespace flags only
            # changes root and working directory, then execs the command (the same PID).
            _check_executable(spec.rootfs, spec.command[0], environment)
            argv = ("unshare", f"--root={spec.rootfs}", f"--wd={spec.cwd or '/'}", "--", *argv)
            cwd = None
        try:
            cgroup = None if self._cgroups is None else self._cgroups.new(spec.hostname or "")
        except OSError as error:
            raise SpawnFailure(f"cannot make the container's cgroup: {error}", 125) from None
        try:
            process = await SupervisedProcess.spawn(
                argv,
                env=environment,
                cwd=cwd,
                inherit_stdin=spec.interactive,
                capture_output=spec.capture_output,
                in_thread=self._spawn_in_thread(),
                cgroup=cgroup,
                known=self._mains,
            )
        except BaseException:
            if cgroup is not None:
                cgroup.remove()
            raise
        self._spawn_seconds += (process.spawn_seconds - self._spawn_seconds) * SPAWN_AVERAGE_WEIGHT
        self._mains.add(process.pid)
        self._supervise(task_group, process, output, on_exit)
        return process

    def _supervise(
        self,
        task_group: TaskGroup,
        process: SupervisedProcess,
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
            self._mains.discard(process.pid)
            if process.try_complete_exit_now():
                process.close()
                on_exit()
            else:  # leftovers to wait for, or output still coming: in a task
                self._watchers.start(task_group, self._complete_exit, process, on_exit)

        multiplexer.watch(pidfd, exited)
        if process.output_fds is not None:
            multiplexer.watch_outputs(process.output_fds, output, process.output_closed)

    async def _complete_exit(self, process: SupervisedProcess, on_exit: Callable[[], None]) -> None:
        try:
            await process.complete_exit()
            if process.exited:
                on_exit()
        finally:
            process.close()

    async def probe(
        self,
        handle: RuntimeHandle,
        spec: ContainerSpec,
        argv: Sequence[str],
        *,
        environment: Mapping[str, str] | None,
        timeout: float,
    ) -> tuple[int, bytes]:
        """Beside the container's process: its environment, working directory and root."""
        command, cwd = tuple(argv), spec.cwd
        if spec.rootfs is not None:
            command = (
                "unshare",
                f"--root={spec.rootfs}",
                f"--wd={spec.cwd or '/'}",
                "--",
                *command,
            )
            cwd = None
        return await run_probe(command, env=environment, cwd=cwd, timeout=timeout)

    async def release_leftovers(
        self, container_id: str, *, pid: int | None, start_time: int | None
    ) -> None:
        """What a dead engine left of a container: its processes die (a native process is
        never adopted: its exit status went with its parent), its cgroup goes.

        As root every process of it is found by its cgroup (named by the short id,
        so also one spawned just before the engine died, before any record of it);
        without cgroups only the process group of the main process the journal
        knew (``pid`` with its ``start_time``) can be found: a process that left
        that group before the crash is out of reach (README, "Restore").
        """
        short_id = truncate_id(container_id)
        if self._cgroups is not None:
            for cgroup in self._cgroups.leftovers(short_id):
                await _empty_and_remove(cgroup)
        if pid is None or start_time is None or procfs.start_time(pid) != start_time:
            return
        stat = procfs.read_stat(pid)
        if stat is None or stat.pgrp != pid or stat.state in procfs.GONE_STATES:
            return  # gone already (its cgroup's kill), or not the group leader we started
        get_logger().warning("killing what a dead engine left", container_id=short_id, pid=pid)
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        if not await poll_until(lambda: _gone(pid, start_time), LEFTOVER_TIMEOUT):
            get_logger().error("a left-over process does not die", container_id=short_id, pid=pid)

    def detach(self, handle: RuntimeHandle) -> bool:
        """Never: the process is our child, and its exit status would go with us."""
        del handle
        return False

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
        """Nothing to adopt: a native run ends with the engine that ran it."""
        del container_id, pid, start_time, capture_output, output, on_exit
        return None

    async def aclose(self, grace: float) -> None:
        # Every stop has reaped its process; give any other watcher a moment,
        # then end the rest (their processes are not ours to wait for any more).
        await self._watchers.wait_all(grace)
        self._watchers.cancel_all()
        self._dispatcher.cancel_all()
        await self._dispatcher.wait_all(grace)
        self._multiplexer.close()
        if self._cgroups is not None:
            self._cgroups.close()
        self._subreaper.release()


def _gone(pid: int, start_time: int) -> bool:
    """Whether that process is no more (reaped, or a zombie its new parent will reap)."""
    if procfs.start_time(pid) != start_time:
        return True
    stat = procfs.read_stat(pid)
    return stat is None or stat.state in procfs.GONE_STATES


async def _empty_and_remove(cgroup: Cgroup) -> None:
    """SIGKILL every member (thawed, so a frozen one can die), wait until none is left,
    remove the cgroup. Logged, never raised, if that does not happen in time."""
    get_logger().warning("killing what a dead engine left", cgroup=repr(cgroup))
    cgroup.signal_members(signal.SIGKILL)
    cgroup.thaw()

    def emptied() -> bool:
        cgroup.signal_members(signal.SIGKILL)  # one forked meanwhile
        return not cgroup.members()

    if not await poll_until(emptied, LEFTOVER_TIMEOUT) or not cgroup.remove():
        get_logger().error("a left-over cgroup cannot be emptied", cgroup=repr(cgroup))


def _check_executable(rootfs: str, executable: str, environment: Mapping[str, str] | None) -> None:
    """SpawnFailure 127 if ``executable`` is nowhere in the image (as exec would find it).

    Looked up without following links on the host (an absolute link in the
    image means the image's path, not ours).
    """
    if "/" in executable:
        candidates = [executable]
    else:
        path = (environment or {}).get("PATH", DEFAULT_PATH)
        candidates = [posixpath.join(directory or ".", executable) for directory in path.split(":")]
    for candidate in candidates:
        if os.path.lexists(os.path.join(rootfs, candidate.lstrip("/"))):
            return
    raise SpawnFailure(f"executable file {executable!r} not found in the image", 127)
