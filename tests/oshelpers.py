"""Looking at the OS from the tests: /proc, children, readiness files. No fixed sleeps."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import anyio

from lifecycle._procfs import GONE_STATES, descendants, group_members, read_stat

__all__ = [
    "children_of_this_process",
    "eventually",
    "forking",
    "group_alive",
    "group_states",
    "proc_state",
    "term_handling",
    "term_ignoring",
    "wait_for_file",
]


def proc_state(pid: int) -> str | None:
    """The one-letter state of ``pid`` from /proc/<pid>/stat, or None if it is gone."""
    stat = read_stat(pid)
    return None if stat is None else stat.state


def group_alive(pgid: int) -> list[int]:
    """Processes of group ``pgid`` that still exist and have not exited (zombies excluded)."""
    return group_members(pgid)


def group_states(pgid: int) -> dict[int, str]:
    """State letter of each not-yet-exited member of group ``pgid``."""
    states: dict[int, str] = {}
    for pid in group_members(pgid):
        state = proc_state(pid)
        if state is not None and state not in GONE_STATES:
            states[pid] = state
    return states


def whole_group_stopped(pgid: int) -> bool:
    """Whether group ``pgid`` has members and every one of them is stopped (state T)."""
    states = group_states(pgid)
    return bool(states) and set(states.values()) == {"T"}


def children_of_this_process() -> dict[int, str]:
    """Every descendant of the test process with its state (a zombie shows as 'Z')."""
    found: dict[int, str] = {}
    for pid in descendants(os.getpid()):
        state = proc_state(pid)
        if state is not None:
            found[pid] = state
    return found


async def eventually(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait until ``condition()`` holds, polling with a deadline; fail the test otherwise."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s: {condition}")
        await anyio.sleep(0.005)


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
