"""One run of an OCI container: its PID 1, watched through a pidfd, reaped by us.

The engine is a child subreaper, so when ``runc create`` exits, the
container's PID 1 (runc's init, which execs the command at ``start``) is
re-parented to it: its exit is ours to ``waitid(P_PIDFD)``, event driven.
When PID 1 dies the kernel kills every other process of its PID namespace
and PID 1's exit completes only after they are gone (``zap_pid_ns_processes``),
so once it is reaped nothing of the container runs; the cgroup's
``cgroup.procs`` confirms it.

With ``live_restore`` PID 1 is the child of its monitor (``_monitored.py``)
instead, which outlives the engine: the exit is still PID 1's pidfd turning
readable, and the exit code is the one the monitor wrote once it has exited.

Signals go to PID 1 through its pidfd, as ``docker kill`` and ``docker
stop`` send them: PID 1 ignores signals it has no handler for, so a stop
escalates to SIGKILL at the timeout, as in Docker. Pause is the runtime's
(``runc pause``: the cgroup freezer), confirmed ``FROZEN``.
"""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path
from typing import Final, final

import anyio

from lifecycle._polling import poll_until
from lifecycle.containment import Cgroup, pidfd_exited, procfs, reap
from lifecycle.runtime.oci._monitored import Monitor
from lifecycle.runtime.oci._runtime import Runtime, RuntimeCommandError

__all__ = ["OciProcess"]

# After PID 1's reap: how long the cgroup may take to show empty, and the output pipes EOF.
LEFTOVER_TIMEOUT: Final = 5.0
OUTPUT_DRAIN_TIMEOUT: Final = 2.0


