"""The API's pure parts: go-units' words, RFC 3339, the events reader that falls behind."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import anyio
import pytest
from structlog.testing import capture_logs

from lifecycle.api._events import EventLog
from lifecycle.api._formats import human_duration, rfc3339

pytestmark = pytest.mark.timeout(30)


@pytest.mark.parametrize(
    ("seconds", "words"),
    [
        (0, "Less than a second"),
        (0.9, "Less than a second"),
        (1, "1 second"),
        (2, "2 seconds"),
        (59, "59 seconds"),
        (60, "About a minute"),
        (119, "About a minute"),
        (120, "2 minutes"),
        (59 * 60, "59 minutes"),
        (3600, "About an hour"),
        (2 * 3600, "2 hours"),
        (47 * 3600, "47 hours"),
        (48 * 3600, "2 days"),
        (13 * 86400, "13 days"),
        (14 * 86400, "2 weeks"),
        (59 * 86400, "8 weeks"),
        (60 * 86400, "2 months"),
        (729 * 86400, "24 months"),
        (730 * 86400, "2 years"),
    ],
)
def test_human_duration_is_go_units(seconds: float, words: str) -> None:
    """go-units HumanDuration's cases (docker ps STATUS: "Up 2 minutes")."""
    assert words == human_duration(seconds)


def test_rfc3339_is_gos_nano_form() -> None:
    assert "0001-01-01T00:00:00Z" == rfc3339(None)
    assert "2026-12-02T10:11:12Z" == rfc3339(datetime(2026, 12, 2, 10, 11, 12, tzinfo=UTC))
    moment = datetime(2026, 12, 2, 10, 11, 12, 500_000, tzinfo=UTC)
    assert "2026-12-02T10:11:12.5Z" == rfc3339(moment)


def _message(number: int) -> dict[str, Any]:
    return {"Action": "start", "timeNano": number, "n": number}


@pytest.mark.anyio
async def test_a_reader_that_falls_behind_is_disconnected_not_silently_skipped() -> None:
    log = EventLog(history=5, reader_buffer=3)
    with anyio.fail_after(5), capture_logs() as logs, log.reader() as (history, live):
        assert [] == history
        for number in range(4):  # one more than the reader's buffer
            log.add(_message(number))
        received = [message["n"] async for message in live]  # ends: the stream was closed
    assert [0, 1, 2] == received
    assert ["events reader too slow: disconnected"] == [entry["event"] for entry in logs]


@pytest.mark.anyio
async def test_history_is_kept_for_since_and_a_keeping_up_reader_gets_everything() -> None:
    log = EventLog(history=2, reader_buffer=10)
    for number in range(3):
        log.add(_message(number))
    with anyio.fail_after(5), log.reader() as (history, live):
        assert [1, 2] == [message["n"] for message in history]
        log.add(_message(3))
        log.close()
        assert [3] == [message["n"] async for message in live]


@pytest.mark.anyio
async def test_a_failing_route_is_a_500_and_the_connection_keeps_serving() -> None:
    """A bug in a route must not drop the client or the server: 500, then the next request."""
    import socket  # noqa: PLC0415

    import anyio.abc  # noqa: PLC0415

    from lifecycle.api._http import Request, Response, serve_connection  # noqa: PLC0415

    calls = 0

    async def handler(request: Request) -> Response:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("a bug")
        return Response(200, b"fine", "text/plain")

    ours, theirs = socket.socketpair()
    server_side = await anyio.abc.SocketStream.from_socket(ours)
    client_side = await anyio.abc.SocketStream.from_socket(theirs)
    request = b"GET /x HTTP/1.1\r\nHost: t\r\n\r\n"
    with anyio.fail_after(10), capture_logs() as logs:
        async with anyio.create_task_group() as group:
            group.start_soon(
                lambda: serve_connection(server_side, handler, server="t", api_version="1.50")
            )
            replies = b""
            await client_side.send(request)
            while b"a bug" not in replies:
                replies += await client_side.receive()
            await client_side.send(request)
            while not replies.endswith(b"fine"):
                replies += await client_side.receive()
            await client_side.aclose()
    assert replies.startswith(b"HTTP/1.1 500")
    assert b"internal error: RuntimeError: a bug" in replies
    assert b"HTTP/1.1 200" in replies
    assert "API request failed" in [entry["event"] for entry in logs]
