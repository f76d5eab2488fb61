"""The journal's files: one JSON document per container, written so a crash never tears one.

``<root>/containers/<id>.json``, each written through a temporary file,
fsync, rename and a directory fsync (``write_atomically(durable=True)``):
after a crash at any point a record is the old one or the new one. A
temporary file a crash left behind is never read (it is not ``*.json``)
and is swept by the next engine that locks the journal.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from pathlib import Path
from typing import Final, final

from lifecycle._files import sync_directory, write_atomically
from lifecycle.journal._records import JournalError, JournalRecord, decode_record, encode_record

__all__ = ["Journal"]

# A record is a few KiB; anything larger in the directory is not ours to parse.
MAX_RECORD_BYTES: Final = 1024 * 1024


@final
class Journal:
    """The containers of one engine root, on disk."""

    __slots__ = ("_lock_fd", "directory")

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self._lock_fd: int | None = None
        self.directory = Path(root) / "containers"
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise JournalError(
                str(self.directory), f"cannot be created: {error.strerror}"
            ) from None

    def __repr__(self) -> str:
        return f"<Journal {self.directory}>"

    def lock(self) -> None:
        """Claim the journal for one engine: ``JournalError`` if another live engine has it.

        Two engines restoring and writing the same containers would fight over
        every record (dockerd refuses a second daemon on one data root the same
        way, with its pid file). An flock: the kernel lets go when the process
        dies, so a crashed engine never locks its successor out.
        """
        path = self.directory / ".lock"
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as error:
            raise JournalError(str(path), f"cannot be opened: {error.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise JournalError(
                str(self.directory), "another engine is using this root (it holds the lock)"
            ) from None
        self._lock_fd = fd
        # Only the owner sweeps: a reader (``lifecycle ps``) must not take a live
        # engine's file from under its rename.
        for stale in self.directory.glob(".*.tmp"):  # a crash mid-write left it: never read
            with contextlib.suppress(FileNotFoundError):
                stale.unlink()

    def unlock(self) -> None:
        fd, self._lock_fd = self._lock_fd, None
        if fd is not None:
            os.close(fd)

    def _path(self, container_id: str) -> Path:
        if not container_id.isalnum():  # ids are hex: nothing else may name a file here
            raise JournalError(str(self.directory), f"{container_id!r} is not a container id")
        return self.directory / f"{container_id}.json"

    def write(self, record: JournalRecord) -> None:
        """Replace ``record.id``'s record, durably (blocking: call it in a worker thread).

        ``JournalError`` naming the file if it cannot be written (disk full,
        read-only): the old record is then still there, whole.
        """
        path = self._path(record.id)
        data = json.dumps(encode_record(record), separators=(",", ":")).encode() + b"\n"
        try:
            write_atomically(path, data, durable=True)
        except OSError as error:
            raise JournalError(str(path), f"cannot be written: {error.strerror}") from None

    def remove(self, container_id: str) -> None:
        """Forget a container, durably (no error if it was never written)."""
        path = self._path(container_id)
        try:
            path.unlink(missing_ok=True)
            sync_directory(self.directory)
        except OSError as error:
            raise JournalError(str(path), f"cannot be removed: {error.strerror}") from None

    def read(self, container_id: str) -> JournalRecord:
        return self._read(self._path(container_id))

    def read_all(self) -> list[JournalRecord]:
        """Every record, oldest first; ``JournalError`` naming the first one that is broken."""
        records = [self._read(path) for path in sorted(self.directory.glob("*.json"))]
        return sorted(records, key=lambda record: record.created)

    def ids(self) -> frozenset[str]:
        """The ids the journal has a record for (broken ones too: their files are kept)."""
        return frozenset(path.stem for path in self.directory.glob("*.json"))

    def read_each(self) -> tuple[list[JournalRecord], list[JournalError]]:
        """Every record that reads back (oldest first), and an error for each that does not.

        What a restoring engine uses: one broken file (edited by hand, a disk
        error) costs that container, not every other one (moby's restore logs
        and skips a container whose config does not load, the same way).
        """
        records, errors = [], []
        for path in sorted(self.directory.glob("*.json")):
            try:
                records.append(self._read(path))
            except JournalError as error:
                errors.append(error)
        return sorted(records, key=lambda record: record.created), errors

    def _read(self, path: Path) -> JournalRecord:
        try:
            with path.open("rb") as file:
                data = file.read(MAX_RECORD_BYTES + 1)
        except OSError as error:
            raise JournalError(str(path), f"cannot be read: {error.strerror}") from None
        if len(data) > MAX_RECORD_BYTES:
            raise JournalError(str(path), f"larger than {MAX_RECORD_BYTES} bytes")
        try:
            document = json.loads(data)
        except ValueError as error:
            raise JournalError(str(path), f"not JSON: {error}") from None
        record = decode_record(document, str(path))
        if path.stem != record.id:
            raise JournalError(str(path), f"holds container {record.id}, not {path.stem}")
        return record
