"""What Linux's ``/proc`` says about processes: state, process group, children.

Reads go straight through ``os.open``/``os.read``: a process can vanish
between two reads, so every lookup treats "gone" as an answer, not an error.
Costs measured here: one ``stat`` read is a few microseconds; a scan of all
of ``/proc`` is about 0.6 ms with 70 processes (proportional to their number).
"""

from __future__ import annotations

import os
from typing import Final, NamedTuple

__all__ = [
    "GONE_STATES",
    "ProcStat",
    "adopted_children",
    "descendants",
    "group_members",
    "is_held_stopped",
    "read_stat",
    "start_time",
    "zombie_children",
]

# Z: zombie (exited, waiting to be reaped); X: dead. Neither runs any more.
GONE_STATES: Final = frozenset({"Z", "X"})
_STOPPED_OR_GONE: Final = frozenset({"T", *GONE_STATES})
# Where /proc/<pid>/wchan shows a parent blocked in vfork() until its child
# execs or exits (kernel_clone since Linux 5.10; _do_fork/do_fork before).
_VFORK_WAITS: Final = frozenset({"kernel_clone", "_do_fork", "do_fork"})


class ProcStat(NamedTuple):
    """The fields of ``/proc/<pid>/stat`` we use (proc(5))."""

    pid: int
    state: str
    ppid: int
    pgrp: int


def _read(path: str) -> bytes | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        return os.read(fd, 4096)
    except OSError:
        return None
    finally:
        os.close(fd)


def read_stat(pid: int) -> ProcStat | None:
    """``/proc/<pid>/stat`` parsed, or ``None`` if there is no such process."""
    data = _read(f"/proc/{pid}/stat")
    if not data:
        return None
    # The command name (field 2) is in parentheses and may itself contain
    # spaces and parentheses: split after the last ')'.
    fields = data[data.rindex(b")") + 2 :].split(b" ", 3)
    return ProcStat(pid, fields[0].decode(), int(fields[1]), int(fields[2]))


def start_time(pid: int) -> int | None:
    """Field 22 of ``/proc/<pid>/stat``: when it started, in clock ticks since boot.

    A PID is reused once its process is reaped; a PID and its start time
    together name one process for good (what a journal keeps).
    """
    data = _read(f"/proc/{pid}/stat")
    if not data:
        return None
    return int(data[data.rindex(b")") + 2 :].split(b" ")[19])


def _children(pid: int) -> list[int]:
    # /proc/<pid>/task/<tid>/children (Linux >= 3.5, CONFIG_PROC_CHILDREN): the
    # direct children of each thread. Cheap: it touches only this process.
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []
    children: list[int] = []
    for tid in tids:
        data = _read(f"/proc/{pid}/task/{tid}/children")
        if data:
            children.extend(int(child) for child in data.split())
    return children


def is_held_stopped(stat: ProcStat) -> bool:
    """Whether the process cannot run until resumed: stopped (T), gone, or parked in vfork.

    A shell (dash, for one) starts commands with vfork(): the parent waits,
    in state D, until its child execs. A SIGSTOP to the group that lands
    between the two stops the child before its exec, and the parent then
    stays in D, not T, for as long as the child is stopped. It runs no more
    than a stopped process does, so a pause must count it as stopped.
    """
    if stat.state in _STOPPED_OR_GONE:
        return True
    if stat.state != "D":
        return False
    wchan = _read(f"/proc/{stat.pid}/wchan")
    if wchan is None or wchan.decode(errors="replace") not in _VFORK_WAITS:
        return False
    for child in _children(stat.pid):
        child_stat = read_stat(child)
        if child_stat is not None and child_stat.state == "T":
            return True
    return False


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` in the process tree (children, their children, ...).

    Processes that were orphaned are no longer below ``pid``; with this
    process a child subreaper they are ``adopted_children`` (else only
    ``group_members`` finds them, at the price of a full scan).
    """
    found: list[int] = []
    pending = _children(pid)
    while pending:
        child = pending.pop()
        found.append(child)
        pending.extend(_children(child))
    return found


def group_members(pgid: int, *, exclude: int | None = None) -> list[int]:
    """Processes of process group ``pgid`` that have not exited (a full ``/proc`` scan)."""
    members: list[int] = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        pid = int(name)
        if pid == exclude:
            continue
        stat = read_stat(pid)
        if stat is not None and stat.pgrp == pgid and stat.state not in GONE_STATES:
            members.append(pid)
    return members


def zombie_children(pid: int) -> list[int]:
    """Children of ``pid`` (any of its threads') that have exited and wait to be reaped."""
    return [
        child
        for child in _children(pid)
        if (stat := read_stat(child)) is not None and stat.state == "Z"
    ]


def adopted_children(known: frozenset[int] | set[int]) -> list[int]:
    """Children of this process's main thread that are not in ``known``.

    When this process is a child subreaper, an orphan of any of its
    descendants is re-parented to it, and the kernel gives it to the first
    live thread of the group, the main thread (kernel/exit.c,
    ``find_new_reaper``). So with ``known`` the processes this process
    started itself, these are the orphans it adopted (and any child the host
    program started on its main thread): one read, a stat only for those.
    """
    own = os.getpid()
    data = _read(f"/proc/{own}/task/{own}/children")
    if not data:
        return []
    return [pid for pid in map(int, data.split()) if pid not in known]
