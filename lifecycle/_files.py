"""Writing output files atomically, so a reader never sees half a file."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

__all__ = ["sync_directory", "write_atomically"]

_DEFAULT_UMASK = 0o022


def _current_umask() -> int:
    # os.umask() can only be read by setting it, which races with other
    # threads creating files; Linux >= 4.7 reports it in /proc instead.
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return _DEFAULT_UMASK


def write_atomically(path: str | os.PathLike[str], data: bytes, *, durable: bool = False) -> Path:
    """Write ``data`` to ``path`` through a temporary file and a rename.

    The file gets the mode a plain ``open(path, "w")`` would give it (an
    existing file keeps its mode): ``mkstemp`` creates 0600 files, which
    would otherwise survive the rename. Parent directories are created.
    ``durable``: the data is fsync'ed before the rename and the directory
    after it, so a crash or power loss leaves the old file or the new one,
    never an empty one (the ext4 rename-without-fsync trap). Returns the
    path written.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        mode = target.stat().st_mode & 0o7777
    except FileNotFoundError:
        mode = 0o666 & ~_current_umask()
    fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fchmod(file.fileno(), mode)
            if durable:
                os.fsync(file.fileno())
        os.replace(temporary, target)
        if durable:
            sync_directory(target.parent)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    return target


def sync_directory(directory: str | os.PathLike[str]) -> None:
    """fsync a directory: the renames and unlinks in it so far survive a crash."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
