"""HTTP/1.1 on an anyio byte stream, with h11 doing the protocol.

h11 is sans-I/O: it parses and frames, we own the connection. That is what
the Docker API needs and an ASGI server would hide: a streamed response is
flushed chunk by chunk (``docker logs -f``, ``/events``, the headers of
``/wait`` at once), and ``attach`` takes the raw connection over after a
``101 UPGRADED`` (moby ``api/server/router/container/container_routes.go``
hijacks the connection the same way).

One request at a time per connection (keep-alive, no pipelining needed by
Docker's clients). While a streamed response is being sent, the connection
is also read: a client that hangs up ends the stream at once instead of at
the next write (moby's ``CloseNotify``).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Final, final
from urllib.parse import parse_qs, unquote, urlsplit

import anyio
import anyio.abc
import h11

from lifecycle._logging import get_logger

__all__ = [
    "MAX_HEADER_BYTES",
    "HttpError",
    "JsonResponse",
    "Request",
    "Response",
    "StreamResponse",
    "UpgradeResponse",
    "json_line",
    "serve_connection",
]

# Request line + headers. Go's net/http allows 1 MiB; moby's clients send a few hundred bytes.
MAX_HEADER_BYTES: Final = 64 * 1024
_READ_SIZE: Final = 64 * 1024
# Unread body bytes the server reads past to keep a connection alive (more: it closes).
_DRAIN_LIMIT: Final = 1024 * 1024


class HttpError(Exception):
    """An answer other than success: Docker's ``{"message": ...}`` with ``status``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@final
@dataclasses.dataclass(slots=True)
class Response:
    """A whole response: ``body`` (may be empty: 204, 304)."""

    status: int
    body: bytes = b""
    content_type: str | None = None
    headers: tuple[tuple[str, str], ...] = ()


def json_line(document: object) -> bytes:
    """One JSON document, compact as moby writes it, and a newline (also one message of a
    JSON stream: events, pull and load progress, wait)."""
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"


def JsonResponse(status: int, document: object) -> Response:
    """A JSON response (``application/json``)."""
    return Response(status, json_line(document), "application/json")


@final
@dataclasses.dataclass(slots=True)
class StreamResponse:
    """A chunked response: each item of ``chunks`` is sent (and flushed) as it comes.

    The headers go out before the first item is awaited, so a client learns
    at once that its request was taken (``/wait``, ``/events``).
    """

    status: int
    chunks: AsyncIterator[bytes]
    content_type: str


@final
@dataclasses.dataclass(slots=True)
class UpgradeResponse:
    """``101 UPGRADED`` and then ``run(stream)`` owns the raw connection until it returns.

    Only for a request that asked to upgrade (``Connection: Upgrade``); the
    router answers 400 to one that did not.
    """

    content_type: str
    run: Callable[[anyio.abc.ByteStream], Awaitable[None]]
    # Called if ``run`` never gets the connection (the client left first): release what
    # the route took for it.
    abandon: Callable[[], Awaitable[None]] | None = None


Answer = Response | StreamResponse | UpgradeResponse


@final
class Request:
    """One request: method, path (percent-decoded), query, headers; the body read on demand."""

    __slots__ = ("_body", "headers", "method", "path", "query", "target")

    def __init__(
        self,
        method: str,
        target: str,
        headers: Mapping[str, str],
        body: Callable[[], AsyncIterator[bytes]],
    ) -> None:
        self.method = method
        self.target = target
        split = urlsplit(target)
        self.path = unquote(split.path)
        self.query: dict[str, list[str]] = parse_qs(split.query, keep_blank_values=True)
        self.headers = headers
        self._body = body

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.target}>"

    @property
    def wants_upgrade(self) -> bool:
        """The client asked to take the connection over (Docker's ``Upgrade: tcp``)."""
        return "upgrade" in self.headers.get("connection", "").lower()

    def body(self) -> AsyncIterator[bytes]:
        """The body, chunk by chunk (once; a second call yields nothing)."""
        return self._body()

    async def read_body(self, limit: int) -> bytes:
        """The whole body; ``HttpError(413)`` past ``limit`` bytes (nothing is kept then)."""
        parts: list[bytes] = []
        size = 0
        async for chunk in self.body():
            size += len(chunk)
            if size > limit:
                raise HttpError(413, f"request body larger than {limit} bytes")
            parts.append(chunk)
        return b"".join(parts)


