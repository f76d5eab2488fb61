"""The monitor of one OCI container that may outlive its engine (``live_restore``).

Run as a program, by path (``python -I -S _monitor.py ...``), in a session of its
own: it imports only the standard library, so it starts in milliseconds and keeps
nothing of the engine. It is containerd's shim and Podman's conmon, cut to what an
engine that may die needs: someone alive to be PID 1's parent, so PID 1's exit
status is not lost when the engine is (an exit collected by init is gone).

- It becomes a child subreaper and runs ``<runtime> create``: when ``create``
  exits, PID 1 is re-parented to the monitor. The container's stdout and stderr
  are the monitor's own (the engine hands it FIFOs, see ``OciDriver``); the
  monitor lets go of them once ``create`` has returned.
- On fd 3 it tells the engine ``ok <pid>`` or ``error <runtime's exit code>``,
  then closes it.
- It reaps PID 1, writes ``<exit code> <pid> <start time>`` to the exit file
  (atomically: a reader sees all of it or nothing), reaps whatever else was
  re-parented to it, and exits. The engine watches the monitor's pidfd: the
  monitor's exit means the exit file is there (unless the monitor was killed).

Usage: ``_monitor.py RUNTIME STATE_ROOT BUNDLE RUNTIME_ID EXIT_FILE``.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

_PR_SET_CHILD_SUBREAPER = 36
_STATUS_FD = 3


def _start_time(pid: int) -> str:
    """Field 22 of ``/proc/<pid>/stat`` (after the ``)`` that ends the command name)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            fields = stat.read().rpartition(b")")[2].split()
    except OSError:
        return "-"
    return fields[19].decode() if len(fields) > 19 else "-"


def _exit_code(status: int) -> int:
    """The shell's convention: the status, or 128 + N for signal N."""
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


def _report(message: str) -> None:
    try:
        os.write(_STATUS_FD, message.encode() + b"\n")
    finally:
        os.close(_STATUS_FD)


def _reap_all() -> None:
    """Reap every child left (the runtime's, orphans re-parented to us) until none is."""
    while True:
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            return
        except InterruptedError:  # pragma: no cover -- PEP 475 retries
            continue


def main(argv: list[str]) -> int:
    runtime, state_root, bundle, runtime_id, exit_file = argv
    os.set_inheritable(_STATUS_FD, False)  # never handed to the runtime or the container
    os.closerange(_STATUS_FD + 1, os.sysconf("SC_OPEN_MAX"))  # what the engine let slip
    for terminal_signal in (signal.SIGINT, signal.SIGHUP, signal.SIGPIPE):
        signal.signal(terminal_signal, signal.SIG_IGN)
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        _report(f"error 125 prctl: {os.strerror(ctypes.get_errno())}")
        return 1
    pid_file = os.path.join(bundle, "pid")
    create = [
        runtime,
        "--root",
        state_root,
        "--log",
        os.path.join(bundle, "runtime.log"),
        "--log-format",
        "json",
        "create",
        "--bundle",
        bundle,
        "--pid-file",
        pid_file,
        runtime_id,
    ]
    try:
        creator = os.posix_spawnp(runtime, create, os.environ)
    except OSError as error:
        _report(f"error 125 cannot run {runtime}: {error.strerror}")
        return 1
    _, status = os.waitpid(creator, 0)
    if status != 0:
        _report(f"error {_exit_code(status)}")
        _reap_all()  # a PID 1 left waiting for `start` dies with the engine's delete
        return 1
    with open(pid_file, encoding="ascii") as file:
        pid = int(file.read().strip())
    started = _start_time(pid)  # read while it is our unreaped child: it is PID 1's
    # The container holds its own copies of stdout and stderr now: ours would keep
    # the engine's FIFO from reaching its end when the container's processes are gone.
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 1)
    os.dup2(null, 2)
    os.close(null)
    _report(f"ok {pid}")
    while True:
        try:
            reaped, status = os.waitpid(-1, 0)
        except ChildProcessError:  # pragma: no cover -- PID 1 is our child until reaped
            code = 255
            break
        if reaped == pid:
            code = _exit_code(status)
            break
    temporary = f"{exit_file}.tmp"
    with open(temporary, "w", encoding="ascii") as file:
        file.write(f"{code} {pid} {started}\n")
    os.rename(temporary, exit_file)
    _reap_all()
    return 0


if __name__ == "__main__":
    # No interpreter shutdown (~5 ms): the engine learns of the exit when we are gone.
    os._exit(main(sys.argv[1:]))
