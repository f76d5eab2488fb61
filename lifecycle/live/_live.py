"""LiveGraph: a picture file that follows an engine (the fleet) or one container.

It listens to the target's events through a subscription with a buffer of
one (``subscribe(max_buffer=1)``, public API of both ``Engine`` and
``Container``: this layer imports no engine module): a burst of
transitions leaves at most one pending wake-up, so renders coalesce by
construction. Each render builds the graph from the current
state on the event loop (O(states + edges)), then renders and writes it in a
worker thread, atomically (temporary file, then rename): a viewer never
reads half a file. One render at a time; after the last transition of a
burst, one more render shows the latest state. The engine never waits for
any of it: publishing into a full buffer drops, it does not block.
"""

from __future__ import annotations

import os
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Protocol, Self, final

import anyio
import anyio.to_thread

from lifecycle._errors import InvalidArgumentError
from lifecycle._files import write_atomically
from lifecycle._logging import get_logger
from lifecycle.events import Subscription
from lifecycle.graph import IN_PROCESS_FORMATS, SYSTEM_DOT_FORMATS, render_source

__all__ = ["GraphSource", "LiveGraph"]


class GraphSource(Protocol):
    """What a live graph follows: an ``Engine`` (the fleet) or a ``Container``."""

    def graph(self) -> Any:  # a graphviz.Digraph (graphviz ships no types)
        """The picture now."""

    def subscribe(self, *, max_buffer: int = ...) -> AbstractAsyncContextManager[Subscription]:
        """Its events."""


_FORMATS: Final = frozenset({"dot", *IN_PROCESS_FORMATS, *SYSTEM_DOT_FORMATS})


@final
class LiveGraph:
    """Keep ``path`` showing the live graph of ``target`` while the block runs.

    ``async with LiveGraph(engine, "fleet.svg"): ...`` follows the fleet;
    ``LiveGraph(container, "web.svg")`` follows one container. The format
    comes from ``format`` or the file's suffix (svg, png, pdf or dot).

    Entering renders once (so a bad path or a missing ``dot`` for PNG fails
    here, loudly); later render failures are logged and do not stop the
    engine. Leaving renders a last time, so the file shows the final state.
    Cancellation: leaving by cancellation still writes the final picture
    (shielded, a few milliseconds).
    """

    def __init__(
        self, target: GraphSource, path: str | os.PathLike[str], *, format: str | None = None
    ) -> None:
        self.path = Path(path)
        chosen = format if format is not None else self.path.suffix.lstrip(".").lower()
        if chosen not in _FORMATS:
            raise InvalidArgumentError(
                f"cannot tell which picture to write to {str(self.path)!r}: "
                f"pass format= one of {', '.join(sorted(_FORMATS))}"
            )
        self.format = chosen
        self._target = target
        self._subscription: Subscription | None = None
        self._stack: AsyncExitStack | None = None
        self.renders = 0
        self.failures = 0

    def __repr__(self) -> str:
        return f"<LiveGraph {self.path} ({self.format}), {self.renders} renders>"

    def _write(self, source: str) -> None:
        write_atomically(self.path, render_source(source, self.format))

    async def _render(self) -> None:
        source: str = self._target.graph().source
        await anyio.to_thread.run_sync(self._write, source)
        self.renders += 1

    async def _render_logging_failures(self) -> None:
        try:
            await self._render()
        except Exception as error:  # a failed render must never stop the engine
            self.failures += 1
            get_logger().error(
                "live graph render failed", path=str(self.path), format=self.format, exc_info=error
            )

    async def _follow(self, subscription: Subscription) -> None:
        async for _ in subscription:
            await self._render_logging_failures()

    async def __aenter__(self) -> Self:
        await self._render()
        async with AsyncExitStack() as stack:
            self._subscription = await stack.enter_async_context(
                self._target.subscribe(max_buffer=1)
            )
            group = await stack.enter_async_context(anyio.create_task_group())
            group.start_soon(self._follow, self._subscription)
            self._stack = stack.pop_all()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._subscription is not None:
            self._subscription.close()  # the follower's loop ends
        stack, self._stack = self._stack, None
        if stack is not None:
            await stack.aclose()  # (task group scopes must close in the order they opened)
        with anyio.CancelScope(shield=True):
            await self._render_logging_failures()
