"""Copy-on-write root filesystems for containers: overlay snapshots of image layers, or copies.

**overlayfs** (containerd's overlay snapshotter): every layer is unpacked
once into ``layers/<chain id>/fs`` -- shared by every image and container
that has it, never written again -- and a container gets ``upper/`` and
``work/`` of its own and an overlay mount at ``merged/`` (``lowerdir`` =
its layers, nearest first). Writes, deletions and renames land in
``upper/`` only.

**vfs** (Docker's ``vfs`` driver): where overlay cannot be mounted (not
root, or a filesystem that refuses it), each container gets a full copy of
its image's tree (``cp -a``, reflinks where the filesystem has them) from
a pristine tree kept per image; slower, the same behaviour.

Both answer ``changes`` (Docker's ``docker diff``: A added, C changed, D
deleted) and ``write_changes`` (the container's writes as a layer tar,
deletions as ``.wh.`` whiteouts) for ``commit``. Blocking: call them in a
worker thread.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import os
import secrets
import shutil
import stat
import subprocess
import tarfile
from pathlib import Path
from typing import IO, Final, Literal, Protocol, final

from lifecycle.images import Image, ImageStore
from lifecycle.rootfs._mount import MountError, mount_overlay, mounts_under, unmount
from lifecycle.rootfs._unpack import OPAQUE_XATTR, WHITEOUT_PREFIX, unpack_layer

__all__ = [
    "Change",
    "OverlaySnapshotter",
    "Snapshotter",
    "VfsSnapshotter",
    "choose_snapshotter",
]

ChangeKind = Literal["A", "C", "D"]
_OPAQUE_MARKER: Final = ".wh..wh..opq"


@final
@dataclasses.dataclass(frozen=True, slots=True, order=True)
class Change:
    """One line of ``docker diff``: ``C /etc``, ``A /new``, ``D /etc/hostname``."""

    path: str
    kind: ChangeKind

    def __str__(self) -> str:
        return f"{self.kind} {self.path}"


class Snapshotter(Protocol):
    """Makes, compares and removes container root filesystems under one directory."""

    name: str

    def prepare(self, key: str, image: Image) -> Path:
        """A new root filesystem for container ``key`` from ``image``; its path."""

    def remove(self, key: str) -> None:
        """Unmount and delete container ``key``'s filesystem (idempotent)."""

    def detach(self, key: str, *, keep_mounted: bool = False) -> None:
        """An engine leaves, the container stays (a journal keeps it): unmount, keep its
        files, let go of it. ``attach`` brings it back. ``keep_mounted``: it stays
        mounted, for a container that is left running (``live_restore``)."""

    def attach(self, key: str, image: Image) -> Path:
        """An engine restores container ``key``: hold it again, mount it if it is not
        (after ``detach`` or a reboot; a crash leaves it mounted); its path.
        ``FileNotFoundError`` if its files are gone."""

    def changes(self, key: str, image: Image) -> list[Change]: ...

    def write_changes(self, key: str, image: Image, out: IO[bytes]) -> None:
        """The container's writes as an uncompressed layer tar."""

    def list_keys(self) -> list[str]: ...

    def sweep(self, keep: frozenset[str] = frozenset()) -> list[str]:
        """Remove the filesystems of containers whose engine died (crashed) and that no
        journal keeps (``keep``); their keys."""


_OWNER_LOCK: Final = "owner.lock"


