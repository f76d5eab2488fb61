"""One supervised child process: spawn, signal, wait, reap.

The child runs in its own session and process group (``setsid``), so a
signal to the group reaches everything it started. Its exit is observed
through a pidfd (``os.pidfd_open``, Linux >= 5.3), which becomes readable
when the process exits -- event driven, no polling loop.

Ordering that keeps signals safe (DESIGN.md, "Known traps"):

1. The pidfd turns readable: the main process has exited but is not reaped.
   As a zombie it keeps its PID, and with it the process group id, reserved.
2. Everything left in the group is SIGKILLed (a container stops when its
   PID 1 stops) while the zombie still reserves the group id.
3. Then the main process is reaped (``waitid(P_PIDFD)``), and from that
   moment no signal is sent to its group again: after the reap the number
   could belong to a new, unrelated process group. What follows only looks:
   signal 0 asks whether any member is left (almost never: done), and if so
   ``/proc`` is scanned until the SIGKILLed leftovers are gone. The exit is
   announced only then, so a container is stopped only when no process of
   its group remains.

Everything here runs on the event loop thread, so "not yet reaped" cannot
change between the check and the ``killpg`` that follows it. The one
exception is the fork and exec itself (``_start_child``), which may run in a
worker thread: until it returns, nobody else knows the process.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from typing import Final, final

import anyio
import anyio.to_thread

from lifecycle._polling import poll_until
from lifecycle.containment import Cgroup, pidfd_exited, procfs, reap, reap_exited
from lifecycle.runtime import SpawnFailure

__all__ = ["SupervisedProcess"]

# How long to wait, after the reap, for SIGKILLed leftovers of the group to die
# before announcing the exit anyway (only uninterruptible sleep takes long).
LEFTOVER_TIMEOUT: Final = 5.0
# After the reap, how long to wait for the output pipes to reach EOF (they
# stay open only if a process escaped the group and still holds them).
OUTPUT_DRAIN_TIMEOUT: Final = 2.0
# A freezer still FREEZING after this many looks is thawed and frozen again.
FREEZE_RETRY_LOOKS: Final = 10

# Not the command's fault: this process ran out of something. Exit code 125,
# what docker run returns when the failure is Docker's own.
_RESOURCE_ERRNOS: Final = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.EAGAIN})
RESOURCE_EXIT_CODE: Final = 125


def _resource_failure(error: OSError, doing: str) -> SpawnFailure:
    name = errno.errorcode.get(error.errno or 0, "?")
    return SpawnFailure(
        f"{os.strerror(error.errno or 0).lower()} ({name}) while {doing}; "
        "nothing was started (raise the limit or stop some containers)",
        RESOURCE_EXIT_CODE,
    )


def _spawn_failure(error: OSError, argv: Sequence[str], cwd: str | None) -> SpawnFailure:
    if error.errno in _RESOURCE_ERRNOS:
        return _resource_failure(error, f"starting {argv[0]!r}")
    # The shell's convention, which moby's daemon/start.go follows too:
    # "no such file or directory" -> 127, anything else that stops exec -> 126.
    code = 127 if error.errno == errno.ENOENT else 126
    reason = os.strerror(error.errno) if error.errno else str(error)
    if cwd is not None and error.filename == cwd:
        return SpawnFailure(f"working directory {cwd!r}: {reason.lower()}", code)
    executable = error.filename if isinstance(error.filename, str) else argv[0]
    if error.errno == errno.ENOENT:
        return SpawnFailure(f"executable file {executable!r} not found", code)
    return SpawnFailure(f"cannot execute {executable!r}: {reason.lower()}", code)


def _start_child(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None,
    cwd: str | None,
    inherit_stdin: bool,
    capture_output: bool,
    cgroup: Cgroup | None,
) -> tuple[subprocess.Popen[bytes], int, tuple[int, int] | None, float]:
    """Fork and exec ``argv``: the Popen, its pidfd, the output pipes' read ends, and
    how many seconds the fork and exec took (the parent waits for the exec).

    With ``cgroup``, the child is born in it (the calling thread moves in
    for the fork: ``Cgroup.placing``). Touches nothing shared, so any thread
    may call it. The pipes are created close-on-exec, so a child spawned
    meanwhile by another thread inherits none of them.
    """
    if cwd is not None and not os.path.isdir(cwd):
        reason = "not a directory" if os.path.exists(cwd) else "no such directory"
        raise SpawnFailure(f"working directory {cwd!r}: {reason}", 127)
    pipes = _output_pipes() if capture_output else []
    started = time.perf_counter()
    home = None
    if cgroup is not None:
        try:
            home = cgroup.enter_thread()
        except OSError as error:
            _close_pipes(pipes)
            raise _resource_failure(error, "moving into the container's cgroup") from None
    try:
        popen = subprocess.Popen(
            list(argv),
            env=None if env is None else dict(env),
            cwd=cwd,
            stdin=None if inherit_stdin else subprocess.DEVNULL,
            stdout=pipes[0][1] if pipes else None,
            stderr=pipes[1][1] if pipes else None,
            start_new_session=True,  # own session and process group: setsid()
            close_fds=True,
            restore_signals=True,
        )
    except BaseException as error:
        # Whatever stopped it (an exec error, or an argument Popen could not
        # convert), the pipes go too: a failed start leaves nothing open.
        _close_pipes(pipes)
        if isinstance(error, OSError):
            raise _spawn_failure(error, argv, cwd) from None
        raise
    finally:
        if cgroup is not None and home is not None:
            _leave_cgroup(cgroup, home, pipes)
    for _, write_end in pipes:  # the child has its copies; EOF comes when it exits
        os.close(write_end)
    try:
        pidfd = os.pidfd_open(popen.pid)
    except OSError as error:
        # Out of descriptors, or no pidfd at all (kernel < 5.3): we cannot
        # supervise it safely, so it must not outlive this call.
        os.killpg(popen.pid, signal.SIGKILL)
        popen.wait()
        for read_end, _ in pipes:
            os.close(read_end)
        if error.errno in _RESOURCE_ERRNOS:
            raise _resource_failure(error, "opening a pidfd") from None
        raise
    took = time.perf_counter() - started
    return popen, pidfd, (pipes[0][0], pipes[1][0]) if pipes else None, took


def _output_pipes() -> list[tuple[int, int]]:
    """Two close-on-exec pipes, (read end, write end), for stdout and stderr."""
    pipes: list[tuple[int, int]] = []
    try:
        pipes.append(os.pipe2(os.O_CLOEXEC))
        pipes.append(os.pipe2(os.O_CLOEXEC))
    except OSError as error:
        _close_pipes(pipes)
        raise _resource_failure(error, "creating the output pipes") from None
    return pipes


def _close_pipes(pipes: list[tuple[int, int]]) -> None:
    for read_end, write_end in pipes:
        os.close(read_end)
        os.close(write_end)
    pipes.clear()


def _leave_cgroup(cgroup: Cgroup, home: dict[str, str], pipes: list[tuple[int, int]]) -> None:
    """Move the spawning thread back home; if that fails, the spawn fails (nothing left)."""
    try:
        cgroup.leave_thread(home)
    except OSError as error:
        # Never leave a thread of ours in a cgroup that gets frozen and killed: the
        # container's processes are killed and the start reported as the engine's failure.
        cgroup.signal_members(signal.SIGKILL)
        _close_pipes(pipes)
        raise _resource_failure(error, "moving back from the container's cgroup") from None


@final
class SupervisedProcess:
    """A child in its own session and process group, observed through a pidfd.

    The native driver's ``RuntimeHandle``. No public constructor: use
    ``SupervisedProcess.spawn``. When ``pidfd`` turns readable, call
    ``try_complete_exit_now()``; if it returns False, call
    ``complete_exit()`` in a task that outlives every caller waiting for the
    exit (the driver runs it shielded).

    The container is the process group, or with a ``cgroup`` (root) the
    cgroup's processes, which include any that left the group (``setsid``,
    ``setpgid``): signals reach them, pause freezes them, the exit kills
    them. The cgroup is removed once the exit is complete.
    """

    __slots__ = (
        "_cgroup",
        "_exited",
        "_known",
        "_open_outputs",
        "_outputs_closed",
        "_pidfd",
        "_popen",
        "_reaped",
        "_signalled",
        "exit_code",
        "output_fds",
        "pid",
        "spawn_seconds",
        "start_time",
    )

    def __init__(
        self,
        popen: subprocess.Popen[bytes],
        pidfd: int,
        output_fds: tuple[int, int] | None,
        spawn_seconds: float,
        *,
        cgroup: Cgroup | None = None,
        known: frozenset[int] | set[int] = frozenset(),
    ) -> None:
        self._popen = popen
        # How long the fork and exec took: the driver's measure of how busy the machine is.
        self.spawn_seconds = spawn_seconds
        self._pidfd: int | None = pidfd
        self._reaped = False
        self._exited = anyio.Event()
        self.pid: int = popen.pid
        # Unreaped, so the PID is still its own (a journal keeps it beside the pid).
        self.start_time = procfs.start_time(self.pid)
        self.exit_code: int | None = None
        # Read ends of the stdout and stderr pipes, for the driver's multiplexer.
        self.output_fds = output_fds
        self._open_outputs = 0 if output_fds is None else len(output_fds)
        self._outputs_closed = anyio.Event()
        self._cgroup = cgroup
        # PIDs of the processes this process started itself (the driver's live main
        # processes): among its children, the others are orphans it adopted.
        self._known = known
        # {pid: pidfd} of each cgroup member outside the group that was signalled:
        # those re-parented to us (the engine is a child subreaper) are reaped
        # through them once the container has exited.
        self._signalled: dict[int, int] = {}

    def output_closed(self) -> None:
        """A reader reached EOF (or gave up) on one of the output pipes."""
        self._open_outputs -= 1
        if self._open_outputs <= 0:
            self._outputs_closed.set()

    def __repr__(self) -> str:
        if self.exit_code is not None:
            return f"<SupervisedProcess {self.pid} exited with {self.exit_code}>"
        return f"<SupervisedProcess {self.pid} running>"

    @classmethod
    async def spawn(
        cls,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None,
        cwd: str | None,
        inherit_stdin: bool = False,
        capture_output: bool = False,
        in_thread: bool = False,
        cgroup: Cgroup | None = None,
        known: frozenset[int] | set[int] = frozenset(),
    ) -> SupervisedProcess:
        """Start ``argv`` (no shell) in a new session; return once it has exec'd.

        stdout and stderr go to pipes (``output_fds``) with ``capture_output``,
        else they are this process's; stdin is ``/dev/null`` unless
        ``inherit_stdin`` (Docker's ``-i``). With ``cgroup`` (empty, made for
        this process) the child is born in it. ``known``: the PIDs of the
        other processes this process started (see ``_members``).

        Raises ``SpawnFailure`` (127 not found, 126 not executable, 125 when
        this process is out of descriptors, memory or processes) when the
        start fails; nothing is left running or open then.

        Without ``in_thread`` it forks on the calling (event loop) thread and
        never yields: a few hundred microseconds on an idle machine, less than
        a hop to a worker thread. But the parent of a fork waits until its
        child has exec'd (CPython uses vfork), and on a busy machine that
        grows to milliseconds during which no other task runs; ``in_thread``
        forks in a worker thread instead, so several spawns overlap (trio's
        own ``open_process`` always does). Cancellation: shielded -- the spawn
        completes and the process is returned; the caller sees the
        cancellation at its next checkpoint.
        """
        start = functools.partial(
            _start_child,
            argv,
            env=env,
            cwd=cwd,
            inherit_stdin=inherit_stdin,
            capture_output=capture_output,
            cgroup=cgroup,
        )
        if not in_thread:
            child = start()
        else:
            with anyio.CancelScope(shield=True):
                child = await anyio.to_thread.run_sync(start)
        return cls(*child, cgroup=cgroup, known=known)

    @property
    def exited(self) -> bool:
        """True once the process has exited and been reaped (``exit_code`` is set)."""
        return self._exited.is_set()

    @property
    def oom_killed(self) -> bool:
        """Always False: the native driver sets no memory limit."""
        return False

    @property
    def cgroup(self) -> Cgroup | None:
        """The container's cgroup (None: the process group is the container)."""
        return self._cgroup

    def has_exited_now(self) -> bool:
        """Whether the main process has exited, reaped or not (a non-blocking look at the pidfd)."""
        return self._pidfd is None or pidfd_exited(self._pidfd)

    def stopped_now(self) -> bool:
        """Whether the main process cannot run now: stopped (T) by anyone, or its cgroup frozen."""
        if self._cgroup is not None and self._cgroup.freezer_state() != "THAWED":
            return True
        stat = procfs.read_stat(self.pid)
        return stat is not None and stat.state == "T"

    def signal(self, sig: signal.Signals) -> bool:
        """Send ``sig`` to every process of the container; False if none was there to get it.

        The process group (``killpg``), and with a cgroup every member that
        left the group too (through checked pidfds). Never signals after the
        reap (the group id may have been recycled). A SIGKILL to a frozen
        cgroup thaws it: frozen tasks of cgroup v1 die only when thawed
        (runc's kill does the same).
        """
        if self._reaped:
            return False
        try:
            os.killpg(self.pid, sig)
            received = True
        except ProcessLookupError:
            received = False
        cgroup = self._cgroup
        if cgroup is not None:
            sent = cgroup.signal_members(sig, skip_group=self.pid, keep=self._signalled)
            received = sent > 0 or received
            if sig is signal.SIGKILL and cgroup.freezer_state() != "THAWED":
                cgroup.thaw()
        return received

    async def wait(self) -> int:
        """Wait until the process has exited and been reaped; return its exit code.

        Cancellable; cancelling the wait does not affect the process.
        """
        await self._exited.wait()
        if self.exit_code is None:  # pragma: no cover -- set before the event
            raise RuntimeError("exit event set without an exit code")
        return self.exit_code

    def _members(self) -> list[int]:
        """Every live process of the container but the main one (cgroup, else process group).

        A group member whose parent exited is no descendant of the main
        process any more; the engine is a child subreaper, so it was adopted
        by this process: the group is the main process's descendants plus
        the adopted children in the group and theirs, found without a scan
        of all of ``/proc``.
        """
        if self._cgroup is not None:
            return [pid for pid in self._cgroup.members() if pid != self.pid]
        candidates = procfs.descendants(self.pid)
        for adopted in procfs.adopted_children(self._known):
            stat = procfs.read_stat(adopted)
            if stat is not None and stat.pgrp == self.pid:
                candidates.append(adopted)
                candidates.extend(procfs.descendants(adopted))
        members = []
        for pid in candidates:
            stat = procfs.read_stat(pid)
            if stat is not None and stat.pgrp == self.pid and stat.state not in procfs.GONE_STATES:
                members.append(pid)
        return members

    def _group_stopped(self) -> bool | None:
        """True if every process of the container is stopped or frozen; None if it exited."""
        main = procfs.read_stat(self.pid)
        if main is None or main.state in procfs.GONE_STATES:
            return None
        if self._cgroup is not None and self._cgroup.freezer_state() == "FROZEN":
            return True
        if not procfs.is_held_stopped(main):
            return False  # the common answer, for one stat read
        for member in self._members():
            stat = procfs.read_stat(member)
            if stat is not None and not procfs.is_held_stopped(stat):
                return False
        return True

    def frozen_now(self) -> bool | None:
        """Whether the container is stopped right now (as ``pause`` requires); None once exited.

        A look at ``/proc`` (and the freezer) that is safe from PID reuse only
        before the reap, which happens on the event loop's thread: call it there.
        """
        if self._reaped:
            return None
        return self._group_stopped()

    async def freeze(self, timeout: float) -> bool | None:
        """Stop every process of the container; return once that is confirmed.

        With a cgroup: the freezer, confirmed when ``freezer.state`` reads
        ``FROZEN`` (Docker's pause). Without: SIGSTOP to the group, confirmed
        when ``/proc`` shows every member stopped (state ``T``); SIGSTOP takes
        effect asynchronously, hence the look (DESIGN.md, "Known traps").
        Returns True when frozen; False on timeout (thawed again); None if
        the process exited meanwhile. Cancellation: the container is thawed
        (at once), then the cancellation propagates.
        """
        cgroup = self._cgroup
        if cgroup is not None:
            cgroup.freeze()
        else:
            self.signal(signal.SIGSTOP)
        answer: bool | None = False
        looks = 0

        def settled() -> bool:
            nonlocal answer, looks
            if cgroup is None:
                answer = self._group_stopped()
            elif self.has_exited_now():
                answer = None
            else:
                answer = cgroup.freezer_state() == "FROZEN"
                looks += 1
                if not answer and looks % FREEZE_RETRY_LOOKS == 0:
                    # Stuck in FREEZING (processes appearing while it freezes):
                    # thaw and freeze again, as runc does (libcontainer fs/freezer.go).
                    cgroup.thaw()
                    cgroup.freeze()
            return answer is not False

        try:
            await poll_until(settled, timeout)
        except BaseException:
            self._resume()
            raise
        if answer is False:
            self._resume()
        return answer

    async def thaw(self) -> None:
        """Let every process run again; it takes effect at once (no checkpoint).

        Thaws the cgroup, and SIGCONTs the group if any process of it is
        stopped by a signal (a stop from outside); a container only frozen
        gets no SIGCONT, as in Docker.
        """
        self._resume()

    def _resume(self) -> None:
        cgroup = self._cgroup
        if cgroup is None:
            self.signal(signal.SIGCONT)
            return
        cgroup.thaw()
        if self._reaped:
            return
        for pid in [self.pid, *self._members()]:
            stat = procfs.read_stat(pid)
            if stat is not None and stat.state == "T":
                self.signal(signal.SIGCONT)
                return

    @property
    def pidfd(self) -> int | None:
        """The pidfd (readable once the process has exited); None once closed."""
        return self._pidfd

    def _reap_once(self) -> None:
        pidfd = self._pidfd
        if pidfd is None or self._reaped:
            return
        # The zombie still holds the group id: killing the group is safe.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)
        self._kill_cgroup_members()
        self._reap(pidfd)

    def _kill_cgroup_members(self) -> None:
        """SIGKILL every member of the cgroup (safe after the reap: pidfds checked against it)."""
        cgroup = self._cgroup
        if cgroup is not None and cgroup.signal_members(signal.SIGKILL, keep=self._signalled):
            cgroup.thaw()  # frozen tasks of cgroup v1 die only when thawed

    def try_complete_exit_now(self) -> bool:
        """After the pidfd turned readable: SIGKILL what is left of the container, reap.

        If nothing of it is left (no member of the process group, none of the
        cgroup, no zombie of it waiting for us) and the output pipes are
        already at end of stream (the common case), the exit is complete:
        ``exit_code`` is set, the cgroup removed, ``wait()`` wakes, and this
        returns True with no await at all. Otherwise it returns False and
        ``complete_exit()`` must finish.
        """
        self._reap_once()
        if not self._reaped or self._group_may_have_members():
            return False
        if self._cgroup is not None and (self._signalled or self._cgroup.members()):
            return False  # members were killed: wait for them, then reap those that are ours
        if self.output_fds is not None and not self._outputs_closed.is_set():
            return False
        if self._cgroup is not None and not self._cgroup.remove():
            return False
        self._exited.set()
        return True

    async def complete_exit(self) -> None:
        """Finish what ``try_complete_exit_now`` could not: wait for leftovers and output.

        After the reap nothing is signalled through the process group. A
        cgroup's members are SIGKILLed (again, in case one forked meanwhile)
        until none is left; a group's SIGKILLed leftovers are waited for. Then
        the zombies among them that were re-parented to us are reaped, and
        the output pipes are waited for, so whatever was written last is read
        before anyone hears of the exit; last, the cgroup is removed. Call it
        shielded.
        """
        self._reap_once()

        def gone() -> bool:
            self._kill_cgroup_members()
            if self._cgroup is not None:
                return not self._members()
            # A full scan: while the group dies, its members are being re-parented.
            return not procfs.group_members(self.pid, exclude=self.pid)

        group_left = self._group_may_have_members()
        if self._cgroup is not None or group_left:
            await poll_until(gone, LEFTOVER_TIMEOUT)
        self._reap_leftovers(scan_children=group_left)
        if self.output_fds is not None:
            with anyio.move_on_after(OUTPUT_DRAIN_TIMEOUT):
                await self._outputs_closed.wait()
        if self._cgroup is not None:
            await poll_until(self._cgroup.remove, LEFTOVER_TIMEOUT)
        self._exited.set()

    def _reap_leftovers(self, *, scan_children: bool) -> None:
        """Reap the zombies of the container that are our children (orphans come to us).

        ``scan_children``: its process group had members besides the main process, so
        some may be zombies re-parented to us; they are found among all our children,
        a stat each: O(fleet), so only then (issue 20: every exit paid it).
        """
        reap_exited(self._signalled)
        if not scan_children:
            return
        for pid in procfs.zombie_children(os.getpid()):
            stat = procfs.read_stat(pid)
            if stat is not None and stat.pgrp == self.pid:
                with contextlib.suppress(OSError):
                    pidfd = os.pidfd_open(pid)
                    try:
                        os.waitid(os.P_PIDFD, pidfd, os.WEXITED | os.WNOHANG)
                    finally:
                        os.close(pidfd)

    def _group_may_have_members(self) -> bool:
        # Signal 0 after the reap sends nothing; ESRCH means no member is left,
        # not even a zombie (no /proc scan needed, ~0.6 ms saved on most exits).
        try:
            os.killpg(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:  # pragma: no cover -- a member changed its credentials
            return True
        return True

    def _reap(self, pidfd: int) -> None:
        self.exit_code, killed_by = reap(pidfd)
        self._popen.returncode = self.exit_code if killed_by is None else -killed_by
        # Popen now knows the child is gone: its finaliser will not waitpid a
        # PID that may already belong to somebody else.
        self._reaped = True
        self._close_pidfd()

    def _close_pidfd(self) -> None:
        pidfd, self._pidfd = self._pidfd, None
        if pidfd is not None:
            os.close(pidfd)  # NB: the driver's Multiplexer must have forgotten it first

    def close(self) -> None:
        """Release the pidfds held (idempotent). Does not touch the processes."""
        self._close_pidfd()
        signalled, self._signalled = self._signalled, {}
        for pidfd in signalled.values():
            os.close(pidfd)
