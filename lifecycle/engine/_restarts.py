"""The restart policy at run time: one container's count, backoff and pending restart.

The policy itself (when to restart, the delays) is pure and lives in the
model (``RestartPolicy``, after moby's ``restartmanager``); this is the
state it needs while a container lives: how many policy restarts since the
last manual start, the last delay, whether a restart is pending (and the
cancel scope of its sleep), whether the container was stopped by hand.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import final

import anyio

from lifecycle.model import RestartPolicy

__all__ = ["RestartTracker"]


@final
class RestartTracker:
    """What the restart policy of one container remembers between its runs."""

    __slots__ = ("_delay", "_scope", "_started", "count", "manually_stopped", "pending", "policy")

    def __init__(self, policy: RestartPolicy) -> None:
        self.policy = policy
        # Policy restarts since the last manual start (Docker's RestartCount).
        self.count = 0
        self.pending = False
        # Stopped, killed or removed by hand: the policy must not undo that
        # (moby marks the container manually stopped).
        self.manually_stopped = False
        self._delay = 0.0
        self._scope: anyio.CancelScope | None = None
        self._started = 0.0

    def note_started(self) -> None:
        """A process started (the run time decides whether the backoff starts over)."""
        self._started = time.monotonic()

    def reset(self) -> bool:
        """A manual start or restart: count and backoff start over (moby: a new restart
        manager on every ``docker start``). Returns whether a pending restart was cancelled."""
        cancelled = self.cancel_pending()
        self.manually_stopped = False
        self.count = 0
        self._delay = 0.0
        return cancelled

    def cancel_pending(self) -> bool:
        """A manual stop/kill/remove/start: no pending restart survives it. Returns whether
        one was pending."""
        if not self.pending:
            return False
        self.pending = False
        if self._scope is not None:
            self._scope.cancel()
            self._scope = None
        return True

    def consider(
        self, exit_code: int, *, closing: bool, ran_for: float | None = None
    ) -> float | None:
        """After an exit nobody asked for: the delay before a restart, or None for none.

        A restart becomes pending when the policy says so; ``ran_for``
        defaults to the time since the last ``note_started``.
        """
        if self.manually_stopped or closing:
            return None
        if not self.policy.should_restart(exit_code, self.count):
            return None
        if ran_for is None:
            ran_for = time.monotonic() - self._started
        self._delay = self.policy.next_delay(self._delay, ran_for)
        self.pending = True
        return self._delay

    async def run_after(self, delay: float, restart: Callable[[], Awaitable[None]]) -> None:
        """Sleep ``delay``, then ``restart()``; ``cancel_pending`` cancels either.

        Cancellation: the pending restart is dropped with the sleep.
        """
        scope = self._scope = anyio.CancelScope()
        with scope:
            await anyio.sleep(delay)
            await restart()

    def claim(self) -> bool:
        """Inside the restart, with the container's lock: whether it is still wanted.

        Once claimed, a cancel no longer reaches the restart's scope.
        """
        if not self.pending:
            return False
        self.pending = False
        self._scope = None
        return True
