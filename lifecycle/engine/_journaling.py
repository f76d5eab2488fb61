"""Keeping one container's journal record true: the latest state, written in order, durably.

The engine commits a transition with one synchronous call (the table), but
a durable write is a file, an fsync, a rename and a directory fsync: a
worker thread's job. So a container's ``RecordKeeper`` writes *the latest
record* whenever asked (``flush``), one write at a time, skipping a write
when nothing the record holds has changed since the last one. Two
writes never race (the keeper's lock), and a later write always carries a
later state, so the record on disk only moves forward.

Who flushes: an operation, before it returns to its caller (so a write
that fails is the caller's ``JournalError``: never a silently stale record);
and, for what happens with no caller (an exit, a restart by policy, a
health change), a background flush the container schedules -- a failure
there is logged, and the next flush (the next operation) tries again and
raises it to its caller. moby writes ``config.v2.json`` the same way, at
each ``CheckpointTo`` under the container's lock.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import final

import anyio
import anyio.to_thread

from lifecycle._logging import get_logger
from lifecycle._stringid import truncate_id
from lifecycle.journal import Journal, JournalError, JournalRecord

__all__ = ["RecordKeeper"]


@final
class RecordKeeper:
    """Writes one container's record (``snapshot()``) to ``journal`` when it changed."""

    __slots__ = ("_failing", "_journal", "_lock", "_removed", "_snapshot", "_written")

    def __init__(
        self,
        journal: Journal,
        snapshot: Callable[[], JournalRecord],
        written: JournalRecord | None = None,
    ) -> None:
        self._journal = journal
        self._snapshot = snapshot
        self._lock = anyio.Lock()
        # What the file holds now (None: nothing yet).
        self._written = written
        self._removed = False
        self._failing = False

    async def flush(self) -> None:
        """Write the latest record unless the file already holds it.

        Raises ``JournalError`` (naming the file) if it cannot be written; the
        file then still holds the previous record, whole. Cancellation:
        shielded -- a write that began completes.
        """
        with anyio.CancelScope(shield=True):
            async with self._lock:
                if self._removed:
                    return
                record = self._snapshot()
                if record == self._written:
                    return
                try:
                    await anyio.to_thread.run_sync(self._journal.write, record)
                except JournalError:
                    self._failing = True
                    raise
                self._written = record
                if self._failing:
                    self._failing = False
                    get_logger().warning(
                        "journal written again", container_id=truncate_id(record.id)
                    )

    async def flush_in_background(self) -> None:
        """``flush`` with nobody to raise to: a failure is logged (once until a write
        succeeds again), and the next flush tries again."""
        was_failing = self._failing
        try:
            await self.flush()
        except JournalError as error:
            if not was_failing:
                get_logger().error(
                    "journal write failed: the record is behind until a write succeeds",
                    path=error.path,
                    problem=error.problem,
                )

    async def remove(self, container_id: str) -> None:
        """Forget the container on disk; no write follows. ``JournalError`` if the file
        cannot be removed. Cancellation: shielded."""
        with anyio.CancelScope(shield=True):
            async with self._lock:
                self._removed = True
                await anyio.to_thread.run_sync(self._journal.remove, container_id)
