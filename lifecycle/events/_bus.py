"""Events: records of what happened to containers, fanned out to subscribers.

Publishing never waits. Each subscriber has its own bounded anyio memory
stream (anyio streams hand an item to one receiver, so fan-out needs one
stream per subscriber). When a stream is full the engine drops the oldest
item in it; every item carries a per-subscriber sequence number, so the
subscriber learns in-band how many it lost (``Event.dropped`` on the next
event it reads). A subscriber may ask for lossless delivery instead: its
stream is unbounded, memory is its choice, and the engine still never waits.

Event semantics (Docker's action names, moby ``events.Message``):

- ``from_state`` is the container's state just before the event;
  ``to_state`` is the state the event moved it to, or ``None`` when the event
  by itself changed nothing. State changes ride on the events where the
  process changed: ``create``, ``start``, ``pause``, ``unpause``, ``die``,
  ``destroy``. ``kill``, ``stop`` and ``restart`` mark operations and carry
  ``to_state=None``. So the events with a ``to_state``, read in order, walk
  the transition table (``destroy`` is the ``remove`` row).
- ``attributes``: ``name`` always; ``signal`` (a number, as text) on
  ``kill``; ``exitCode`` on ``die``.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import time
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType
from typing import Final, final

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from lifecycle._errors import InvalidArgumentError
from lifecycle._stringid import truncate_id
from lifecycle.model import State, check_whole_number

__all__ = [
    "ACTIONS",
    "DEFAULT_MAX_BUFFER",
    "Event",
    "EventBus",
    "EventStatistics",
    "Subscription",
]

# Docker's container event actions, in lifecycle order.
ACTIONS: Final = (
    "create", "start", "pause", "unpause", "kill", "die", "stop", "restart", "destroy",
    "health_status: healthy", "health_status: unhealthy",
)  # fmt: skip
# Per-subscriber buffer before the oldest events are dropped. moby's events
# service keeps the last 256 for replay and buffers 1024 per subscriber
# (daemon/events): we buffer 1024.
DEFAULT_MAX_BUFFER: Final = 1024


@final
@dataclasses.dataclass(frozen=True, slots=True)
class Event:
    """One thing that happened to one container."""

    action: str
    container_id: str
    name: str
    time_ns: int
    from_state: State | None
    to_state: State | None
    attributes: Mapping[str, str]
    # How many events this subscriber lost just before this one (0 normally).
    dropped: int = 0

    def __repr__(self) -> str:
        change = f"{self.from_state}->{self.to_state}" if self.to_state else f"{self.from_state}"
        extra = "".join(f" {k}={v}" for k, v in self.attributes.items() if k != "name")
        lost = f" (dropped {self.dropped} before)" if self.dropped else ""
        who = f"{self.name} ({truncate_id(self.container_id)})"
        return f"<Event {self.action} {who} {change}{extra}{lost}>"


@final
@dataclasses.dataclass(frozen=True, slots=True)
class EventStatistics:
    """A snapshot of the event machinery (trio's ``statistics()`` convention)."""

    subscribers: int
    events_published: int
    events_dropped: int


def _check_actions(actions: Iterable[str] | None) -> frozenset[str] | None:
    if actions is None:
        return None
    if isinstance(actions, str):
        actions = (actions,)
    chosen = frozenset(actions)
    unknown = sorted(action for action in chosen if action not in ACTIONS)
    if unknown:
        raise InvalidArgumentError(
            f"unknown event action(s) {', '.join(map(repr, unknown))} "
            f"(expected some of: {', '.join(ACTIONS)})"
        )
    return chosen


@final
class Subscription:
    """An open subscription: ``async for event in subscription`` yields ``Event``s.

    The iteration ends when the subscription is closed (leaving
    ``engine.subscribe()``) or the engine shuts down, after the events
    already buffered. ``dropped`` counts the events this subscriber lost.
    """

    __slots__ = (
        "_actions",
        "_bus",
        "_container",
        "_last_received",
        "_last_sent",
        "_receive",
        "_send",
        "dropped",
        "lossless",
    )

    def __init__(
        self,
        bus: EventBus,
        *,
        container: str | None,
        actions: frozenset[str] | None,
        max_buffer: int,
        lossless: bool,
    ) -> None:
        self._bus = bus
        self._container = container
        self._actions = actions
        self.lossless = lossless
        size = math.inf if lossless else max_buffer
        self._send: MemoryObjectSendStream[tuple[int, Event]]
        self._receive: MemoryObjectReceiveStream[tuple[int, Event]]
        self._send, self._receive = anyio.create_memory_object_stream[tuple[int, Event]](size)
        self._last_sent = 0
        self._last_received = 0
        self.dropped = 0

    def __repr__(self) -> str:
        mode = "lossless" if self.lossless else "bounded"
        return f"<Subscription {mode}, {self.dropped} dropped>"

    def _matches(self, event: Event) -> bool:
        if self._actions is not None and event.action not in self._actions:
            return False
        reference = self._container
        # moby's events filter: the name, the full id, or an id prefix.
        return (
            reference is None
            or reference in (event.name, event.container_id)
            or (event.container_id.startswith(reference))
        )

    def _offer(self, event: Event) -> None:
        """Buffer ``event`` without waiting; drop the oldest if the buffer is full."""
        self._last_sent += 1
        item = (self._last_sent, event)
        try:
            self._send.send_nowait(item)
        except anyio.WouldBlock:
            self._receive.receive_nowait()  # full: drop the oldest
            self.dropped += 1
            self._bus._events_dropped += 1
            self._send.send_nowait(item)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            self._bus._remove(self)

    def close(self) -> None:
        """Unsubscribe now; what was buffered is discarded and the iteration ends."""
        self._end()
        self._receive.close()

    def _end(self) -> None:
        """No more events: the iteration ends after what is already buffered."""
        self._bus._remove(self)
        self._send.close()

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Event:
        """The next event. Cancellation: nothing is lost; the event stays buffered."""
        try:
            item = await self._receive.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            raise StopAsyncIteration from None
        return self._with_gap(item)

    def receive_nowait(self) -> Event:
        """The next buffered event; ``anyio.WouldBlock`` if none, ``EndOfStream`` once closed."""
        return self._with_gap(self._receive.receive_nowait())

    def _with_gap(self, item: tuple[int, Event]) -> Event:
        """The event, carrying how many were dropped since the last one read."""
        sequence, event = item
        gap = sequence - self._last_received - 1
        self._last_received = sequence
        return dataclasses.replace(event, dropped=gap) if gap else event


@final
class EventBus:
    """Publishes events to every matching subscription; never waits."""

    __slots__ = ("_closed", "_events_dropped", "_events_published", "_subscriptions")

    def __init__(self) -> None:
        self._subscriptions: list[Subscription] = []
        self._events_published = 0
        self._events_dropped = 0
        self._closed = False

    @property
    def active(self) -> bool:
        """Whether anybody listens (events are only built when somebody does)."""
        return bool(self._subscriptions)

    def publish(self, event: Event) -> None:
        for subscription in tuple(self._subscriptions):
            if subscription._matches(event):
                subscription._offer(event)

    def count(self) -> None:
        self._events_published += 1

    def open(
        self,
        *,
        container: str | None = None,
        actions: Iterable[str] | None = None,
        max_buffer: int = DEFAULT_MAX_BUFFER,
        lossless: bool = False,
    ) -> Subscription:
        """A new subscription to the events of ``container`` (a name, id or id prefix; None:
        every container) whose action is in ``actions`` (None: all)."""
        subscription = Subscription(
            self,
            container=container,
            actions=_check_actions(actions),
            max_buffer=check_whole_number(max_buffer, "max_buffer", minimum=1),
            lossless=lossless,
        )
        if self._closed:
            subscription._end()
        else:
            self._subscriptions.append(subscription)
        return subscription

    def _remove(self, subscription: Subscription) -> None:
        if subscription in self._subscriptions:
            self._subscriptions.remove(subscription)

    def close(self) -> None:
        """End every subscription (each iteration finishes after its buffered events)."""
        self._closed = True
        for subscription in tuple(self._subscriptions):
            subscription._end()

    def statistics(self) -> EventStatistics:
        return EventStatistics(
            subscribers=len(self._subscriptions),
            events_published=self._events_published,
            events_dropped=self._events_dropped,
        )


def make_event(
    action: str,
    *,
    container_id: str,
    name: str,
    from_state: State | None,
    to_state: State | None,
    attributes: Mapping[str, str] | None = None,
) -> Event:
    """Build an event stamped now (``time.time_ns()``)."""
    fields = {"name": name} if attributes is None else {**attributes, "name": name}
    return Event(
        action=action,
        container_id=container_id,
        name=name,
        time_ns=time.time_ns(),
        from_state=from_state,
        to_state=to_state,
        attributes=MappingProxyType(fields),
    )


async def deliver_to_callback(
    subscription: Subscription,
    callback: Callable[[Event], object],
    on_error: Callable[[Callable[[Event], object], Event, BaseException], None],
) -> None:
    """Call ``callback`` for each event of ``subscription``, in order, awaiting async results."""
    try:
        async for event in subscription:
            try:
                result = callback(event)
                if inspect.isawaitable(result):
                    await result
            except Exception as error:  # a callback's failure is reported, never fatal
                on_error(callback, event, error)
    finally:
        subscription.close()
