"""Captured output: nothing lost silently, exact bytes, complete before die, follow mode."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

import anyio
import pytest
import structlog.testing

from lifecycle import Engine, InvalidArgumentError, LogLine, RestartPolicy
from lifecycle._polling import poll_until
from lifecycle.logs import read_log_file

pytestmark = pytest.mark.anyio

LINES = 100_000
WRITER = [
    "python3",
    "-c",
    f"import sys; sys.stdout.write(''.join(f'{{i}}\\n' for i in range({LINES})))",
]


async def test_a_flood_of_lines_is_kept_in_order_when_it_fits() -> None:
    """100,000 lines written as fast as possible are all captured, in order."""
    with anyio.fail_after(60):
        async with Engine() as engine:
            container = await engine.create(WRITER, log_bytes=16 * 1024 * 1024)
            await container.start()
            assert 0 == await container.wait()
            lines = container.logs()
            statistics = container.log_statistics()
    assert [f"{i}\n".encode() for i in range(LINES)] == [line.data for line in lines]
    assert {"stdout"} == {line.stream for line in lines}
    assert (LINES, 0, 0) == (statistics.lines, statistics.dropped_lines, statistics.dropped_bytes)


async def test_a_flood_that_does_not_fit_is_counted_not_lost_silently() -> None:
    """With a small buffer the oldest lines go, every one of them counted; the newest stay."""
    with anyio.fail_after(60):
        async with Engine() as engine:
            container = await engine.create(WRITER, log_bytes=64 * 1024)
            await container.start()
            await container.wait()
            lines = container.logs()
            statistics = container.log_statistics()
    kept = len(lines)
    assert 0 < kept < LINES
    assert LINES == kept + statistics.dropped_lines
    assert [f"{i}\n".encode() for i in range(LINES - kept, LINES)] == [line.data for line in lines]
    assert sum(len(f"{i}\n") for i in range(LINES - kept)) == statistics.dropped_bytes
    assert sum(len(line.data) for line in lines) <= 64 * 1024


@pytest.mark.parametrize("attempt", range(10))
async def test_output_written_just_before_exit_is_there_when_wait_returns(attempt: int) -> None:
    """The last words on stdout and stderr are captured before die and before wait() returns."""
    with anyio.fail_after(10):
        async with Engine() as engine:
            container = await engine.create(["sh", "-c", "echo last words; echo oops >&2; exit 5"])
            async with engine.subscribe(actions={"die"}) as deaths:
                await container.start()
                await deaths.__anext__()
                at_die = [line.text for line in container.logs()]
            assert 5 == await container.wait()
    assert sorted(["last words", "oops"]) == sorted(at_die)


async def test_partial_last_lines_binary_and_long_lines_survive() -> None:
    """No final newline, arbitrary bytes, and 16 KiB pieces of a longer line are kept exactly."""
    payload = (
        "import sys; w = sys.stdout.buffer.write; w(b'a\\x00\\xff\\n' + b'x' * 40000 + b'\\nend')"
    )
    with anyio.fail_after(10):
        async with Engine() as engine:
            container = await engine.create(["python3", "-c", payload])
            await container.start()
            await container.wait()
            data = [line.data for line in container.logs()]
    assert b"a\x00\xff\n" == data[0]
    assert [16384, 16384, 40000 - 32768 + 1] == [len(piece) for piece in data[1:4]]
    assert b"x" * 40000 + b"\n" == b"".join(data[1:4])
    assert b"end" == data[4]
    assert 5 == len(data)


async def test_filters_tail_since_and_streams() -> None:
    """stdout/stderr select streams; tail keeps the last N; since drops older lines."""
    script = "echo one; echo two >&2; echo three"
    with anyio.fail_after(10):
        async with Engine() as engine:
            container = await engine.create(["sh", "-c", script])
            await container.start()
            await container.wait()
            assert ["one", "three"] == [line.text for line in container.logs(stderr=False)]
            assert ["two"] == [line.text for line in container.logs(stdout=False)]
            assert ["three"] == [line.text for line in container.logs(stderr=False, tail=1)]
            assert [] == container.logs(tail=0)
            assert [] == container.logs(since=datetime.now(UTC))
            assert 3 == len(container.logs(since=0.0))
            with pytest.raises(InvalidArgumentError, match="tail must be"):
                container.logs(tail=-1)
            with pytest.raises(InvalidArgumentError, match="aware datetime"):
                container.logs(since=datetime(2026, 1, 1))


async def test_follow_ends_when_the_container_stops_for_good() -> None:
    """follow=True yields old and new lines across policy restarts, and ends at the final stop."""
    script = "echo up; sleep 0.05; echo down; exit 1"
    policy = RestartPolicy("on-failure", max_retries=2, initial_delay=0.02)
    seen: list[LogLine] = []
    with anyio.fail_after(20):
        async with Engine() as engine:
            container = await engine.create(["sh", "-c", script], restart=policy)
            await container.start()
            async for line in container.logs(follow=True):
                seen.append(line)
            assert not container.restarting
            assert 2 == container.restart_count
    assert ["up", "down"] * 3 == [line.text for line in seen]


async def test_log_file_sink_writes_json_lines_like_docker(tmp_path: Path) -> None:
    """log_file gets one JSON object per line: log, stream, RFC 3339 time."""
    sink = tmp_path / "web.log"
    with anyio.fail_after(10):
        async with Engine() as engine:
            container = await engine.create(
                ["sh", "-c", "echo hello; echo world >&2"], log_file=sink
            )
            await container.start()
            await container.wait()
    records = [json.loads(line) for line in sink.read_text().splitlines()]
    assert sorted([("hello\n", "stdout"), ("world\n", "stderr")]) == sorted(
        (record["log"], record["stream"]) for record in records
    )
    for record in records:
        assert record["time"].endswith("Z")
        datetime.fromisoformat(record["time"][:26] + "+00:00")


async def test_output_not_captured_when_asked() -> None:
    """capture_output=False hands the child our stdout; nothing is kept."""
    with anyio.fail_after(10):
        async with Engine() as engine:
            container = await engine.create(["true"], capture_output=False)
            await container.start()
            await container.wait()
            assert [] == container.logs()


async def test_bad_log_options_are_refused() -> None:
    """log_bytes below one and empty log_file paths are refused, naming the option."""
    with anyio.fail_after(10):
        async with Engine() as engine:
            with pytest.raises(InvalidArgumentError, match="log_bytes"):
                await engine.create(["true"], log_bytes=0)
            with pytest.raises(InvalidArgumentError, match="log_file"):
                await engine.create(["true"], log_file="")
            assert [] == engine.containers()


@pytest.mark.parametrize(
    ("where", "reason"),
    [
        ("missing/web.log", "no such file or directory"),
        (".", "is a directory"),
        ("fifo", "no such device or address"),  # a FIFO nobody reads: refused, never waited on
    ],
)
async def test_a_log_file_that_cannot_be_opened_is_refused_at_create(
    tmp_path: Path, where: str, reason: str
) -> None:
    """InvalidArgumentError names the path and why; no container, no file; a clean exit."""
    os.mkfifo(tmp_path / "fifo")
    path = tmp_path / where
    before = sorted(tmp_path.rglob("*"))
    with anyio.fail_after(10):
        async with Engine() as engine:
            with pytest.raises(InvalidArgumentError) as refused:
                await engine.create(["echo", "hi"], log_file=path)
            assert [] == engine.containers()
    assert str(path) in str(refused.value)
    assert reason in str(refused.value)
    assert before == sorted(tmp_path.rglob("*"))


async def test_a_log_file_on_a_full_disk_loses_lines_counted_never_raised() -> None:
    """/dev/full takes no line: each is counted, the failure is logged once, memory keeps all."""
    lines = 50
    with anyio.fail_after(10), structlog.testing.capture_logs() as logged:
        async with Engine() as engine:
            container = await engine.create(
                ["sh", "-c", f"i=0; while [ $i -lt {lines} ]; do echo line $i; i=$((i+1)); done"],
                log_file="/dev/full",
            )
            await container.start()
            assert 0 == await container.wait()
            await container.start()  # a second run's lines fail too, and are logged no more
            assert 0 == await container.wait()
        # Leaving the engine flushed the rest: nothing was raised out of it.
        statistics = container.log_statistics()
    kept = container.logs()
    assert 2 * lines == len(kept) == statistics.file_lost_lines
    assert sum(len(line.data) for line in kept) == statistics.file_lost_bytes
    failures = [entry for entry in logged if entry["event"].startswith("log file write failed")]
    assert 1 == len(failures), logged
    assert "/dev/full" == failures[0]["path"]
    assert "ENOSPC" in failures[0]["error"]


async def test_a_log_file_that_fails_later_keeps_the_lines_written_before(tmp_path: Path) -> None:
    """Lines reach the file while it works; after its directory is gone they are counted lost."""
    directory = tmp_path / "logs"
    directory.mkdir()
    sink = directory / "web.log"
    with anyio.fail_after(10):
        async with Engine() as engine:
            container = await engine.create(["echo", "first"], log_file=sink)
            await container.start()
            await container.wait()
            assert await poll_until(lambda: sink.exists() and sink.stat().st_size > 0, 5)
            sink.unlink()
            directory.rmdir()
            await container.start()
            await container.wait()
        statistics = container.log_statistics()
    assert (1, len(b"first\n")) == (statistics.file_lost_lines, statistics.file_lost_bytes)
    assert ["first", "first"] == [line.text for line in container.logs()]


async def test_a_log_files_tail_reads_back_as_the_lines_it_was_written_from(
    tmp_path: Path,
) -> None:
    """read_log_file (what a restored container's logs() starts with): the exact lines,
    streams and nanosecond times of the container's output, the last max_bytes of them;
    a line torn by a crash mid-append is skipped, not misread."""
    sink = tmp_path / "web.log"
    with anyio.fail_after(10):
        async with Engine() as engine:
            container = await engine.create(
                ["sh", "-c", "for i in 1 2 3 4 5 6 7 8 9; do echo line$i; done; echo é >&2"],
                log_file=sink,
            )
            await container.start()
            await container.wait()
            written = container.logs()
    assert written == read_log_file(sink, 1 << 20)
    assert written[-3:] == read_log_file(sink, 3 * len(b"line9\n"))  # é\n is 3 bytes too
    with sink.open("a") as log:
        log.write('{"log": "torn')  # a crash in the middle of an append
    assert written == read_log_file(sink, 1 << 20)
    assert [] == read_log_file(tmp_path / "missing.log", 100)
