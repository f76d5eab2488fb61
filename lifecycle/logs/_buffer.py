"""Captured output: what a container wrote on stdout and stderr, line by line.

A runtime driver reads what the process writes (the native driver: two
pipes, non-blocking reads when epoll says so) and feeds it here; this
buffer cuts it into lines. A ``LogBuffer`` is the driver's output sink
(``runtime.OutputSink``: ``feed`` and ``finish``). A line keeps its bytes
exactly (binary output survives), its newline if it had one, its stream
and the time it was read. A line longer than 16 KiB is cut into pieces, as
Docker's log drivers do; the last piece of a stream without a final
newline is kept as it is.

The buffer is bounded by bytes (default 1 MiB of output per container, kept
across restarts); the oldest lines leave first, and every line that leaves
is counted (``dropped_lines``, ``dropped_bytes``): never silently lost.

An optional file sink appends each line as a JSON object, like Docker's
json-file driver, from a worker thread: the engine never waits for a disk.
The file is opened once at create (``open_log_file``: a path that cannot be
opened is refused before anything exists); a write that fails later (a full
disk, an I/O error) loses those lines from the file only: they are counted
(``file_lost_lines``, ``file_lost_bytes``), the first failure is logged, and
nothing is raised into the engine. The kept lines in memory are unaffected.
"""

from __future__ import annotations

import collections
import dataclasses
import errno
import itertools
import json
import logging
import os
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Final, Literal, final

import anyio
import anyio.to_thread

from lifecycle._errors import InvalidArgumentError
from lifecycle._logging import get_logger
from lifecycle.model import DEFAULT_LOG_BYTES, check_whole_number

__all__ = [
    "DEFAULT_LOG_BYTES",
    "MAX_LINE_BYTES",
    "LogBuffer",
    "LogLine",
    "LogStatistics",
    "Stream",
    "follow",
    "open_log_file",
    "rfc3339_nano",
]

# Docker's json-file driver creates its log files 0640 (daemon/logger/jsonfilelog).
LOG_FILE_MODE: Final = 0o640
_OPEN_FLAGS: Final = os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC

# moby's log drivers cut lines at 16 KiB (logger.DefaultMaxBufferSize is
# 1 MiB, but the copier emits 16K "partial" messages; daemon/logger/copier.go).
MAX_LINE_BYTES: Final = 16 * 1024

Stream = Literal["stdout", "stderr"]


@final
@dataclasses.dataclass(frozen=True, slots=True)
class LogLine:
    """One line of output: its exact bytes (with its newline, if it had one)."""

    stream: Stream
    time_ns: int
    data: bytes

    @property
    def text(self) -> str:
        """The line decoded as UTF-8 (undecodable bytes replaced), without its newline."""
        return self.data.decode("utf-8", errors="replace").removesuffix("\n")

    def __repr__(self) -> str:
        return f"<LogLine {self.stream} {self.data[:60]!r}>"


def rfc3339_nano(time_ns: int) -> str:
    """Nanoseconds since the epoch as RFC 3339 with 9 decimals, UTC (Docker's log times)."""
    seconds, nanoseconds = divmod(time_ns, 1_000_000_000)
    stamp = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{nanoseconds:09d}Z"


def _json_file_line(line: LogLine) -> str:
    # Docker's json-file driver: {"log": "...", "stream": "stdout", "time": RFC 3339 nano}.
    return json.dumps(
        {
            "log": line.data.decode("utf-8", errors="replace"),
            "stream": line.stream,
            "time": rfc3339_nano(line.time_ns),
        },
        ensure_ascii=False,
    )


@final
@dataclasses.dataclass(frozen=True, slots=True)
class LogStatistics:
    """The kept output of a container, and what fell off the end of its buffer."""

    lines: int
    max_bytes: int
    dropped_lines: int
    dropped_bytes: int
    # Lines (and their bytes of output) the log file did not get because a write failed.
    file_lost_lines: int = 0
    file_lost_bytes: int = 0


