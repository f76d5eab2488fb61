"""Looking at the OS from the tests: /proc, children, readiness files. No fixed sleeps."""

from __future__ import annotations

import errno
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Final, NamedTuple

import anyio
import pytest

__all__ = [
    "MARKER_VARIABLE",
    "children_of_this_process",
    "escaped_test_processes",
    "eventually",
    "forking",
    "group_alive",
    "group_states",
    "proc_state",
    "read_first_line",
    "term_handling",
    "term_ignoring",
    "tmpfs",
    "wait_for_file",
    "whole_group_stopped",
]

# The test oracle reads /proc on its own, never through lifecycle's /proc
# helpers: a bug there must not hide itself from the tests that check it.

# Every process the tests start inherits this variable (conftest.py sets it in
# os.environ, which children inherit unless a test builds their environment),
# so a process that escaped and was re-parented to init is still found.
MARKER_VARIABLE: Final = "LIFECYCLE_TEST_MARKER"
# Z: zombie, X: dead (neither runs).
_GONE: Final = frozenset({"Z", "X"})


class Stat(NamedTuple):
    """The fields of /proc/<pid>/stat the tests use (proc(5))."""

    state: str
    ppid: int
    pgrp: int


def read_proc_stat(pid: int) -> Stat | None:
    """/proc/<pid>/stat parsed, or None if there is no such process."""
    try:
        data = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    # Field 2 (the command name) is in parentheses and may contain both: split after the last ')'.
    state, ppid, pgrp = data[data.rindex(b")") + 2 :].split(b" ")[:3]
    return Stat(state.decode(), int(ppid), int(pgrp))


def all_processes() -> dict[int, Stat]:
    """Every process /proc lists now, with its stat."""
    found: dict[int, Stat] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (stat := read_proc_stat(int(entry))) is not None:
            found[int(entry)] = stat
    return found


def proc_state(pid: int) -> str | None:
    """The one-letter state of ``pid`` from /proc/<pid>/stat, or None if it is gone."""
    stat = read_proc_stat(pid)
    return None if stat is None else stat.state


def group_states(pgid: int) -> dict[int, str]:
    """State letter of each not-yet-exited member of process group ``pgid``."""
    return {
        pid: stat.state
        for pid, stat in all_processes().items()
        if stat.pgrp == pgid and stat.state not in _GONE
    }


def group_alive(pgid: int) -> list[int]:
    """Processes of group ``pgid`` that still exist and have not exited (zombies excluded)."""
    return sorted(group_states(pgid))


def whole_group_stopped(pgid: int) -> bool:
    """Whether group ``pgid`` has members and every one of them is stopped (state T)."""
    states = group_states(pgid)
    return bool(states) and set(states.values()) == {"T"}


def freezer_cgroup(pid: int) -> str | None:
    """The cgroup v1 freezer cgroup ``pid`` is in, as /proc/<pid>/cgroup writes it
    (``/lifecycle-oci/<id>``); None in the root cgroup, or if ``pid`` is gone."""
    try:
        with open(f"/proc/{pid}/cgroup", encoding="ascii") as file:
            lines = file.read().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if "freezer" in controllers.split(","):
            return None if path == "/" else path
    return None


def freezer_state(pid: int) -> str | None:
    """``freezer.state`` of the cgroup v1 freezer cgroup ``pid`` is in (None: the root, or gone)."""
    path = freezer_cgroup(pid)
    if path is None:
        return None
    try:
        with open(f"/sys/fs/cgroup/freezer{path}/freezer.state", encoding="ascii") as file:
            return file.read().strip()
    except OSError:
        return None


def write_freezer(pid: int, state: str) -> bool:
    """What `runc pause`/`resume` do by hand: write ``state`` (FROZEN, THAWED) to the
    freezer.state of ``pid``'s own cgroup. False if it is in none (the root cgroup), or if
    the cgroup went away meanwhile: a process killed a moment before is reaped and its
    cgroup removed by the engine between reading /proc/<pid>/cgroup and this write (the
    kernel then answers ENODEV for the open file, ENOENT for the path)."""
    path = freezer_cgroup(pid)
    if path is None:
        return False
    try:
        with open(f"/sys/fs/cgroup/freezer{path}/freezer.state", "w", encoding="ascii") as file:
            file.write(state)
    except OSError as error:
        if error.errno in (errno.ENOENT, errno.ENODEV):
            return False
        raise
    return True


