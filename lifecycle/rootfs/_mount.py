"""mount(2) and umount2(2) for overlay, through libc (root only), and what is mounted where."""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
from pathlib import Path
from typing import Final

__all__ = ["MountError", "is_mounted", "mount_overlay", "mounts_under", "unmount"]

_MNT_DETACH: Final = 2
_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
_libc.mount.argtypes = (
    ctypes.c_char_p,
    ctypes.c_char_p,
    ctypes.c_char_p,
    ctypes.c_ulong,
    ctypes.c_char_p,
)
_libc.umount2.argtypes = (ctypes.c_char_p, ctypes.c_int)


class MountError(OSError):
    """A mount or unmount the kernel refused (errno and message as the kernel gave them)."""


def mount_overlay(lower: list[Path], upper: Path, work: Path, target: Path) -> None:
    """Mount an overlay of ``lower`` (nearest first) + ``upper`` at ``target``."""
    options = f"lowerdir={':'.join(map(str, lower))},upperdir={upper},workdir={work}"
    # index=off: layer directories are shared by many mounts (containerd does the same).
    options += ",index=off"
    result = _libc.mount(b"overlay", os.fsencode(target), b"overlay", 0, options.encode())
    if result != 0:
        code = ctypes.get_errno()
        raise MountError(code, f"mount overlay at {target}: {os.strerror(code)}")


def unmount(target: Path, *, lazy: bool = False) -> None:
    """Unmount ``target``; ``lazy`` detaches it even while busy (MNT_DETACH)."""
    result = _libc.umount2(os.fsencode(target), _MNT_DETACH if lazy else 0)
    if result != 0:
        code = ctypes.get_errno()
        if code == errno.EINVAL and not is_mounted(target):
            return  # not mounted (any more): nothing to do
        raise MountError(code, f"unmount {target}: {os.strerror(code)}")


def _mount_points() -> list[str]:
    points = []
    with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as mountinfo:
        for line in mountinfo:
            fields = line.split()
            # Field 5 is the mount point, with spaces and such escaped as octal (proc(5)).
            points.append(fields[4].encode().decode("unicode_escape"))
    return points


def is_mounted(target: Path) -> bool:
    return str(target) in _mount_points()


def mounts_under(directory: Path) -> list[str]:
    """Mount points at or below ``directory`` (what a removal must not leave behind)."""
    prefix = str(directory).rstrip("/") + "/"
    return [
        point for point in _mount_points() if point == str(directory) or point.startswith(prefix)
    ]
