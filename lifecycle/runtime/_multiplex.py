"""One epoll set for all of a native driver's pidfds and output pipes, watched by one task.

A task per pipe and per pidfd (three per container) costs a task spawn,
a cancel scope and a wake-up each, and thousands of tasks for a fleet. All
that is needed is "tell me when this descriptor is readable", so the driver
keeps one ``select.epoll`` of its own and waits on *its* descriptor (an epoll
set is readable when any member is ready); one dispatcher then calls the
handler of each ready descriptor. Handlers are synchronous and quick: a pipe
handler does one non-blocking read; a pidfd handler starts the (async) exit
handling as a task.

Level-triggered: a pipe with more than one read's worth of data is simply
reported again on the next round, so one noisy container cannot starve the
others.

On asyncio the epoll descriptor is registered with the loop once, for good
(``loop.add_reader``): ``anyio.wait_readable`` adds and removes it at every
round, and each time the loop's epoll walks our whole set (about 90 ns per
watched descriptor: 0.8 ms a round at 9,000 -- issue 20's profile). Trio
keeps its own registration cheap, so there it stays a loop of waits.
"""

from __future__ import annotations

import asyncio
import functools
import os
import resource
import select
from collections.abc import Callable
from typing import Final, final

import anyio

from lifecycle._logging import get_logger
from lifecycle.logs import Stream
from lifecycle.runtime._driver import OutputSink
from lifecycle.runtime._relay import OutputRelay

__all__ = ["Multiplexer"]

_READ_SIZE: Final = 64 * 1024
_EVENTS: Final = select.EPOLLIN | select.EPOLLHUP | select.EPOLLERR
# The share of the soft descriptor limit this multiplexer's own descriptors may take
# before new containers' output goes through a relay (0: every container's does).
DIRECT_SHARE: Final = 0.5
# Containers per relay: each costs it two descriptors, under its own (raised) limit.
RELAY_CAPACITY: Final = 8_000


@final
class Multiplexer:
    """Readiness of many descriptors through one epoll descriptor."""

    __slots__ = ("_budget", "_epoll", "_handlers", "_pipes", "_relays")

    def __init__(self) -> None:
        self._epoll = select.epoll()
        self._handlers: dict[int, Callable[[], None]] = {}
        # Output pipes we own (closed on EOF, or by close()): fd -> its end-of-stream call.
        self._pipes: dict[int, Callable[[], None]] = {}
        self._relays: list[OutputRelay] = []
        self._budget: int | None = None  # read at the first output (the engine raises it)

    @property
    def relayed(self) -> int:
        """How many containers' output goes through relays now."""
        return sum(len(relay) for relay in self._relays)

    def watch(self, fd: int, handler: Callable[[], None]) -> None:
        """Call ``handler()`` whenever ``fd`` is readable, until ``forget(fd)``."""
        self._handlers[fd] = handler
        self._epoll.register(fd, _EVENTS)

    def forget(self, fd: int) -> None:
        if self._handlers.pop(fd, None) is not None:
            self._epoll.unregister(fd)

    def watch_outputs(
        self, fds: tuple[int, int], sink: OutputSink, closed: Callable[[], None]
    ) -> None:
        """Feed what the stdout and stderr pipes ``fds`` carry to ``sink``; at each one's
        EOF, close it and call ``closed``. Past the descriptor budget, through a relay."""
        if self._over_budget() and self._relay(fds, sink, closed):
            return
        stdout, stderr = fds
        self._watch_output(stdout, "stdout", sink, closed)
        self._watch_output(stderr, "stderr", sink, closed)

    def _over_budget(self) -> bool:
        if self._budget is None:
            soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
            if soft == resource.RLIM_INFINITY:
                soft = 1 << 20
            self._budget = int(soft * DIRECT_SHARE)
        return len(self._handlers) + 2 > self._budget

    def _relay(self, fds: tuple[int, int], sink: OutputSink, closed: Callable[[], None]) -> bool:
        """Hand ``fds`` to a relay with room (a new one if none has); False: keep them."""
        relay = self._relays[-1] if self._relays else None
        if relay is None or len(relay) >= RELAY_CAPACITY:
            try:
                relay = OutputRelay()
            except OSError:
                return False
            get_logger().info(
                "new containers' output now goes through a relay",
                relays=len(self._relays) + 1,
                descriptor_budget=self._budget,
            )
            self._relays.append(relay)
            self.watch(relay.socket.fileno(), functools.partial(self._relay_readable, relay))
        return relay.hand_over(fds, sink, closed)

    def _relay_readable(self, relay: OutputRelay) -> None:
        if not relay.readable():  # it died: its streams have ended; no more of it
            self.forget(relay.socket.fileno())
            self._relays.remove(relay)
            relay.close()

    def _watch_output(
        self, fd: int, stream: Stream, sink: OutputSink, closed: Callable[[], None]
    ) -> None:
        os.set_blocking(fd, False)

        def end() -> None:
            self.forget(fd)
            self._pipes.pop(fd, None)
            sink.finish(stream)
            os.close(fd)
            closed()

        def readable() -> None:
            try:
                chunk = os.read(fd, _READ_SIZE)
            except BlockingIOError:
                return
            except OSError:
                chunk = b""
            if chunk:
                sink.feed(stream, chunk)
            else:
                end()

        self._pipes[fd] = end
        self.watch(fd, readable)

    async def run(self) -> None:
        """Dispatch readiness until cancelled. Cancellation: returns between rounds."""
        loop = _running_asyncio_loop()
        if loop is not None:
            await self._run_registered(loop)
            return
        epoll = self._epoll
        while True:
            await anyio.wait_readable(epoll.fileno())
            self._dispatch()

    async def _run_registered(self, loop: asyncio.AbstractEventLoop) -> None:
        """asyncio: one ``add_reader`` for the whole run. Its callback only wakes this
        task, which dispatches: handlers run in a task, as on trio (anyio calls need one)."""
        fd = self._epoll.fileno()
        wake = asyncio.Event()
        loop.add_reader(fd, wake.set)
        try:
            while True:
                await wake.wait()
                wake.clear()
                self._dispatch()
        finally:
            loop.remove_reader(fd)

    def _dispatch(self) -> None:
        """One round: call the handler of every descriptor that is ready now."""
        ready = [fd for fd, _ in self._epoll.poll(0)]
        # Pipes first: an exit and the end of its output usually arrive in
        # the same round, and the exit is then complete without a task.
        pipes = self._pipes
        ready.sort(key=lambda fd: fd not in pipes)
        handlers = self._handlers
        for fd in ready:
            handler = handlers.get(fd)
            if handler is not None:
                handler()

    def close(self) -> None:
        """End every pipe still open (their readers see end of stream), then the epoll set."""
        for end in list(self._pipes.values()):
            end()
        for relay in self._relays:
            self.forget(relay.socket.fileno())
            relay.close()
        self._relays.clear()
        for fd in list(self._handlers):
            self.forget(fd)
        anyio.notify_closing(self._epoll.fileno())
        self._epoll.close()


def _running_asyncio_loop() -> asyncio.AbstractEventLoop | None:
    """The asyncio loop this task runs on; None on trio."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None
