"""Running one health probe to its end or its timeout, and leaving nothing of it behind.

The probe is a child of the engine in a session of its own, watched by a
pidfd: when it exits (or its timeout comes) its whole process group is
SIGKILLed *before* it is reaped, so the group id cannot have been reused
by then; output is read as it comes (a probe never blocks on a full pipe)
and the first ``MAX_OUTPUT_BYTES`` are kept. moby records a probe killed
at its timeout with exit code -1 (daemon/health.go).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Callable, Mapping, Sequence
from typing import Final

import anyio

from lifecycle.containment import pidfd_exited, reap
from lifecycle.model import MAX_OUTPUT_BYTES, TIMED_OUT_EXIT_CODE

__all__ = ["run_probe"]

_READ_SIZE: Final = 65536
# After the probe's group is killed, its output pipe reaches its end at once; a process
# that left the group (setsid) may hold it longer: this long, then the output is cut.
_DRAIN_TIMEOUT: Final = 1.0
# How long an OCI runtime's exec gets to reap the probe it was told about and exit.
_RUNTIME_GRACE: Final = 5.0


async def run_probe(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None,
    cwd: str | None,
    timeout: float,
    kill_also: Callable[[], None] | None = None,
) -> tuple[int, bytes]:
    """Run ``argv``; its exit code (-1 if killed at ``timeout``) and its first output bytes.

    stdout and stderr are one stream, as in moby's probe log. ``kill_also``
    kills the real probe when ``argv`` only runs it (an OCI runtime's
    ``exec`` reports its pid in a file): then ``argv`` is given time to exit
    by itself before its group is killed. Raises
    ``OSError`` if the probe cannot be started. Cancellation: the probe's
    group is killed and reaped (shielded), then the cancellation propagates.
    """
    reader, writer = os.pipe2(os.O_CLOEXEC)
    try:
        # A fork on the loop's thread (~0.3 ms): probes are seconds apart.
        process = _start(argv, env, cwd, writer)
    except BaseException:
        os.close(reader)
        raise
    finally:
        os.close(writer)
    pidfd = os.pidfd_open(process.pid)
    output = bytearray()
    finished = False
    try:
        os.set_blocking(reader, False)
        output_ended = anyio.Event()
        async with anyio.create_task_group() as group:
            group.start_soon(_collect, reader, output, output_ended)
            with anyio.move_on_after(timeout):
                await _exited(pidfd)
                finished = True
            if not finished:
                await _stop(process.pid, pidfd, kill_also)
            # Exited: the rest of its group goes now, while it is still unreaped.
            _kill_group(process.pid)
            with anyio.move_on_after(_DRAIN_TIMEOUT):
                await output_ended.wait()
            group.cancel_scope.cancel()
    finally:
        with anyio.CancelScope(shield=True):
            if not pidfd_exited(pidfd):  # cancelled: the probe goes with the cancellation
                await _stop(process.pid, pidfd, kill_also)
            _kill_group(process.pid)
            code, _ = reap(pidfd)
            process.returncode = code  # reaped here, not by Popen
            os.close(pidfd)
            os.close(reader)
    return (code if finished else TIMED_OUT_EXIT_CODE), bytes(output[:MAX_OUTPUT_BYTES])


def _start(
    argv: Sequence[str], env: Mapping[str, str] | None, cwd: str | None, output: int
) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        list(argv),
        stdin=subprocess.DEVNULL,
        stdout=output,
        stderr=output,
        env=None if env is None else dict(env),
        cwd=cwd,
        close_fds=True,
        start_new_session=True,
    )


async def _exited(pidfd: int) -> None:
    while not pidfd_exited(pidfd):
        await anyio.wait_readable(pidfd)


async def _stop(pid: int, pidfd: int, kill_also: Callable[[], None] | None) -> None:
    """End a probe that is still running. With ``kill_also`` (an OCI runtime's exec) the real
    probe is killed and the runtime, which is its parent, given time to reap it and exit by
    itself: killing the runtime first would orphan the probe to this engine (a subreaper),
    and an unreaped zombie in the container's PID namespace keeps its PID 1 from dying."""
    if kill_also is not None:
        kill_also()
        with anyio.move_on_after(_RUNTIME_GRACE):
            await _exited(pidfd)
    _kill_group(pid)
    await _exited(pidfd)


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


async def _collect(fd: int, output: bytearray, ended: anyio.Event) -> None:
    while True:
        await anyio.wait_readable(fd)
        try:
            chunk = os.read(fd, _READ_SIZE)
        except BlockingIOError:
            continue
        if not chunk:
            ended.set()
            return
        if len(output) < MAX_OUTPUT_BYTES:
            output += chunk