@final
class LogBuffer:
    """The kept output of one container, bounded by ``max_bytes``."""

    __slots__ = (
        "_file",
        "_file_failed",
        "_file_pending",
        "_file_wakeup",
        "_grew",
        "_lines",
        "_partial",
        "_size",
        "dropped_bytes",
        "dropped_lines",
        "file_lost_bytes",
        "file_lost_lines",
        "first_index",
        "max_bytes",
    )

    def __init__(self, max_bytes: int = DEFAULT_LOG_BYTES, file: Path | None = None) -> None:
        self.max_bytes = check_whole_number(max_bytes, "log_bytes", minimum=1)
        self._lines: collections.deque[LogLine] = collections.deque()
        self._size = 0
        self._partial: dict[Stream, bytearray] = {"stdout": bytearray(), "stderr": bytearray()}
        self._grew: anyio.Event | None = None  # created by the first follower
        # Index of self._lines[0] among every line ever kept (for followers).
        self.first_index = 0
        self.dropped_lines = 0
        self.dropped_bytes = 0
        self._file = file
        self._file_pending: list[LogLine] = []
        self._file_wakeup = anyio.Event()
        self._file_failed = False  # the first failed write is logged, later ones counted
        self.file_lost_lines = 0
        self.file_lost_bytes = 0

    def __len__(self) -> int:
        return len(self._lines)

    def statistics(self) -> LogStatistics:
        """How much is kept, and how much fell off the end (trio's ``statistics()``)."""
        return LogStatistics(
            lines=len(self._lines),
            max_bytes=self.max_bytes,
            dropped_lines=self.dropped_lines,
            dropped_bytes=self.dropped_bytes,
            file_lost_lines=self.file_lost_lines,
            file_lost_bytes=self.file_lost_bytes,
        )

    @property
    def next_index(self) -> int:
        return self.first_index + len(self._lines)

    def _append(self, stream: Stream, data: bytes | bytearray) -> None:
        line = LogLine(stream, time.time_ns(), bytes(data))
        self._lines.append(line)
        self._size += len(line.data)
        while self._size > self.max_bytes and len(self._lines) > 1:
            gone = self._lines.popleft()
            self._size -= len(gone.data)
            self.first_index += 1
            self.dropped_lines += 1
            self.dropped_bytes += len(gone.data)
        if self._file is not None:
            self._file_pending.append(line)
            self._file_wakeup.set()
        self.wake_followers()

    def preload(self, lines: list[LogLine]) -> None:
        """Keep ``lines`` (read back from the log file at restore) as if they had just been
        read, up to ``max_bytes``; the file is not written again."""
        for line in lines:
            self._lines.append(line)
            self._size += len(line.data)
        while self._size > self.max_bytes and len(self._lines) > 1:
            self._size -= len(self._lines.popleft().data)

    def feed(self, stream: Stream, chunk: bytes) -> None:
        """Add a chunk read from ``stream``: whole lines are kept, the rest waits for more."""
        pending = self._partial[stream]
        pending += chunk
        start = 0
        while True:
            newline = pending.find(b"\n", start, start + MAX_LINE_BYTES)
            if newline >= 0:
                self._append(stream, pending[start : newline + 1])
                start = newline + 1
            elif len(pending) - start >= MAX_LINE_BYTES:
                self._append(stream, pending[start : start + MAX_LINE_BYTES])
                start += MAX_LINE_BYTES
            else:
                break
        del pending[:start]

    def finish(self, stream: Stream) -> None:
        """The stream ended: keep its last line even without a newline."""
        pending = self._partial[stream]
        if pending:
            self._append(stream, pending)
            pending.clear()

    def select(
        self,
        *,
        stdout: bool = True,
        stderr: bool = True,
        since_ns: int | None = None,
        start: int | None = None,
        tail: int | None = None,
    ) -> tuple[list[LogLine], int]:
        """Kept lines that pass the filters (from index ``start``; the last ``tail`` of
        them); and the next index.

        Costs O(lines returned) when ``start`` is given: followers read from the end.
        """
        if start is None:
            candidates: list[LogLine] = list(self._lines)
        else:
            wanted = max(0, min(len(self._lines), self.next_index - start))
            candidates = list(itertools.islice(reversed(self._lines), wanted))
            candidates.reverse()
        chosen = [
            line
            for line in candidates
            if ((line.stream == "stdout" and stdout) or (line.stream == "stderr" and stderr))
            and (since_ns is None or line.time_ns >= since_ns)
        ]
        if tail is not None:
            chosen = chosen[-tail:] if tail else []
        return chosen, self.next_index

    async def wait_for_more(self) -> None:
        """Wait until a line is added (cancellable)."""
        if self._grew is None:
            self._grew = anyio.Event()
        await self._grew.wait()

    def wake_followers(self) -> None:
        """Wake followers without a new line (the container's state changed)."""
        grew, self._grew = self._grew, None
        if grew is not None:
            grew.set()

    async def write_file_forever(self) -> None:
        """Append kept lines to the file sink, in batches, from a worker thread."""
        path = self._file
        if path is None:
            return
        while True:
            await self._file_wakeup.wait()
            self._file_wakeup = anyio.Event()
            await self.flush_file()

    async def flush_file(self) -> None:
        """Append the lines waiting for the file sink; a failed write is counted, never raised.

        Cancellation: the batch in hand is written all the same (the worker
        thread cannot be stopped halfway), then the cancellation propagates.
        """
        path = self._file
        batch, self._file_pending = self._file_pending, []
        if path is None or not batch:
            return
        records = [(_json_file_line(line) + "\n").encode("utf-8") for line in batch]
        written, error = await anyio.to_thread.run_sync(_append_records, path, records)
        if error is None:
            return
        lost = batch[written:]
        self.file_lost_lines += len(lost)
        self.file_lost_bytes += sum(len(line.data) for line in lost)
        if not self._file_failed:
            self._file_failed = True
            logger = get_logger(logging.WARNING)
            if logger is not None:
                logger.warning(
                    "log file write failed; lines it misses are counted in log_statistics()",
                    path=str(path),
                    error=f"{errno.errorcode.get(error.errno or 0, '?')}: {error.strerror}",
                    lost_lines=len(lost),
                )


