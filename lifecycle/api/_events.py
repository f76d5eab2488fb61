"""``GET /events``: the engine's events as moby's ``events.Message`` stream, with replay.

One lossless engine subscription feeds a history (the last ``HISTORY``
messages, for ``since``) and every connected reader. A reader has a bounded
queue; one that falls that far behind is disconnected with a warning in the
server's log, so it sees its stream end instead of silently missing events
(moby drops a slow subscriber's events quietly; we chose the visible failure).
"""

from __future__ import annotations

import collections
import math
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any, Final, final

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from lifecycle._logging import get_logger
from lifecycle.api._formats import event_message
from lifecycle.api._http import HttpError, Request, StreamResponse, json_line
from lifecycle.api._params import label_matches, parse_filters, timestamp_ns
from lifecycle.api._state import ApiState

__all__ = ["HISTORY", "READER_BUFFER", "EventLog", "events"]

# moby's events service replays the last 256 events to `docker events --since`; we keep more.
HISTORY: Final = 1024
# Messages a reader may fall behind before it is disconnected (moby buffers 1024 per reader).
READER_BUFFER: Final = 10_000
_FILTERS: Final = frozenset({"container", "event", "type", "label", "image", "scope"})


@final
class EventLog:
    """The recent messages and the readers waiting for more."""

    def __init__(self, *, history: int = HISTORY, reader_buffer: int = READER_BUFFER) -> None:
        self._history: collections.deque[dict[str, Any]] = collections.deque(maxlen=history)
        self._readers: set[MemoryObjectSendStream[dict[str, Any]]] = set()
        self._reader_buffer = reader_buffer

    async def record_forever(self, state: ApiState) -> None:
        """Follow the engine's events until it closes; forget records after their destroy."""
        async with state.engine.subscribe(lossless=True) as subscription:
            async for event in subscription:
                message = event_message(event, state.records.get(event.container_id))
                if event.action == "destroy":
                    state.records.pop(event.container_id, None)
                self.add(message)
        self.close()

    def add(self, message: dict[str, Any]) -> None:
        self._history.append(message)
        for reader in list(self._readers):
            try:
                reader.send_nowait(message)
            except anyio.WouldBlock:
                get_logger().warning(
                    "events reader too slow: disconnected",
                    behind=self._reader_buffer,
                )
                self._readers.discard(reader)
                reader.close()
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                self._readers.discard(reader)

    def close(self) -> None:
        for reader in self._readers:
            reader.close()
        self._readers.clear()

    @contextmanager
    def reader(
        self,
    ) -> Iterator[tuple[list[dict[str, Any]], MemoryObjectReceiveStream[dict[str, Any]]]]:
        """The history now, and a stream of every message after it (nothing between is lost)."""
        send, receive = anyio.create_memory_object_stream[dict[str, Any]](self._reader_buffer)
        self._readers.add(send)
        try:
            yield list(self._history), receive
        finally:
            self._readers.discard(send)
            send.close()
            receive.close()


def _matches(message: dict[str, Any], filters: dict[str, set[str]]) -> bool:
    attributes = message["Actor"]["Attributes"]
    for key, values in filters.items():
        if not values:
            continue
        if key == "type":
            ok = message["Type"] in values
        elif key == "event":
            # moby matches "health_status" too for "health_status: healthy" (its prefix).
            action = message["Action"]
            ok = action in values or action.split(":", 1)[0] in values
        elif key == "container":
            ok = any(
                value == attributes.get("name") or message["id"].startswith(value)
                for value in values
            )
        elif key == "image":
            ok = attributes.get("image") in values
        elif key == "label":
            ok = all(label_matches(value, attributes) for value in values)
        else:  # scope
            ok = "local" in values
        if not ok:
            return False
    return True


async def events(state: ApiState, log: EventLog, request: Request) -> StreamResponse:
    """``GET /events?since=&until=&filters=``: replay from ``since``, then live until ``until``."""
    filters = parse_filters(request, _FILTERS)
    since_ns = timestamp_ns(request, "since")
    until_ns = timestamp_ns(request, "until")
    if since_ns is not None and until_ns is not None and until_ns < since_ns:
        raise HttpError(400, "until must not be before since")

    async def stream() -> AsyncIterator[bytes]:
        with log.reader() as (history, live):
            if since_ns is not None:
                for message in history:
                    if message["timeNano"] < since_ns:
                        continue
                    if until_ns is not None and message["timeNano"] > until_ns:
                        return
                    if _matches(message, filters):
                        yield json_line(message)
            deadline = math.inf if until_ns is None else until_ns / 1e9
            # The deadline is wall-clock (a Unix time), the wait a monotonic one.
            remaining = deadline - time.time()
            if remaining <= 0:
                return
            with anyio.move_on_after(remaining):
                async for message in live:
                    if until_ns is not None and message["timeNano"] > until_ns:
                        return
                    if _matches(message, filters):
                        yield json_line(message)

    return StreamResponse(200, stream(), "application/json")