@final
class OciProcess:
    """The ``RuntimeHandle`` of one OCI container run (created, started, until deleted)."""

    __slots__ = (
        "_exited",
        "_freezer",
        "_memory",
        "_monitor",
        "_open_outputs",
        "_outputs_closed",
        "_pidfd",
        "_reaped",
        "_runtime",
        "bundle",
        "exit_code",
        "oom_killed",
        "output_fds",
        "pid",
        "runtime_id",
        "start_time",
    )

    def __init__(
        self,
        runtime: Runtime,
        runtime_id: str,
        bundle: Path,
        pid: int,
        pidfd: int,
        *,
        output_fds: tuple[int, int] | None,
        freezer: Cgroup,
        memory: Path | None,
        monitor: Monitor | None = None,
    ) -> None:
        self._runtime = runtime
        self.runtime_id = runtime_id
        self.bundle = bundle
        self.pid = pid
        self._pidfd: int | None = pidfd
        # Read while the pidfd holds the PID (a journal keeps it beside the pid).
        self.start_time = procfs.start_time(pid)
        self.output_fds = output_fds
        self._open_outputs = 0 if output_fds is None else len(output_fds)
        self._outputs_closed = anyio.Event()
        self._freezer = freezer
        self._memory = memory
        self._monitor = monitor
        self._reaped = False
        self._exited = anyio.Event()
        self.exit_code: int | None = None
        # Docker's State.OOMKilled: the memory cgroup's OOM killer fired in this run.
        self.oom_killed = False

    def __repr__(self) -> str:
        state = "running" if self.exit_code is None else f"exited with {self.exit_code}"
        return f"<OciProcess {self.runtime_id} pid {self.pid} {state}>"

    @property
    def pidfd(self) -> int | None:
        return self._pidfd

    @property
    def monitored(self) -> bool:
        """Whether PID 1's parent is a monitor that outlives the engine (``live_restore``)."""
        return self._monitor is not None

    @property
    def exited(self) -> bool:
        return self._exited.is_set()

    def output_closed(self) -> None:
        """A reader reached EOF (or gave up) on one of the output pipes."""
        self._open_outputs -= 1
        if self._open_outputs <= 0:
            self._outputs_closed.set()

    async def wait(self) -> int:
        """Wait until the exit is complete; return the exit code. Cancellable."""
        await self._exited.wait()
        if self.exit_code is None:  # pragma: no cover -- set before the event
            raise RuntimeError("exit event set without an exit code")
        return self.exit_code

    def has_exited_now(self) -> bool:
        return self._pidfd is None or pidfd_exited(self._pidfd)

    def stopped_now(self) -> bool:
        if self._freezer.freezer_state() not in {"THAWED", "GONE"}:
            return True
        stat = procfs.read_stat(self.pid)
        return stat is not None and stat.state == "T"

    def signal(self, sig: signal.Signals) -> bool:
        """Send ``sig`` to PID 1 (through its pidfd: never another process); a SIGKILL to a
        frozen container thaws it too (frozen tasks of cgroup v1 die only when thawed)."""
        pidfd = self._pidfd
        if pidfd is None or self._reaped:
            return False
        try:
            signal.pidfd_send_signal(pidfd, sig)
        except ProcessLookupError:
            return False
        if sig is signal.SIGKILL and self._freezer.freezer_state() not in {"THAWED", "GONE"}:
            self._freezer.thaw()
        return True

    def kill_member(self, pid: int) -> None:
        """SIGKILL ``pid`` if it is a process of this container (a reused pid is never hit)."""
        self._freezer.signal_member(pid, signal.SIGKILL)

    def frozen_now(self) -> bool | None:
        """Frozen (``FROZEN``), or every process stopped by a signal; None once exited."""
        if self._reaped:
            return None
        main = procfs.read_stat(self.pid)
        if main is None or main.state in procfs.GONE_STATES:
            return None
        if self._freezer.freezer_state() == "FROZEN":
            return True
        if not procfs.is_held_stopped(main):
            return False
        for member in self._freezer.members():
            stat = procfs.read_stat(member)
            if stat is not None and not procfs.is_held_stopped(stat):
                return False
        return True

    async def freeze(self, timeout: float) -> bool | None:
        """``runc pause``, confirmed ``FROZEN``; False (resumed) on timeout; None if it exited.

        Cancellation: the container is resumed, then the cancellation propagates.
        """
        try:
            await self._runtime.run("pause", self.runtime_id)
        except RuntimeCommandError:
            if self.has_exited_now():
                return None
            raise
        answer: bool | None = False

        def settled() -> bool:
            nonlocal answer
            answer = None if self.has_exited_now() else self._freezer.freezer_state() == "FROZEN"
            return answer is not False

        try:
            await poll_until(settled, timeout)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await self.thaw()
            raise
        if answer is False:
            await self.thaw()
        return answer

    async def thaw(self) -> None:
        """``runc resume``; SIGCONT too if a process of it was stopped by a signal.

        Cancellation: it is resumed all the same (the command completes).
        """
        if self._reaped:
            return
        if self._freezer.freezer_state() not in {"THAWED", "GONE"}:
            try:
                await self._runtime.run("resume", self.runtime_id)
            except RuntimeCommandError:
                self._freezer.thaw()  # the runtime refused (gone?): the freezer directly
        for pid in [self.pid, *self._freezer.members()]:
            stat = procfs.read_stat(pid)
            if stat is not None and stat.state == "T":
                self.signal(signal.SIGCONT)
                break

    def _reap(self) -> None:
        pidfd = self._pidfd
        if pidfd is None or self._reaped:
            return
        if self._monitor is None:
            self.exit_code, _ = reap(pidfd)  # 255 if not re-parented to us (no subreaper?)
        else:
            self.exit_code = self._monitor.exit_code(self.pid, self.start_time)
        self._reaped = True
        self.oom_killed = self._oom_kills() > 0
        self.close()

    def _oom_kills(self) -> int:
        """The memory cgroup's ``oom_kill`` count (``memory.oom_control``, Linux >= 4.13)."""
        if self._memory is None:
            return 0
        with contextlib.suppress(OSError, ValueError):
            for line in (self._memory / "memory.oom_control").read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill":
                    return int(value)
        return 0

    def try_complete_exit_now(self) -> bool:
        """After the pidfd turned readable: reap PID 1; True if the exit is complete now."""
        if self._monitor is not None and not self._monitor.exited_now():
            return False  # it is reaping PID 1 and writing the exit file
        self._reap()
        if self._freezer.members():
            return False
        if self.output_fds is not None and not self._outputs_closed.is_set():
            return False
        self._exited.set()
        return True

    async def collect_exit_code(self) -> None:
        """Once PID 1 has exited: reap it, or wait for its monitor to (``exit_code`` set)."""
        if self._monitor is not None:
            await self._monitor.wait(LEFTOVER_TIMEOUT)
        self._reap()

    async def complete_exit(self) -> None:
        """Wait until the cgroup is empty and the output is drained, then complete the exit."""
        await self.collect_exit_code()
        await poll_until(lambda: not self._freezer.members(), LEFTOVER_TIMEOUT)
        if self.output_fds is not None:
            with anyio.move_on_after(OUTPUT_DRAIN_TIMEOUT):
                await self._outputs_closed.wait()
        self._exited.set()

    def close(self) -> None:
        """Release the pidfds (idempotent). The runtime's state is the driver's to delete."""
        pidfd, self._pidfd = self._pidfd, None
        if pidfd is not None:
            os.close(pidfd)
        if self._monitor is not None:
            self._monitor.close()