def require_root(what: str) -> None:
    """Skip the test unless we are root (in CI, where LIFECYCLE_REQUIRE_TOOLS=1, fail)."""
    if os.geteuid() != 0:
        reason = f"{what} needs root"
        if os.environ.get("LIFECYCLE_REQUIRE_TOOLS") == "1":
            pytest.fail(f"{reason}; CI runs as root")
        pytest.skip(reason)


def paused_states(pgid: int) -> dict[int, str]:
    """Like ``group_states``, with "frozen" for a member whose freezer cgroup is FROZEN."""
    return {
        pid: "frozen" if freezer_state(pid) == "FROZEN" else state
        for pid, state in group_states(pgid).items()
    }


def whole_group_paused(pgid: int) -> bool:
    """Whether group ``pgid`` has members and each is stopped (T) or frozen by its cgroup."""
    states = paused_states(pgid)
    return bool(states) and set(states.values()) <= {"T", "frozen"}


def none_paused(pgid: int) -> bool:
    """Whether no member of group ``pgid`` is stopped (T) or frozen."""
    return not {"T", "frozen"} & set(paused_states(pgid).values())


def children_of_this_process() -> dict[int, str]:
    """Every descendant of the test process with its state (a zombie shows as 'Z')."""
    processes = all_processes()
    children: dict[int, list[int]] = {}
    for pid, stat in processes.items():
        children.setdefault(stat.ppid, []).append(pid)
    found: dict[int, str] = {}
    pending = list(children.get(os.getpid(), []))
    while pending:
        pid = pending.pop()
        found[pid] = processes[pid].state
        pending.extend(children.get(pid, []))
    return found


def _carries_marker(pid: int, marker: bytes) -> bool:
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return False
    return marker in environ.split(b"\0")


def escaped_test_processes(marker: str) -> dict[int, str]:
    """Live processes that carry the test run's marker but are no longer below this process.

    They were started by a test and re-parented to init (or a subreaper) when
    their parent exited: escaped from every process-tree check.
    """
    entry = f"{MARKER_VARIABLE}={marker}".encode()
    mine = set(children_of_this_process()) | {os.getpid()}
    return {
        pid: stat.state
        for pid, stat in all_processes().items()
        if pid not in mine and stat.state not in _GONE and _carries_marker(pid, entry)
    }


async def eventually(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait until ``condition()`` holds, polling with a deadline; fail the test otherwise."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s: {condition}")
        await anyio.sleep(0.005)


async def read_first_line(stream: anyio.abc.ByteReceiveStream) -> bytes:
    """The first line a child writes (its readiness report), read as it comes."""
    line = b""
    async for chunk in stream:
        line += chunk
        if b"\n" in line:
            break
    return line.split(b"\n", 1)[0]


@contextmanager
def tmpfs(directory: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` mounted at ``directory`` (made): a real disk that fills (root
    only); unmounted however the block ends."""
    require_root("a tmpfs to fill")
    directory.mkdir()
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(directory)], check=True
    )
    try:
        yield directory
    finally:
        subprocess.run(["umount", str(directory)], check=True)


async def wait_for_file(path: Path, timeout: float = 10.0) -> str:
    """Wait until a child has written ``path`` (its readiness marker); return the text."""
    await eventually(lambda: path.exists() and path.stat().st_size > 0, timeout)
    return path.read_text()


# Children for the tests. Each writes a readiness file once its signal
# dispositions are in place, so a test never races the child's start-up.


def term_ignoring(ready: Path) -> list[str]:
    """Ignores SIGTERM (inherited across exec), then sleeps: only SIGKILL ends it (137)."""
    return ["sh", "-c", f"trap '' TERM; echo ready > {ready}; exec sleep 60"]


def term_handling(ready: Path) -> list[str]:
    """Handles SIGTERM by exiting 0 (a cooperative stop)."""
    script = (
        "import signal, sys, time, pathlib\n"
        "signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))\n"
        f"pathlib.Path({str(ready)!r}).write_text('ready')\n"
        "while True: time.sleep(1)\n"
    )
    return ["python3", "-c", script]


def forking(ready: Path) -> list[str]:
    """A shell with two background grandchildren; writes their pids once they run."""
    return ["sh", "-c", f"sleep 60 & a=$!; sleep 60 & echo $a $! > {ready}; wait"]
