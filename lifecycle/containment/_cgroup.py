"""A cgroup per container: every process it starts stays findable, killable and freezable.

A process group is only a convention: a child that calls ``setsid()`` or
``setpgid(0, 0)`` leaves it, and then outlives its container. A cgroup
cannot be left by an unprivileged process, so when we are root each native
container gets one, and the container *is* the cgroup's processes (systemd's
``KillMode=control-group``; Docker gets the same from its PID namespace and
cgroup).

Layout: cgroup v1 with the ``freezer`` controller (pause, and the
membership list ``cgroup.procs``) and, when mounted, ``pids`` (a count of
tasks including zombies not yet reaped; a limit later). The cgroups live
under this process's own cgroup of each hierarchy, in
``lifecycle/<engine pid>-<start time>/<n>``: one directory per engine, so an
engine can tell its own from those a crashed engine left (``sweep``).

Placement without a race: the child must be in the cgroup *before* it runs
a single instruction of the command, or a fork right after exec escapes.
cgroup v1 moves single threads (the ``tasks`` file), so the spawning thread
moves itself in, forks (the child is born inside), and moves itself back
(``Cgroup.enter_thread``, ``leave_thread``); about 20 us per move. Pure cgroup v2 hosts move whole
processes only (``clone3(CLONE_INTO_CGROUP)`` would be the way, and Python
does not offer it): there ``find_cgroup_root`` says no, and the driver keeps
process-group containment.

Signals to members go through pidfds checked against the cgroup, so a PID
that was reused between reading ``cgroup.procs`` and signalling is never
hit (``signal_members``).
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import os
import signal
import threading
from typing import Final, final

from lifecycle.containment._procfs import read_stat, start_time
from lifecycle.containment._reaper import pidfd_exited

__all__ = ["Cgroup", "CgroupRoot", "find_cgroup_root"]

CGROUP_MOUNT: Final = "/sys/fs/cgroup"
# The controller that lists members and freezes them; the optional one that counts.
FREEZER: Final = "freezer"
PIDS: Final = "pids"
ENGINE_DIRECTORY: Final = "lifecycle"


def _read(path: str) -> str | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        return os.read(fd, 1 << 20).decode("ascii", errors="replace")
    except OSError:
        return None
    finally:
        os.close(fd)


def _write(path: str, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, text.encode("ascii"))
    finally:
        os.close(fd)


def _own_cgroups(which: str = "self") -> dict[str, str]:
    """``/proc/<which>/cgroup`` as {controller: path} (v1 lines only)."""
    found: dict[str, str] = {}
    for line in (_read(f"/proc/{which}/cgroup") or "").splitlines():
        _, controllers, path = line.split(":", 2)
        for controller in controllers.split(","):
            if controller:
                found[controller] = path
    return found


def _hierarchy_path(controller: str, path: str) -> str:
    """The directory of cgroup ``path`` (as /proc/<pid>/cgroup has it) in ``controller``'s tree."""
    return os.path.normpath(os.path.join(CGROUP_MOUNT, controller, path.lstrip("/")))


def _engine_alive(directory_name: str) -> bool:
    """Whether the engine an engine directory (``<pid>-<start time>``) is named for runs."""
    pid, _, started = directory_name.partition("-")
    return pid.isdigit() and str(start_time(int(pid))) == started


def _is_v1_hierarchy(path: str) -> bool:
    return os.path.isfile(os.path.join(path, "tasks"))


def find_cgroup_root() -> CgroupRoot | None:
    """This engine's cgroup directory, made now; None where cgroups cannot contain containers.

    None unless we are root and a cgroup v1 ``freezer`` hierarchy is mounted
    (see the module doc for pure cgroup v2). Sweeps what crashed engines left.
    """
    if os.geteuid() != 0:
        return None
    own = _own_cgroups()
    mounts: dict[str, str] = {}
    for controller in (FREEZER, PIDS):
        mount = os.path.join(CGROUP_MOUNT, controller)
        if controller in own and _is_v1_hierarchy(mount):
            mounts[controller] = _hierarchy_path(controller, own[controller])
    if FREEZER not in mounts:
        return None
    root = CgroupRoot(mounts)
    try:
        root.sweep()
        root.make()
    except OSError:
        return None  # a read-only or delegated hierarchy we may not write: no cgroups then
    return root