Handler = Callable[[Request], Awaitable[Answer]]


class _ClientGone(Exception):
    pass


@final
class _Connection:
    """One client connection: h11's state machine over ``stream``."""

    def __init__(
        self, stream: anyio.abc.ByteStream, handler: Handler, server: str, api_version: str
    ) -> None:
        self._stream = stream
        self._handler = handler
        # moby's version middleware: every response says who answered and in which version.
        self._fixed_headers = [
            ("Api-Version", api_version),
            ("Ostype", "linux"),
            ("Server", server),
        ]
        self._h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEADER_BYTES)
        self._body_open = False

    async def _receive_more(self) -> None:
        try:
            data = await self._stream.receive(_READ_SIZE)
        except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
            data = b""
        self._h11.receive_data(data)

    async def _next_event(self) -> h11.Event | type[h11.PAUSED] | type[h11.NEED_DATA]:
        while True:
            event = self._h11.next_event()
            if event is not h11.NEED_DATA:
                return event
            await self._receive_more()

    async def _send(self, event: h11.Event) -> None:
        data = self._h11.send(event)
        if data:
            try:
                await self._stream.send(data)
            except (anyio.BrokenResourceError, anyio.ClosedResourceError) as error:
                raise _ClientGone from error

    async def _body_chunks(self) -> AsyncIterator[bytes]:
        while self._body_open:
            event = await self._next_event()
            if isinstance(event, h11.Data):
                yield bytes(event.data)
            elif isinstance(event, h11.EndOfMessage):
                self._body_open = False
            else:
                # The client hung up mid-body (ConnectionClosed) or broke the framing.
                self._body_open = False
                raise HttpError(400, "the request body ended before its declared length")

    async def run(self) -> None:  # noqa: PLR0911 -- each way a connection ends
        while True:
            try:
                event = await self._next_event()
            except h11.RemoteProtocolError as error:
                await self._refuse(error)
                return
            if isinstance(event, h11.ConnectionClosed) or event is h11.PAUSED:
                return
            if not isinstance(event, h11.Request):  # pragma: no cover -- h11 orders events
                return
            try:
                keep_going = await self._answer(event)
            except _ClientGone:
                return
            except h11.RemoteProtocolError as error:
                await self._refuse(error)
                return
            if not keep_going or self._h11.our_state is not h11.DONE:
                return
            if not await self._drain_body():
                return  # a long body the route did not read: close rather than read it all
            try:
                self._h11.start_next_cycle()
            except h11.LocalProtocolError:  # pragma: no cover -- both sides are DONE
                return

    async def _drain_body(self) -> bool:
        """Read what is left of the request (a body-less request still has its end to
        read); False if more than ``_DRAIN_LIMIT`` bytes are left."""
        left = _DRAIN_LIMIT
        try:
            async for chunk in self._body_chunks():
                left -= len(chunk)
                if left < 0:
                    return False
        except HttpError:
            return False
        return self._h11.their_state is h11.DONE

    async def _refuse(self, error: h11.RemoteProtocolError) -> None:
        if self._h11.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            return
        status = error.error_status_hint
        try:
            await self._send_whole(Response(status, *_error_body(f"bad request: {error}")))
        except (_ClientGone, h11.LocalProtocolError):
            return

    async def _answer(self, event: h11.Request) -> bool:
        headers = {
            name.decode("latin-1").lower(): value.decode("latin-1") for name, value in event.headers
        }
        self._body_open = True
        request = Request(
            event.method.decode("ascii"),
            event.target.decode("latin-1"),
            headers,
            self._body_chunks,
        )
        try:
            answer = await self._handler(request)
        except HttpError as error:
            answer = Response(error.status, *_error_body(error.message))
        except Exception as error:  # a bug: the client gets a 500, the server keeps serving
            get_logger().exception(
                "API request failed", method=request.method, target=request.target
            )
            answer = Response(500, *_error_body(f"internal error: {type(error).__name__}: {error}"))
        status = answer.status if isinstance(answer, Response | StreamResponse) else 101
        get_logger().debug(
            "API request", method=request.method, target=request.target, status=status
        )
        if isinstance(answer, Response):
            await self._send_whole(answer)
            return True
        if isinstance(answer, StreamResponse):
            await self._send_stream(answer)
            return True
        if not request.wants_upgrade:
            if answer.abandon is not None:
                await answer.abandon()
            message = (
                "this endpoint needs the connection upgraded (Connection: Upgrade, Upgrade: tcp)"
            )
            await self._send_whole(Response(400, *_error_body(message)))
            return True
        await self._upgrade(request, answer)
        return False

    def _headers(
        self, content_type: str | None, extra: tuple[tuple[str, str], ...] = ()
    ) -> list[tuple[str, str]]:
        headers = list(self._fixed_headers)
        if content_type is not None:
            headers.append(("Content-Type", content_type))
        headers.extend(extra)
        return headers

    async def _send_whole(self, response: Response) -> None:
        headers = self._headers(response.content_type if response.body else None, response.headers)
        if response.status not in (204, 304):
            headers.append(("Content-Length", str(len(response.body))))
        await self._send(h11.Response(status_code=response.status, headers=headers))
        if response.body and response.status not in (204, 304):
            await self._send(h11.Data(data=response.body))
        await self._send(h11.EndOfMessage())

    async def _send_stream(self, response: StreamResponse) -> None:
        headers = self._headers(response.content_type, (("Transfer-Encoding", "chunked"),))
        await self._send(h11.Response(status_code=response.status, headers=headers))
        hung_up = False
        async with anyio.create_task_group() as group:

            async def watch_for_hangup() -> None:
                nonlocal hung_up
                await self._wait_for_hangup()
                hung_up = True
                group.cancel_scope.cancel()

            group.start_soon(watch_for_hangup)
            try:
                async for chunk in response.chunks:
                    if chunk:
                        await self._send(h11.Data(data=chunk))
            finally:
                aclose = getattr(response.chunks, "aclose", None)
                if aclose is not None:
                    with anyio.CancelScope(shield=True):
                        await aclose()
            group.cancel_scope.cancel()
        if hung_up:
            raise _ClientGone
        await self._send(h11.EndOfMessage())

    async def _wait_for_hangup(self) -> None:
        """Return when the client closes its side (anything it sends meanwhile is kept)."""
        while True:
            try:
                data = await self._stream.receive(_READ_SIZE)
            except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
                return
            self._h11.receive_data(data)

    async def _upgrade(self, request: Request, answer: UpgradeResponse) -> None:
        try:
            await self._switch(request, answer)
        except BaseException:
            if answer.abandon is not None:
                await answer.abandon()
            raise
        await answer.run(self._stream)

    async def _switch(self, request: Request, answer: UpgradeResponse) -> None:
        # The request must be complete before the protocol switches (h11's rule).
        async for _ in request.body():
            pass
        headers = self._headers(
            answer.content_type, (("Connection", "Upgrade"), ("Upgrade", "tcp"))
        )
        await self._send(
            h11.InformationalResponse(status_code=101, headers=headers, reason=b"UPGRADED")
        )


def _error_body(message: str) -> tuple[bytes, str]:
    return json_line({"message": message}), "application/json"


async def serve_connection(
    stream: anyio.abc.ByteStream, handler: Handler, *, server: str, api_version: str
) -> None:
    """Answer requests on ``stream`` with ``handler`` until the client goes; then close it.

    Every response carries ``Server``, ``Api-Version`` and ``Ostype`` (moby's
    version middleware). Cancellation: the connection is closed at once.
    """
    connection = _Connection(stream, handler, server, api_version)
    try:
        await connection.run()
    except Exception:  # a bug must not take the server down: log it, drop the client
        get_logger().exception("API connection failed")
    finally:
        with anyio.CancelScope(shield=True):
            await stream.aclose()
