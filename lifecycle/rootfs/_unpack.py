"""Unpacking a layer tar into a directory, as containerd's overlay snapshotter does.

The store checked every entry when the layer came in (``images/_layers.py``);
unpacking checks again against the directory as it is being filled, since
a lexically harmless name can still escape through a symlink an earlier
entry made (``a -> /etc`` then ``a/passwd``): every parent is resolved
with ``realpath`` and must stay inside, and hard links must point at a
regular file inside. Owners are numeric (no name lookups on the host).

Whiteouts (OCI image-spec ``layer.md``) become what overlayfs understands:
``.wh.NAME`` -> a 0/0 character device ``NAME``; ``.wh..wh..opq`` -> the
``trusted.overlay.opaque=y`` xattr on its directory. In ``apply`` mode
(the copy-based snapshotter) they are carried out instead: the named path
is deleted, an opaque directory is emptied of what lower layers put there.
"""

from __future__ import annotations

import os
import posixpath
import shutil
import stat
import tarfile
from pathlib import Path
from typing import IO, Final, Literal

from lifecycle._errors import UnsafeLayerError

__all__ = ["OPAQUE_XATTR", "WHITEOUT_PREFIX", "unpack_layer"]

WHITEOUT_PREFIX: Final = ".wh."
OPAQUE_MARKER: Final = ".wh..wh..opq"
OPAQUE_XATTR: Final = "trusted.overlay.opaque"

Mode = Literal["overlay", "apply"]


def _inside(root: str, path: str) -> bool:
    return path == root or path.startswith(root + os.sep)


def _remove(path: str) -> None:
    if os.path.islink(path) or not os.path.isdir(path):
        if os.path.lexists(path):
            os.unlink(path)
    else:
        shutil.rmtree(path)


def unpack_layer(stream: IO[bytes], target: Path, *, blob: str, mode: Mode = "overlay") -> None:
    """Extract the uncompressed layer tar in ``stream`` into ``target`` (which must exist).

    Raises ``UnsafeLayerError`` naming the entry that would land outside.
    Blocking: call it in a worker thread.
    """
    root = os.path.realpath(target)
    with tarfile.open(fileobj=stream, mode="r|") as archive:
        for member in archive:
            name = posixpath.normpath(member.name.lstrip("/"))
            if name in ("", "."):
                continue
            if name.startswith("../") or name == "..":
                raise UnsafeLayerError(blob, member.name, "climbs out of the layer")
            parent, base = posixpath.split(name)
            parent_path = os.path.realpath(os.path.join(root, parent))
            if not _inside(root, parent_path):
                raise UnsafeLayerError(
                    blob, member.name, "its directory resolves outside the layer"
                )
            os.makedirs(parent_path, exist_ok=True)
            if base == OPAQUE_MARKER:
                _opaque(parent_path, mode)
                continue
            if base.startswith(WHITEOUT_PREFIX):
                _whiteout(os.path.join(parent_path, base[len(WHITEOUT_PREFIX) :]), mode)
                continue
            destination = os.path.join(parent_path, base)
            if member.islnk():
                source = os.path.realpath(os.path.join(root, member.linkname.lstrip("/")))
                if not _inside(root, source) or not os.path.isfile(source):
                    raise UnsafeLayerError(
                        blob, member.name, f"a hard link to {member.linkname!r}, outside the layer"
                    )
            if os.path.lexists(destination) and not (member.isdir() and os.path.isdir(destination)):
                _remove(destination)  # a later layer's entry replaces an earlier one (apply mode)
            member.name = os.path.relpath(destination, root)
            if member.islnk():
                member.linkname = os.path.relpath(source, root)
            archive.extract(
                member, root, set_attrs=True, numeric_owner=True, filter="fully_trusted"
            )


def _whiteout(path: str, mode: Mode) -> None:
    if mode == "apply":
        _remove(path)
        return
    if os.path.lexists(path):
        _remove(path)
    os.mknod(path, stat.S_IFCHR | 0o000, os.makedev(0, 0))


def _opaque(directory: str, mode: Mode) -> None:
    if mode == "apply":
        for entry in os.listdir(directory):
            _remove(os.path.join(directory, entry))
        return
    os.setxattr(directory, OPAQUE_XATTR, b"y")