@final
class CgroupRoot:
    """One engine's directory in each hierarchy; makes a ``Cgroup`` per container."""

    __slots__ = ("_counter", "_parents", "engine_key")

    def __init__(self, parents: dict[str, str]) -> None:
        # {controller: the directory that holds every engine's directory}
        self._parents = {
            controller: os.path.join(parent, ENGINE_DIRECTORY)
            for controller, parent in parents.items()
        }
        self.engine_key = f"{os.getpid()}-{start_time(os.getpid())}"
        self._counter = itertools.count(1)

    def __repr__(self) -> str:
        return f"<CgroupRoot {self._parents[FREEZER]}/{self.engine_key}>"

    @property
    def controllers(self) -> tuple[str, ...]:
        return tuple(sorted(self._parents))

    def make(self) -> None:
        for parent in self._parents.values():
            os.makedirs(os.path.join(parent, self.engine_key), exist_ok=True)

    def new(self, container: str = "") -> Cgroup:
        """A new, empty cgroup for one container (mkdir in each hierarchy).

        Named ``<container>-<n>`` (``container``: its short id), so what an
        engine that died left of a container is found by name (``leftovers``),
        even if it died between a spawn and the journal's record of it.
        """
        number = next(self._counter)
        name = f"{container}-{number}" if container else str(number)
        paths = {c: os.path.join(p, self.engine_key, name) for c, p in self._parents.items()}
        made: list[str] = []
        try:
            for path in paths.values():
                os.mkdir(path)
                made.append(path)
        except BaseException:
            for path in made:
                with contextlib.suppress(OSError):
                    os.rmdir(path)
            raise
        return Cgroup(paths)

    def close(self) -> None:
        """Remove this engine's directories (they are empty once every container is removed)."""
        for parent in self._parents.values():
            with contextlib.suppress(OSError):
                os.rmdir(os.path.join(parent, self.engine_key))

    def sweep(self) -> None:
        """Remove the empty cgroups of engines that no longer run (crashed, or killed).

        A cgroup that still has processes is left alone: they belong to a
        container nobody supervises any more, which is for the journal
        (restore) to settle, not for a sweep to kill.
        """
        for parent in self._parents.values():
            try:
                engines = os.listdir(parent)
            except FileNotFoundError:
                continue
            for engine in engines:
                if _engine_alive(engine):
                    continue
                directory = os.path.join(parent, engine)
                for name in _subdirectories(directory):
                    with contextlib.suppress(OSError):
                        os.rmdir(os.path.join(directory, name))
                with contextlib.suppress(OSError):
                    os.rmdir(directory)

    def leftovers(self, container: str) -> list[Cgroup]:
        """The cgroups engines that no longer run left of ``container`` (``new``'s name)."""
        freezer_parent = self._parents[FREEZER]
        found = []
        for engine in _subdirectories(freezer_parent):
            if _engine_alive(engine):
                continue  # a live engine's (this one's too): not left over
            for name in _subdirectories(os.path.join(freezer_parent, engine)):
                if name.startswith(f"{container}-"):
                    found.append(
                        Cgroup({c: os.path.join(p, engine, name) for c, p in self._parents.items()})
                    )
        return found


def _subdirectories(directory: str) -> list[str]:
    try:
        return [entry.name for entry in os.scandir(directory) if entry.is_dir()]
    except OSError:
        return []