def _parse_time(stamp: str) -> int:
    """``rfc3339_nano``'s text back to nanoseconds since the epoch."""
    whole, _, fraction = stamp.removesuffix("Z").partition(".")
    seconds = int(datetime.fromisoformat(whole).replace(tzinfo=UTC).timestamp())
    return seconds * 1_000_000_000 + int(fraction.ljust(9, "0")[:9] or 0)


def read_log_file(path: Path, max_bytes: int) -> list[LogLine]:
    """The last lines of a json-file log (what a restored container's ``logs()`` shows).

    At most ``max_bytes`` of output, read from the end of the file (a long log
    costs one seek, not a read of it all). A line that is not one of ours (torn
    by a crash mid-append, or edited) is skipped. Blocking: call it in a thread.
    """
    try:
        with path.open("rb") as file:
            size = file.seek(0, os.SEEK_END)
            # JSON escaping can triple the bytes of a line; a little more than that.
            start = max(0, size - 4 * max_bytes - MAX_LINE_BYTES)
            file.seek(start)
            data = file.read()
    except OSError:
        return []
    records = data.split(b"\n")
    if start > 0:
        records = records[1:]  # begins mid-line
    lines: list[LogLine] = []
    for record in records:
        try:
            document = json.loads(record)
            stream = document["stream"]
            if stream not in ("stdout", "stderr"):
                continue
            lines.append(
                LogLine(stream, _parse_time(document["time"]), document["log"].encode("utf-8"))
            )
        except (ValueError, KeyError, TypeError, AttributeError):
            continue
    kept: list[LogLine] = []
    total = 0
    for line in reversed(lines):
        total += len(line.data)
        if total > max_bytes and kept:
            break
        kept.append(line)
    return kept[::-1]


def open_log_file(path: Path) -> bool:
    """Check at create that ``path`` can take a container's log; True if this created it.

    Opened for appending (created ``0640`` if missing, as Docker's json-file
    driver does), without blocking (a FIFO with no reader is refused rather
    than waited on), then closed again: each batch reopens it, so the file
    costs no descriptor while the container lives. ``InvalidArgumentError``
    names the path and the reason when it cannot be opened or is a directory.
    """
    created = False
    try:
        try:
            fd = os.open(path, _OPEN_FLAGS | os.O_NONBLOCK)
        except FileNotFoundError:
            fd = os.open(path, _OPEN_FLAGS | os.O_NONBLOCK | os.O_CREAT | os.O_EXCL, LOG_FILE_MODE)
            created = True
    except OSError as error:
        raise InvalidArgumentError(
            f"log_file {str(path)!r} cannot be opened for appending: {_reason(error)}"
        ) from None
    os.close(fd)
    return created


def _reason(error: OSError) -> str:
    name = errno.errorcode.get(error.errno or 0, "?")
    return f"{(error.strerror or str(error)).lower()} ({name})"


def _append_records(path: Path, records: list[bytes]) -> tuple[int, OSError | None]:
    """Append ``records`` to ``path``; how many were written whole, and the error if one failed."""
    try:
        fd = os.open(path, _OPEN_FLAGS | os.O_CREAT, LOG_FILE_MODE)
    except OSError as error:
        return 0, error
    try:
        data = memoryview(b"".join(records))
        done = 0
        try:
            while done < len(data):
                done += os.write(fd, data[done:])
        except OSError as error:
            # Count the records that made it whole; a torn last one counts as lost.
            whole = 0
            for record in records:
                if done < len(record):
                    break
                done -= len(record)
                whole += 1
            return whole, error
        return len(records), None
    finally:
        os.close(fd)


async def follow(
    buffer: LogBuffer,
    *,
    stdout: bool,
    stderr: bool,
    since_ns: int | None,
    tail: int | None,
    finished: Callable[[], bool],
) -> AsyncIterator[LogLine]:
    """Kept lines (the last ``tail``), then new ones, until ``finished()`` and nothing is left."""
    lines, position = buffer.select(stdout=stdout, stderr=stderr, since_ns=since_ns, tail=tail)
    for line in lines:
        yield line
    while True:
        done = finished()  # asked before reading, so lines added until now are still taken
        if not done:
            await buffer.wait_for_more()
        lines, position = buffer.select(
            stdout=stdout, stderr=stderr, since_ns=since_ns, start=position
        )
        for line in lines:
            yield line
        if done:
            return