def _hold(home: Path) -> int:
    """Lock ``home`` for this process (an flock the kernel drops if the process dies)."""
    fd = os.open(home / _OWNER_LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def _abandoned(home: Path) -> bool:
    """Whether no live process holds ``home`` (its owner crashed or never finished)."""
    try:
        fd = os.open(home / _OWNER_LOCK, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)
    return True


def _sweep(
    snapshotter: OverlaySnapshotter | VfsSnapshotter, keep: frozenset[str] = frozenset()
) -> list[str]:
    """Remove what no live engine holds and no journal keeps (``keep``: see
    ``choose_snapshotter``); the keys removed."""
    stale = [
        key
        for key in snapshotter.list_keys()
        if key not in keep and _abandoned(snapshotter.containers / key)
    ]
    for key in stale:
        snapshotter.remove(key)
    return stale


def _is_whiteout(info: os.stat_result) -> bool:
    return stat.S_ISCHR(info.st_mode) and info.st_rdev == 0


def _tar_entry(archive: tarfile.TarFile, path: Path, name: str) -> None:
    info = archive.gettarinfo(str(path), arcname=name)
    info.uname = info.gname = ""
    if info.isreg():
        with path.open("rb") as file:
            archive.addfile(info, file)
    else:
        archive.addfile(info)


def _whiteout_entry(archive: tarfile.TarFile, name: str) -> None:
    parent, _, base = name.rpartition("/")
    entry = tarfile.TarInfo(
        f"{parent}/{WHITEOUT_PREFIX}{base}" if parent else f"{WHITEOUT_PREFIX}{base}"
    )
    archive.addfile(entry)


@final
class OverlaySnapshotter:
    """Shared read-only layer directories + an overlay mount per container."""

    name = "overlayfs"

    def __init__(self, root: Path, store: ImageStore) -> None:
        self.root = root
        self.store = store
        self.layers = root / "layers"
        self.containers = root / "containers"
        self.layers.mkdir(parents=True, exist_ok=True)
        self.containers.mkdir(parents=True, exist_ok=True)
        self._owners: dict[str, int] = {}

    def sweep(self, keep: frozenset[str] = frozenset()) -> list[str]:
        return _sweep(self, keep)

    def _layer_dirs(self, image: Image) -> list[Path]:
        """The unpacked layers, base first (unpacking any that are not there yet)."""
        directories = []
        for layer in image.layers:
            directory = self.layers / layer.chain_id.removeprefix("sha256:")
            if not (directory / "fs").is_dir():
                self._unpack(layer.digest, directory)
            directories.append(directory / "fs")
        return directories

    def _unpack(self, digest: str, directory: Path) -> None:
        # Unpacked beside, then renamed: a layer directory is complete or absent.
        temporary = self.layers / f".unpack-{secrets.token_hex(8)}"
        (temporary / "fs").mkdir(parents=True)
        try:
            with self.store.open_layer(digest) as stream:
                unpack_layer(stream, temporary / "fs", blob=digest, mode="overlay")
            try:
                temporary.rename(directory)
            except OSError:
                if not (directory / "fs").is_dir():
                    raise  # a concurrent unpack of the same layer won: keep its copy
        finally:
            if temporary.exists():
                shutil.rmtree(temporary)

    def prepare(self, key: str, image: Image) -> Path:
        lower = list(reversed(self._layer_dirs(image)))
        home = self.containers / key
        for part in ("upper", "work", "merged"):
            (home / part).mkdir(parents=True)
        self._owners[key] = _hold(home)
        try:
            mount_overlay(lower, home / "upper", home / "work", home / "merged")
        except BaseException:
            self._let_go(key)
            shutil.rmtree(home, ignore_errors=True)
            raise
        return home / "merged"

    def _let_go(self, key: str) -> None:
        fd = self._owners.pop(key, None)
        if fd is not None:
            os.close(fd)

    def remove(self, key: str) -> None:
        home = self.containers / key
        merged = home / "merged"
        for point in reversed(mounts_under(home)):
            try:
                unmount(Path(point))
            except MountError:
                # Busy (a process has its cwd or a file there): detach it; the kernel
                # frees it when the last user goes. moby#22312 is what not doing this costs.
                unmount(Path(point), lazy=True)
        if merged.exists() and mounts_under(home):  # pragma: no cover -- detach always works
            raise MountError(0, f"{merged} is still mounted")
        if home.exists():
            shutil.rmtree(home)
        self._let_go(key)

    def detach(self, key: str, *, keep_mounted: bool = False) -> None:
        home = self.containers / key
        for point in reversed([] if keep_mounted else mounts_under(home)):
            try:
                unmount(Path(point))
            except MountError:
                unmount(Path(point), lazy=True)  # busy: as remove
        self._let_go(key)

    def attach(self, key: str, image: Image) -> Path:
        home = self.containers / key
        if not (home / "upper").is_dir():
            raise FileNotFoundError(f"{home / 'upper'} is gone")
        if key not in self._owners:
            self._owners[key] = _hold(home)
        merged = home / "merged"
        if not mounts_under(home):
            lower = list(reversed(self._layer_dirs(image)))
            try:
                mount_overlay(lower, home / "upper", home / "work", merged)
            except BaseException:
                self._let_go(key)
                raise
        return merged

    def list_keys(self) -> list[str]:
        return sorted(entry.name for entry in self.containers.iterdir() if entry.is_dir())

    def _in_lower(self, layers: list[Path], relative: str) -> bool:
        """Whether ``relative`` exists in the image below the container (``layers``: base
        first), honouring whiteouts and opaque directories."""
        for directory in reversed(layers):
            path = directory / relative
            if os.path.lexists(path):
                return not _is_whiteout(path.lstat())
            if self._opaque_above(directory, relative):
                return False
        return False

    @staticmethod
    def _opaque_above(layer: Path, relative: str) -> bool:
        parent = (layer / relative).parent
        while parent != layer and parent.is_relative_to(layer):
            with contextlib.suppress(OSError):
                if os.getxattr(parent, OPAQUE_XATTR) == b"y":
                    return True
            parent = parent.parent
        return False

    def changes(self, key: str, image: Image) -> list[Change]:
        upper = self.containers / key / "upper"
        layers = self._layer_dirs(image)
        found: list[Change] = []
        for current, directories, files in os.walk(upper):
            for name in sorted([*directories, *files]):
                path = Path(current) / name
                relative = str(path.relative_to(upper))
                info = path.lstat()
                if _is_whiteout(info):
                    found.append(Change(f"/{relative}", "D"))
                elif self._in_lower(layers, relative):
                    found.append(Change(f"/{relative}", "C"))
                else:
                    found.append(Change(f"/{relative}", "A"))
        return sorted(found)

    def write_changes(self, key: str, image: Image, out: IO[bytes]) -> None:
        upper = self.containers / key / "upper"
        with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as archive:
            for current, directories, files in os.walk(upper):
                directories.sort()
                for name in sorted([*directories, *files]):
                    path = Path(current) / name
                    relative = str(path.relative_to(upper))
                    if _is_whiteout(path.lstat()):
                        _whiteout_entry(archive, relative)
                        continue
                    _tar_entry(archive, path, relative)
                    if path.is_dir() and not path.is_symlink():
                        with contextlib.suppress(OSError):
                            if os.getxattr(path, OPAQUE_XATTR) == b"y":
                                archive.addfile(tarfile.TarInfo(f"{relative}/{_OPAQUE_MARKER}"))


@final
class VfsSnapshotter:
    """A full copy of the image's tree per container (``cp -a`` from a pristine tree)."""

    name = "vfs"

    def __init__(self, root: Path, store: ImageStore) -> None:
        self.root = root
        self.store = store
        self.images = root / "images"
        self.containers = root / "containers"
        self.images.mkdir(parents=True, exist_ok=True)
        self.containers.mkdir(parents=True, exist_ok=True)
        self._owners: dict[str, int] = {}

    def sweep(self, keep: frozenset[str] = frozenset()) -> list[str]:
        return _sweep(self, keep)

    def _pristine(self, image: Image) -> Path:
        top = image.layers[-1].chain_id.removeprefix("sha256:") if image.layers else "empty"
        tree = self.images / top
        if not tree.is_dir():
            temporary = self.images / f".apply-{secrets.token_hex(8)}"
            temporary.mkdir()
            try:
                for layer in image.layers:
                    with self.store.open_layer(layer.digest) as stream:
                        unpack_layer(stream, temporary, blob=layer.digest, mode="apply")
                try:
                    temporary.rename(tree)
                except OSError:
                    if not tree.is_dir():
                        raise
            finally:
                if temporary.exists():
                    shutil.rmtree(temporary)
        return tree

    def prepare(self, key: str, image: Image) -> Path:
        home = self.containers / key
        home.mkdir(parents=True)
        self._owners[key] = _hold(home)
        try:
            # cp -a keeps owners, modes, times, links, devices and xattrs; --reflink=auto
            # shares extents where the filesystem can (btrfs, xfs).
            subprocess.run(
                ["cp", "-a", "--reflink=auto", f"{self._pristine(image)}/.", str(home / "fs")],
                check=True,
                capture_output=True,
            )
        except BaseException:
            self.remove(key)
            raise
        return home / "fs"

    def remove(self, key: str) -> None:
        home = self.containers / key
        if home.exists():
            shutil.rmtree(home)
        fd = self._owners.pop(key, None)
        if fd is not None:
            os.close(fd)

    def detach(self, key: str, *, keep_mounted: bool = False) -> None:
        del keep_mounted  # nothing is mounted: the copy is a plain directory
        fd = self._owners.pop(key, None)
        if fd is not None:
            os.close(fd)

    def attach(self, key: str, image: Image) -> Path:
        del image  # the copy is complete in fs/ (prepare made it before it returned)
        home = self.containers / key
        if not (home / "fs").is_dir():
            raise FileNotFoundError(f"{home / 'fs'} is gone")
        if key not in self._owners:
            self._owners[key] = _hold(home)
        return home / "fs"

    def list_keys(self) -> list[str]:
        return sorted(entry.name for entry in self.containers.iterdir() if entry.is_dir())

    @staticmethod
    def _differs(a: os.stat_result, b: os.stat_result, path_a: Path, path_b: Path) -> bool:
        if stat.S_IFMT(a.st_mode) != stat.S_IFMT(b.st_mode) or a.st_mode != b.st_mode:
            return True
        if (a.st_uid, a.st_gid) != (b.st_uid, b.st_gid):
            return True
        if stat.S_ISLNK(a.st_mode):
            return os.readlink(path_a) != os.readlink(path_b)
        if stat.S_ISDIR(a.st_mode):
            return a.st_mtime_ns != b.st_mtime_ns
        return a.st_size != b.st_size or a.st_mtime_ns != b.st_mtime_ns

    def _walk(self, key: str, image: Image) -> list[tuple[Change, Path | None]]:
        pristine = self._pristine(image)
        fs = self.containers / key / "fs"
        found: list[tuple[Change, Path | None]] = []
        for current, directories, files in os.walk(fs):
            for name in [*directories, *files]:
                path = Path(current) / name
                relative = str(path.relative_to(fs))
                before = pristine / relative
                if not os.path.lexists(before):
                    found.append((Change(f"/{relative}", "A"), path))
                elif self._differs(path.lstat(), before.lstat(), path, before):
                    found.append((Change(f"/{relative}", "C"), path))
        for current, directories, files in os.walk(pristine):
            gone = [
                name
                for name in [*directories, *files]
                if not os.path.lexists(fs / Path(current).relative_to(pristine) / name)
            ]
            for name in gone:
                relative = str((Path(current) / name).relative_to(pristine))
                found.append((Change(f"/{relative}", "D"), None))
            directories[:] = [name for name in directories if name not in gone]
        return sorted(found, key=lambda item: item[0])

    def changes(self, key: str, image: Image) -> list[Change]:
        return [change for change, _ in self._walk(key, image)]

    def write_changes(self, key: str, image: Image, out: IO[bytes]) -> None:
        with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as archive:
            for change, path in self._walk(key, image):
                relative = change.path.lstrip("/")
                if change.kind == "D" or path is None:
                    _whiteout_entry(archive, relative)
                else:
                    _tar_entry(archive, path, relative)


def _overlay_works(root: Path) -> bool:
    """Whether an overlay mount works here (root, and a filesystem that allows it)."""
    if os.geteuid() != 0:
        return False
    probe = root / f".probe-{secrets.token_hex(4)}"
    try:
        for part in ("lower", "upper", "work", "merged"):
            (probe / part).mkdir(parents=True)
        try:
            mount_overlay([probe / "lower"], probe / "upper", probe / "work", probe / "merged")
        except MountError:
            return False
        unmount(probe / "merged")
        return True
    finally:
        shutil.rmtree(probe, ignore_errors=True)


def choose_snapshotter(
    root: Path, store: ImageStore, name: str | None = None, *, keep: frozenset[str] = frozenset()
) -> Snapshotter:
    """overlayfs where it can be mounted, else vfs (or the one ``name`` asks for).

    Filesystems that an engine which died (crashed, SIGKILL) left behind are
    swept on the way: each container's directory is held by an flock of its
    engine, which the kernel drops when that process ends, so one that no
    live process holds is stale -- including those of the other snapshotter --
    unless its key is in ``keep`` (a journal's containers, to be restored).
    """
    root.mkdir(parents=True, exist_ok=True)
    if name is None:
        name = "overlayfs" if _overlay_works(root) else "vfs"
    overlay_root, vfs_root = root / "overlayfs", root / "vfs"
    if overlay_root.exists() and os.geteuid() == 0:
        OverlaySnapshotter(overlay_root, store).sweep(keep)
    if vfs_root.exists():
        VfsSnapshotter(vfs_root, store).sweep(keep)
    if name == "overlayfs":
        return OverlaySnapshotter(overlay_root, store)
    return VfsSnapshotter(vfs_root, store)
