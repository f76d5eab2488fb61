"""A container's health monitor: when probes run, and what their results do.

The rules are the pure ``HealthTracker``'s (``model/_health.py``, moby's
daemon/health.go); this module is the schedule around them. One monitor
task per run of the container, started when a run begins (start, restart,
a policy restart) and cancelled when it ends (its exit is committed), so a
probe in flight is killed with the run it was probing. No probe runs while
the container is paused: the monitor waits for the unpause.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import final

import anyio

from lifecycle._logging import get_logger
from lifecycle.model import (
    TIMED_OUT_EXIT_CODE,
    Health,
    Healthcheck,
    HealthStatus,
    HealthTracker,
    Probe,
    cut_output,
)

__all__ = ["HealthMonitor", "go_duration"]


def go_duration(seconds: float) -> str:
    """Go's ``time.Duration.String`` for the seconds moby writes in a timeout message."""
    if seconds >= 1:
        text = f"{seconds:.9f}".rstrip("0").rstrip(".")
        return f"{text}s"
    milliseconds = seconds * 1000
    if milliseconds >= 1:
        return f"{f'{milliseconds:.6f}'.rstrip('0').rstrip('.')}ms"
    return f"{f'{seconds * 1e6:.3f}'.rstrip('0').rstrip('.')}µs"


@final
class HealthMonitor:
    """The health of one container and the task that probes it.

    The container gives it four things: ``run_probe(argv, timeout)`` (its
    driver's probe of the current run), ``is_paused()``, ``changed()``
    (awaits the container's next state change), and ``announce(status)``
    (publish ``health_status: <status>`` and act on it).
    """

    __slots__ = ("_generation", "_scope", "_tracker")

    def __init__(self, check: Healthcheck) -> None:
        self._tracker = HealthTracker(check)
        self._generation = 0
        self._scope: anyio.CancelScope | None = None

    @property
    def health(self) -> Health:
        return self._tracker.snapshot()

    def run_started(self) -> int:
        """A run began: starting, streak 0; returns the run's number for its monitor task."""
        self.run_ended()
        self._tracker.started(time.monotonic())
        return self._generation

    def run_ended(self) -> None:
        """The run ended (or another begins): its monitor and any probe in flight stop."""
        self._generation += 1
        if self._scope is not None:
            self._scope.cancel()
            self._scope = None

    async def watch(
        self,
        generation: int,
        *,
        run_probe: Callable[[tuple[str, ...], float], Awaitable[tuple[int, bytes]]],
        is_paused: Callable[[], bool],
        changed: Callable[[], Awaitable[None]],
        announce: Callable[[HealthStatus], None],
    ) -> None:
        """Probe run ``generation`` until it ends. Cancellation: the probe in flight is killed."""
        if generation != self._generation:
            return  # that run is already over
        tracker = self._tracker
        check = tracker.check
        with anyio.CancelScope() as scope:
            self._scope = scope
            while True:
                await anyio.sleep(tracker.next_delay(time.monotonic()))
                while is_paused():
                    await changed()
                if generation != self._generation:
                    return
                started = datetime.now(UTC)
                try:
                    code, output = await run_probe(check.argv(), check.timeout)
                except OSError as error:  # the probe could not even start (moby: -1 too)
                    code, text = TIMED_OUT_EXIT_CODE, f"cannot run the health check: {error}"
                else:
                    text = cut_output(output)
                    if code == TIMED_OUT_EXIT_CODE:  # moby's words replace what it wrote
                        text = f"Health check exceeded timeout ({go_duration(check.timeout)})"
                if generation != self._generation:
                    return
                probe = Probe(start=started, end=datetime.now(UTC), exit_code=code, output=text)
                status = tracker.record(probe, time.monotonic())
                if status is not None:
                    get_logger().info(
                        "health status", status=status, exit_code=code, output=text[:200]
                    )
                    announce(status)
        if self._scope is scope:
            self._scope = None
