"""Background tasks that must outlive a cancellation of the engine's caller.

Exit watchers, the descriptor dispatcher, event deliverers and log writers
each run in a shielded cancel scope of their own: during a shutdown caused
by a cancellation they must still see the exits the shutdown causes and
deliver the last events (DESIGN.md, "Known traps"). So they are ended
explicitly: ``wait_all`` with a grace period, then ``cancel_all``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import final

import anyio
from anyio.abc import TaskGroup

__all__ = ["ShieldedTasks"]


@final
class ShieldedTasks:
    """A set of shielded tasks in someone else's task group, ended explicitly."""

    __slots__ = ("_idle", "_scopes")

    def __init__(self) -> None:
        self._scopes: set[anyio.CancelScope] = set()
        self._idle: anyio.Event | None = None

    def __len__(self) -> int:
        return len(self._scopes)

    def start(
        self, task_group: TaskGroup, function: Callable[..., Awaitable[object]], *args: object
    ) -> None:
        """Run ``function(*args)`` in ``task_group``, shielded until ``cancel_all``."""
        scope = anyio.CancelScope(shield=True)
        self._scopes.add(scope)
        task_group.start_soon(self._run, scope, function, args)

    async def _run(
        self,
        scope: anyio.CancelScope,
        function: Callable[..., Awaitable[object]],
        args: tuple[object, ...],
    ) -> None:
        try:
            with scope:
                await function(*args)
        finally:
            self._scopes.discard(scope)
            if not self._scopes and self._idle is not None:
                self._idle.set()

    async def wait_all(self, grace: float) -> None:
        """Wait until every task has ended, or ``grace`` seconds. Cancellable."""
        with anyio.move_on_after(grace):
            while self._scopes:
                idle = self._idle = anyio.Event()
                await idle.wait()

    def cancel_all(self) -> None:
        """Cancel every task still running (each ends at its next checkpoint)."""
        for scope in tuple(self._scopes):
            scope.cancel()
