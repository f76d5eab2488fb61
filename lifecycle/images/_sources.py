"""Where an import reads from: an OCI layout directory, or a tar (docker-archive, OCI archive).

Both are hostile input. A name inside them is looked up only after it is
normalised and found to stay inside the source: a directory source refuses
anything whose real path leaves its root (``..``, absolute paths,
symlinks out); a tar source reads members by name and never extracts
anything to disk (a symlink member is followed only to another member).
"""

from __future__ import annotations

import posixpath
import tarfile
from pathlib import Path
from typing import IO, Final, Protocol, final

from lifecycle._errors import ImageContentError

__all__ = ["DirectorySource", "Source", "TarSource", "open_source"]

_MAX_LINK_HOPS: Final = 16


class Source(Protocol):
    """Named files inside an image source."""

    def describe(self, name: str) -> str:
        """How to name ``name`` in an error."""

    def exists(self, name: str) -> bool: ...

    def open(self, name: str) -> IO[bytes]:
        """The file ``name`` (``ImageContentError`` if missing or outside the source)."""

    def close(self) -> None: ...


def _clean(name: str, where: str) -> str:
    path = posixpath.normpath(name) if name else ""
    if not path or name.startswith("/") or "\x00" in name or path == ".." or path.startswith("../"):
        raise ImageContentError(f"{where}:{name}", "names a file outside the image source")
    return path


@final
class DirectorySource:
    """An OCI image layout directory (umoci's and skopeo's ``oci:`` output)."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def describe(self, name: str) -> str:
        return f"{self.root}/{name}"

    def _path(self, name: str) -> Path:
        path = (self.root / _clean(name, str(self.root))).resolve()
        if not path.is_relative_to(self.root):
            raise ImageContentError(self.describe(name), "resolves outside the image source")
        return path

    def exists(self, name: str) -> bool:
        try:
            return self._path(name).is_file()
        except ImageContentError:
            return False

    def open(self, name: str) -> IO[bytes]:
        path = self._path(name)
        try:
            return path.open("rb")
        except FileNotFoundError:
            raise ImageContentError(self.describe(name), "missing from the image source") from None
        except IsADirectoryError:
            raise ImageContentError(self.describe(name), "is a directory, not a blob") from None

    def close(self) -> None:
        pass


@final
class TarSource:
    """A tar file (``docker save`` output or an OCI archive), read member by member."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self._archive = tarfile.open(path, "r:*")  # noqa: SIM115 -- closed by close()
        except (tarfile.TarError, OSError) as error:
            raise ImageContentError(str(path), f"not a readable tar archive: {error}") from None
        self._members: dict[str, tarfile.TarInfo] = {}
        try:
            members = self._archive.getmembers()
        except (tarfile.TarError, OSError, EOFError) as error:
            # A truncated or corrupt archive (an upload cut short) names itself, not tarfile.
            self._archive.close()
            raise ImageContentError(str(path), f"not a readable tar archive: {error}") from None
        for member in members:
            try:
                self._members[_clean(member.name, str(path))] = member
            except ImageContentError:
                continue  # a name outside the archive is never looked up, so never read

    def describe(self, name: str) -> str:
        return f"{self.path}:{name}"

    def _member(self, name: str) -> tarfile.TarInfo:
        key = _clean(name, str(self.path))
        for _ in range(_MAX_LINK_HOPS):
            member = self._members.get(key)
            if member is None:
                raise ImageContentError(self.describe(name), "missing from the archive")
            if member.isreg():
                return member
            if not member.issym():
                raise ImageContentError(self.describe(name), "is not a regular file")
            # docker save (legacy) links duplicate layers to one copy: follow, inside the archive.
            target = member.linkname
            joined = (
                target if target.startswith("/") else posixpath.join(posixpath.dirname(key), target)
            )
            key = _clean(joined.lstrip("/"), str(self.path))
        raise ImageContentError(self.describe(name), "too many symbolic links")

    def exists(self, name: str) -> bool:
        try:
            self._member(name)
        except ImageContentError:
            return False
        return True

    def open(self, name: str) -> IO[bytes]:
        extracted = self._archive.extractfile(self._member(name))
        if extracted is None:  # pragma: no cover -- regular members always extract
            raise ImageContentError(self.describe(name), "cannot be read")
        return extracted

    def close(self) -> None:
        self._archive.close()


def open_source(path: Path) -> Source:
    """A directory is a layout; a file is a tar archive."""
    if path.is_dir():
        return DirectorySource(path)
    if path.is_file():
        return TarSource(path)
    raise ImageContentError(str(path), "no such file or directory")
