"""The engine as a child subreaper: orphans of its containers come back to it, to be reaped.

A process whose parent exits is re-parented to the nearest ancestor that
asked for it with ``prctl(PR_SET_CHILD_SUBREAPER)``, else to PID 1. Not
every PID 1 reaps (a container's init, or the VM init of this kind of
machine), and a zombie of a container that PID 1 never reaps is a process
of it left behind. So while a driver runs, this process is a subreaper (as
containerd's shim and tini ``-s`` are), and the driver reaps the orphans of
its containers -- only those, by pidfd: never ``waitpid(-1)``, which would
take exit statuses the host program waits for.

Side effect, documented in the README: while an engine runs, orphans of the
host program's *other* children are re-parented to it too, and stay zombies
until the host program reaps them (or exits).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import select
import threading
from typing import Final

__all__ = [
    "UNKNOWN_EXIT_CODE",
    "SubreaperLease",
    "is_subreaper",
    "pidfd_exited",
    "readable_within",
    "reap",
    "reap_exited",
]

# Exit code for an exit status we could not read (someone else reaped the
# child): 255, moby's value for an exit it could not determine.
UNKNOWN_EXIT_CODE: Final = 255

_PR_SET_CHILD_SUBREAPER: Final = 36
_PR_GET_CHILD_SUBREAPER: Final = 37
_libc = ctypes.CDLL(None, use_errno=True)
_lock = threading.Lock()
# Leases held in this process, and whether this module turned the flag on.
_leases = 0
_turned_on = False


def _prctl(option: int, value: int | ctypes.c_int) -> None:
    argument = ctypes.byref(value) if isinstance(value, ctypes.c_int) else value
    if _libc.prctl(option, argument, 0, 0, 0) != 0:
        error = ctypes.get_errno()
        raise OSError(error, os.strerror(error))


def is_subreaper() -> bool:
    """Whether this process is a child subreaper now."""
    flag = ctypes.c_int(0)
    _prctl(_PR_GET_CHILD_SUBREAPER, flag)
    return bool(flag.value)


class SubreaperLease:
    """Held by each running driver: the flag is on while any lease is held.

    The flag is turned off again with the last lease only if it was off
    before the first (a host program that set it itself keeps it).
    """

    __slots__ = ("_held",)

    def __init__(self) -> None:
        self._held = False

    def acquire(self) -> None:
        global _leases, _turned_on  # noqa: PLW0603 -- the flag is per process
        with _lock:
            if self._held:
                return
            if _leases == 0 and not is_subreaper():
                _prctl(_PR_SET_CHILD_SUBREAPER, 1)
                _turned_on = True
            _leases += 1
            self._held = True

    def release(self) -> None:
        global _leases, _turned_on  # noqa: PLW0603 -- the flag is per process
        with _lock:
            if not self._held:
                return
            self._held = False
            _leases -= 1
            if _leases == 0 and _turned_on:
                _prctl(_PR_SET_CHILD_SUBREAPER, 0)
                _turned_on = False


def pidfd_exited(pidfd: int) -> bool:
    """Whether the process of ``pidfd`` has exited (a pidfd is readable then), reaped or not."""
    return readable_within(pidfd, 0)


def readable_within(fd: int, timeout: float | None) -> bool:
    """Block until ``fd`` is readable (a pidfd: its process exited) or ``timeout`` seconds
    pass (None: no limit); whether it is. ``poll``, not ``select``: a fleet's descriptors
    are numbered far above select's 1,024."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(None if timeout is None else int(timeout * 1000)))


def reap(pidfd: int) -> tuple[int, int | None]:
    """Reap the exited child of ``pidfd`` (``waitid(P_PIDFD)``): its exit code as the shell
    gives it (the status, or 128 + N for signal N), and N (None if it exited by itself).

    255 and None when the status is lost (not our child, or reaped by someone else: a
    ``waitpid(-1)`` watcher). Blocks until it exits: call it once ``pidfd_exited``.
    """
    try:
        result = os.waitid(os.P_PIDFD, pidfd, os.WEXITED)
    except ChildProcessError:
        return UNKNOWN_EXIT_CODE, None
    if result is None:  # pragma: no cover -- only with WNOHANG
        return UNKNOWN_EXIT_CODE, None
    if result.si_code == os.CLD_EXITED:
        return result.si_status, None
    return 128 + result.si_status, result.si_status  # CLD_KILLED or CLD_DUMPED


def reap_exited(pidfds: dict[int, int]) -> None:
    """Reap each process of ``pidfds`` ({key: pidfd}) that has exited and is our child.

    Its entry is removed and its pidfd closed; one that exited but is not our
    child (its parent reaps it) is simply forgotten. Entries of processes
    still running stay.
    """
    for key, pidfd in list(pidfds.items()):
        if not pidfd_exited(pidfd):
            continue
        with contextlib.suppress(ChildProcessError):
            os.waitid(os.P_PIDFD, pidfd, os.WEXITED | os.WNOHANG)
        os.close(pidfd)
        del pidfds[key]
