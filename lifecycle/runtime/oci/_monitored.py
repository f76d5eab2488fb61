"""The engine's side of the monitor (``_monitor.py``): start it, watch it, read its exit file.

With ``live_restore`` a container's PID 1 is the monitor's child, not the
engine's, so its exit status survives the engine: the monitor reaps PID 1 and
writes the exit file before it exits. The engine knows the monitor by a pidfd
(its own child when this engine started it; anyone's after an adoption) and
takes the exit code from the file once the monitor has exited.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from pathlib import Path
from typing import Final, final

import anyio

from lifecycle.containment import UNKNOWN_EXIT_CODE, pidfd_exited, readable_within
from lifecycle.runtime import SpawnFailure
from lifecycle.runtime.oci._runtime import COMMAND_TIMEOUT, Runtime, create_failure, last_error

__all__ = [
    "MONITOR_EXIT_TIMEOUT",
    "MONITOR_PROGRAM",
    "Monitor",
    "read_exit_file",
    "start_monitored",
]

MONITOR_PROGRAM: Final = Path(__file__).with_name("_monitor.py")
# How long the monitor may take to exit after PID 1 did (it reaps, writes a line, exits).
MONITOR_EXIT_TIMEOUT: Final = 5.0


@final
class Monitor:
    """One container's monitor process, known by a pidfd."""

    __slots__ = ("_pidfd", "exit_file", "pid")

    def __init__(self, pid: int, pidfd: int, exit_file: Path) -> None:
        self.pid = pid
        self._pidfd: int | None = pidfd
        self.exit_file = exit_file

    def __repr__(self) -> str:
        return f"<Monitor pid {self.pid} {self.exit_file.name}>"

    def exited_now(self) -> bool:
        return self._pidfd is None or pidfd_exited(self._pidfd)

    async def wait(self, timeout: float) -> None:
        """Until the monitor exited, or ``timeout`` seconds. Cancellable."""
        if self._pidfd is None or self.exited_now():
            return
        with anyio.move_on_after(timeout):
            await anyio.wait_readable(self._pidfd)

    def exit_code(self, pid: int, start_time: int | None) -> int:
        """PID 1's exit code from the exit file (which is then removed); 255 if the
        monitor died without writing it. Reaps the monitor if it is our child."""
        if self._pidfd is not None:
            with contextlib.suppress(ChildProcessError):
                os.waitid(os.P_PIDFD, self._pidfd, os.WEXITED | os.WNOHANG)
        code = read_exit_file(self.exit_file, pid, start_time)
        return UNKNOWN_EXIT_CODE if code is None else code

    def reap_blocking(self, timeout: float) -> None:
        """Wait (blocking, at most ``timeout`` s) for it to exit, reap it, close the pidfd."""
        if self._pidfd is not None:
            readable_within(self._pidfd, timeout)
            with contextlib.suppress(ChildProcessError):
                os.waitid(os.P_PIDFD, self._pidfd, os.WEXITED | os.WNOHANG)
        self.close()

    def close(self) -> None:
        pidfd, self._pidfd = self._pidfd, None
        if pidfd is not None:
            os.close(pidfd)


def read_exit_file(path: Path, pid: int, start_time: int | None) -> int | None:
    """The exit code a monitor wrote for PID 1 ``pid`` started at ``start_time``; the file
    is removed once read. None if there is none, or it is another process's."""
    try:
        fields = path.read_text(encoding="ascii").split()
    except OSError:
        return None
    path.unlink(missing_ok=True)
    if len(fields) != 3 or not fields[0].isdigit() or fields[1] != str(pid):
        return None
    if start_time is not None and fields[2] != str(start_time):
        return None  # a reused pid: another process's exit
    return int(fields[0])


def start_monitored(
    runtime: Runtime, runtime_id: str, bundle: Path, stdio: tuple[int, int], exit_file: Path
) -> tuple[int, Monitor]:
    """Start the monitor, which runs the runtime's ``create``; (PID 1's pid, the monitor).

    Blocking (call it in a worker thread). The monitor runs in a session of its own,
    so a signal to this process's group (Ctrl-C) does not reach it. Raises
    ``SpawnFailure`` (with the runtime's own message) if the container was not made,
    once the runtime's state of it is deleted and the monitor has exited.
    """
    status_read, status_write = os.pipe2(os.O_CLOEXEC)
    null = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
    argv = [
        sys.executable,
        "-I",
        "-S",
        str(MONITOR_PROGRAM),
        runtime.binary,
        str(runtime.state_root),
        str(bundle),
        runtime_id,
        str(exit_file),
    ]
    try:
        monitor_pid = os.posix_spawn(
            sys.executable,
            argv,
            os.environ,
            file_actions=[
                (os.POSIX_SPAWN_DUP2, null, 0),
                (os.POSIX_SPAWN_DUP2, stdio[0], 1),
                (os.POSIX_SPAWN_DUP2, stdio[1], 2),
                (os.POSIX_SPAWN_DUP2, status_write, 3),
            ],
            setsid=True,
        )
    except OSError as error:
        os.close(status_read)
        raise SpawnFailure(f"cannot start the container's monitor: {error.strerror}", 125) from None
    finally:
        os.close(status_write)
        os.close(null)
    monitor = Monitor(monitor_pid, os.pidfd_open(monitor_pid), exit_file)
    try:
        answer = _read_status(status_read)
    finally:
        os.close(status_read)
    if answer is None:
        os.kill(monitor_pid, signal.SIGKILL)  # our unreaped child: the pid is still its
        monitor.reap_blocking(MONITOR_EXIT_TIMEOUT)
        raise SpawnFailure(f"{runtime.binary} create did not finish in 60 s", 125)
    verdict, _, detail = answer.partition(" ")
    if verdict == "ok" and detail.isdigit():
        return int(detail), monitor
    if verdict != "error":  # it died before it could say (killed?)
        monitor.reap_blocking(MONITOR_EXIT_TIMEOUT)
        raise SpawnFailure("the container's monitor died before the container was made", 125)
    code, _, message = detail.partition(" ")
    # A PID 1 the runtime left waiting for `start` dies with the delete; then the
    # monitor, which waits for it, exits.
    runtime.delete_now(runtime_id)
    monitor.reap_blocking(MONITOR_EXIT_TIMEOUT)
    if message:
        raise SpawnFailure(message, int(code) if code.isdigit() else 125)
    raise create_failure(last_error(bundle / "runtime.log"))


def _read_status(fd: int) -> str | None:
    """The monitor's one line on fd 3 ('' if it closed it unsaid); None after the timeout."""
    data = b""
    while True:
        if not readable_within(fd, COMMAND_TIMEOUT):
            return None
        chunk = os.read(fd, 4096)
        if not chunk:
            return data.decode(errors="replace").strip()
        data += chunk
