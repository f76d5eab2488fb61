"""The rootfs layer: copy-on-write root filesystems for containers made from images.

Imports the images layer and the base modules; the engine uses it.
"""

from __future__ import annotations

from lifecycle.rootfs._mount import MountError, mounts_under
from lifecycle.rootfs._snapshots import (
    Change,
    OverlaySnapshotter,
    Snapshotter,
    VfsSnapshotter,
    choose_snapshotter,
)

__all__ = [
    "Change",
    "MountError",
    "OverlaySnapshotter",
    "Snapshotter",
    "VfsSnapshotter",
    "choose_snapshotter",
    "mounts_under",
]