@final
class Cgroup:
    """One container's cgroup in each hierarchy (``paths``: {controller: directory})."""

    __slots__ = ("_freezer", "paths")

    def __init__(self, paths: dict[str, str]) -> None:
        self.paths = paths
        self._freezer = paths[FREEZER]

    def __repr__(self) -> str:
        return f"<Cgroup {self._freezer}>"

    def enter_thread(self) -> dict[str, str]:
        """Move the calling thread into the cgroup; return where it was (for ``leave_thread``).

        A process the thread forks now is born inside (cgroup v1 moves single
        threads); nothing else of this process moves. Raises ``OSError`` (the
        thread is back home then) if it cannot be moved.
        """
        tid = str(threading.get_native_id())
        home = _own_cgroups("thread-self")
        moved: list[str] = []
        try:
            for controller, path in self.paths.items():
                _write(os.path.join(path, "tasks"), tid)
                moved.append(controller)
        except BaseException:
            self._move(tid, home, moved)
            raise
        return home

    def leave_thread(self, home: dict[str, str]) -> None:
        """Move the calling thread back to ``home`` (what ``enter_thread`` returned)."""
        self._move(str(threading.get_native_id()), home, list(self.paths))

    @staticmethod
    def _move(tid: str, home: dict[str, str], controllers: list[str]) -> None:
        for controller in controllers:
            original = _hierarchy_path(controller, home.get(controller, "/"))
            _write(os.path.join(original, "tasks"), tid)

    def members(self) -> list[int]:
        """PIDs of the processes in the cgroup, zombies excluded (they have left it)."""
        data = _read(os.path.join(self._freezer, "cgroup.procs"))
        if not data:
            return []
        own = os.getpid()
        return [pid for pid in map(int, data.split()) if pid != own]

    def contains(self, pid: int) -> bool:
        """Whether ``/proc/<pid>/cgroup`` puts ``pid`` in this cgroup."""
        path = _own_cgroups(str(pid)).get(FREEZER)
        return path is not None and _hierarchy_path(FREEZER, path) == self._freezer

    def _open_member(self, pid: int) -> int | None:
        """A pidfd on ``pid`` if it is a member: opened first, the cgroup checked after, so
        a PID reused since it was read is never taken for a member. None otherwise."""
        try:
            pidfd = os.pidfd_open(pid)
        except OSError:
            return None  # gone already
        if not self.contains(pid):
            os.close(pidfd)
            return None
        return pidfd

    def signal_member(self, pid: int, sig: signal.Signals) -> bool:
        """Send ``sig`` to ``pid`` if it is a member (checked as ``signal_members`` does)."""
        pidfd = self._open_member(pid)
        if pidfd is None:
            return False
        try:
            signal.pidfd_send_signal(pidfd, sig)
        except ProcessLookupError:
            return False
        finally:
            os.close(pidfd)
        return True

    def signal_members(
        self,
        sig: signal.Signals,
        *,
        skip_group: int | None = None,
        keep: dict[int, int] | None = None,
    ) -> int:
        """Send ``sig`` to every member (except those in process group ``skip_group``).

        Through a pidfd opened first and checked against the cgroup, so a PID
        reused since ``cgroup.procs`` was read is never signalled. With
        ``keep`` ({pid: pidfd}, owned by the caller, who reaps and closes them:
        ``reap_exited``), each signalled member's pidfd is kept there, and one
        kept already is used again; else pidfds are closed here. Returns how
        many were signalled.
        """
        sent = 0
        for pid in self.members():
            if skip_group is not None:
                stat = read_stat(pid)
                if stat is not None and stat.pgrp == skip_group:
                    continue
            pidfd = -1 if keep is None else keep.get(pid, -1)
            if pidfd >= 0 and pidfd_exited(pidfd):
                pidfd = -1  # that process is gone and its PID taken again: a new member
            if pidfd < 0:
                opened = self._open_member(pid)
                if opened is None:
                    continue
                pidfd = opened
                if keep is not None:
                    if pid in keep:  # the old pidfd stays for reap_exited under another key
                        keep[-keep[pid]] = keep[pid]
                    keep[pid] = pidfd
            try:
                signal.pidfd_send_signal(pidfd, sig)
                sent += 1
            except ProcessLookupError:
                pass
            finally:
                if keep is None:
                    os.close(pidfd)
        return sent

    def freezer_state(self) -> str:
        """``THAWED``, ``FREEZING`` or ``FROZEN`` (``GONE`` once the cgroup is removed)."""
        return (_read(os.path.join(self._freezer, "freezer.state")) or "GONE").strip()

    def freeze(self) -> None:
        """Ask the freezer to freeze every member (confirm with ``freezer_state() == "FROZEN"``)."""
        _write(os.path.join(self._freezer, "freezer.state"), "FROZEN")

    def thaw(self) -> None:
        """Let every member run again (takes effect at once)."""
        with contextlib.suppress(FileNotFoundError):
            _write(os.path.join(self._freezer, "freezer.state"), "THAWED")

    def remove(self) -> bool:
        """rmdir in each hierarchy; False if a member is still there (EBUSY)."""
        removed = True
        for path in self.paths.values():
            try:
                os.rmdir(path)
            except FileNotFoundError:
                pass
            except OSError as error:
                if error.errno != errno.EBUSY:
                    raise
                removed = False
        return removed
