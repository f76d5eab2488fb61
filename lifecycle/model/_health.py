"""Health checks with Docker's semantics: the check's configuration and the status it gives.

Pure (no I/O, no clock of its own: times are passed in). The rules are
moby's ``daemon/health.go``:

- the status starts as ``starting`` (streak 0) at every start and restart;
- a probe that exits 0 makes it ``healthy`` and resets the failing streak;
- any other result (a timeout is exit code -1) adds one to the streak,
  except while ``starting`` inside the start period, and the status becomes
  ``unhealthy`` when the streak reaches ``retries``;
- probes run every ``interval``, but every ``start_interval`` while
  ``starting`` inside the start period (API 1.44);
- the log keeps the last 5 probes, each output cut at 4096 bytes.

What to do about ``unhealthy`` (Docker does nothing, moby#28400) is
Podman's ``--health-on-failure``: none, kill, restart or stop, once per
transition to unhealthy.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Final, Literal, final

from lifecycle._errors import InvalidArgumentError
from lifecycle.model._checks import check_whole_number

__all__ = [
    "HEALTH_ON_FAILURE",
    "MAX_LOG_ENTRIES",
    "MAX_OUTPUT_BYTES",
    "TIMED_OUT_EXIT_CODE",
    "Health",
    "HealthOnFailure",
    "HealthStatus",
    "HealthTracker",
    "Healthcheck",
    "Probe",
    "check_health_on_failure",
    "cut_output",
]

HealthStatus = Literal["starting", "healthy", "unhealthy"]
HealthOnFailure = Literal["none", "kill", "restart", "stop"]
HEALTH_ON_FAILURE: Final[tuple[HealthOnFailure, ...]] = ("none", "kill", "restart", "stop")
# moby daemon/health.go: maxLogEntries, maxOutputLen.
MAX_LOG_ENTRIES: Final = 5
MAX_OUTPUT_BYTES: Final = 4096
# moby's exit code for a probe it killed at its timeout.
TIMED_OUT_EXIT_CODE: Final = -1
_NANOSECONDS: Final = 1_000_000_000


def _seconds(value: object, what: str, *, zero_ok: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidArgumentError(
            f"healthcheck {what} must be a finite number of seconds, not {value!r}"
        )
    seconds = float(value)
    if seconds < 0 or (seconds == 0 and not zero_ok):
        least = "zero or more" if zero_ok else "more than zero"
        raise InvalidArgumentError(f"healthcheck {what} must be {least} seconds, not {value!r}")
    return seconds


@final
@dataclasses.dataclass(frozen=True, slots=True)
class Healthcheck:
    """A container's health check: Docker's ``HEALTHCHECK`` / ``--health-*`` options.

    ``test`` is one of Docker's forms: ``["CMD", argv...]``, ``["CMD-SHELL",
    "command line"]`` (run by ``/bin/sh -c``) or ``["NONE"]`` (no check, also
    overriding the image's). Times are seconds; the defaults are Docker's.
    """

    test: tuple[str, ...]
    interval: float = 30.0
    timeout: float = 30.0
    start_period: float = 0.0
    start_interval: float = 5.0
    retries: int = 3

    def __post_init__(self) -> None:
        test: object = self.test  # callers may pass anything: checked here
        if isinstance(test, str) or not isinstance(test, Sequence):
            raise InvalidArgumentError(f"healthcheck test must be a list of strings, not {test!r}")
        test = tuple(test)
        if not test or not all(isinstance(item, str) for item in test):
            raise InvalidArgumentError(f"healthcheck test must be a list of strings, not {test!r}")
        kind = test[0]
        if kind == "NONE":
            if len(test) != 1:
                raise InvalidArgumentError('healthcheck test ["NONE"] takes no arguments')
        elif kind == "CMD":
            if len(test) < 2 or not test[1]:
                raise InvalidArgumentError('healthcheck test ["CMD", ...] needs a command')
        elif kind == "CMD-SHELL":
            if len(test) != 2 or not test[1].strip():
                raise InvalidArgumentError(
                    'healthcheck test ["CMD-SHELL", ...] takes one command line'
                )
        else:
            raise InvalidArgumentError(
                f"healthcheck test must start with CMD, CMD-SHELL or NONE, not {kind!r}"
            )
        object.__setattr__(self, "test", test)
        for what in ("interval", "timeout", "start_interval"):
            object.__setattr__(self, what, _seconds(getattr(self, what), what, zero_ok=False))
        object.__setattr__(
            self, "start_period", _seconds(self.start_period, "start_period", zero_ok=True)
        )
        check_whole_number(self.retries, "healthcheck retries", minimum=1)

    @property
    def disabled(self) -> bool:
        """``["NONE"]``: no health check at all."""
        return self.test[0] == "NONE"

    def argv(self) -> tuple[str, ...]:
        """What a probe runs (``CMD-SHELL`` through ``/bin/sh -c``, as moby does)."""
        if self.test[0] == "CMD-SHELL":
            return ("/bin/sh", "-c", self.test[1])
        return self.test[1:]

    @classmethod
    def from_docker(
        cls, config: Mapping[str, object], *, base: Healthcheck | None = None
    ) -> Healthcheck:
        """Docker's JSON form (``Test``; ``Interval`` etc. in nanoseconds, 0 = inherit).

        Fields left out or 0 take ``base``'s (the image's check, as moby merges
        them) or Docker's defaults.
        """
        defaults = base or cls(("NONE",))
        test = config.get("Test")
        if test in (None, []):
            chosen_test: tuple[str, ...] = defaults.test
        elif isinstance(test, list) and all(isinstance(item, str) for item in test):
            chosen_test = tuple(test)
        else:
            raise InvalidArgumentError(f"healthcheck Test must be a list of strings, not {test!r}")

        def duration(key: str, current: float) -> float:
            value = config.get(key)
            if value in (None, 0):
                return current
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise InvalidArgumentError(f"healthcheck {key} must be nanoseconds, not {value!r}")
            return value / _NANOSECONDS

        retries = config.get("Retries")
        if retries in (None, 0):
            retries = defaults.retries
        if isinstance(retries, bool) or not isinstance(retries, int):
            raise InvalidArgumentError(f"healthcheck Retries must be a number, not {retries!r}")
        return cls(
            chosen_test,
            interval=duration("Interval", defaults.interval),
            timeout=duration("Timeout", defaults.timeout),
            start_period=duration("StartPeriod", defaults.start_period),
            start_interval=duration("StartInterval", defaults.start_interval),
            retries=retries,
        )

    def to_docker(self) -> dict[str, object]:
        """Docker's JSON form (durations in nanoseconds)."""
        return {
            "Test": list(self.test),
            "Interval": round(self.interval * _NANOSECONDS),
            "Timeout": round(self.timeout * _NANOSECONDS),
            "StartPeriod": round(self.start_period * _NANOSECONDS),
            "StartInterval": round(self.start_interval * _NANOSECONDS),
            "Retries": self.retries,
        }


def check_health_on_failure(value: object) -> HealthOnFailure:
    """One of Podman's actions on ``unhealthy``: none, kill, restart, stop."""
    for action in HEALTH_ON_FAILURE:
        if value == action:
            return action
    raise InvalidArgumentError(
        f"unknown health_on_failure {value!r} (expected one of: {', '.join(HEALTH_ON_FAILURE)})"
    )


@final
@dataclasses.dataclass(frozen=True, slots=True)
class Probe:
    """One probe's result (Docker's ``HealthcheckResult``)."""

    start: datetime
    end: datetime
    exit_code: int
    output: str


@final
@dataclasses.dataclass(frozen=True, slots=True)
class Health:
    """A container's health (Docker's ``State.Health``); ``status`` None: no health check."""

    status: HealthStatus | None
    failing_streak: int = 0
    log: tuple[Probe, ...] = ()


def cut_output(output: bytes) -> str:
    """A probe's output as the log keeps it: the first 4096 bytes, decoded."""
    return output[:MAX_OUTPUT_BYTES].decode("utf-8", errors="replace")


@final
class HealthTracker:
    """The health of one container, driven by its starts and its probes' results.

    ``record`` returns the new status when a probe changed it (the engine
    publishes ``health_status: <status>`` then), else None.
    """

    __slots__ = ("_check", "_log", "_started", "_status", "_streak")

    def __init__(self, check: Healthcheck) -> None:
        self._check = check
        self._status: HealthStatus = "starting"
        self._streak = 0
        self._log: list[Probe] = []
        self._started = 0.0

    @property
    def check(self) -> Healthcheck:
        return self._check

    def snapshot(self) -> Health:
        return Health(self._status, self._streak, tuple(self._log))

    def started(self, now: float) -> None:
        """A start or restart at monotonic time ``now``: starting again, streak 0 (log kept)."""
        self._status = "starting"
        self._streak = 0
        self._started = now

    def in_start_period(self, now: float) -> bool:
        return now - self._started < self._check.start_period

    def next_delay(self, now: float) -> float:
        """Seconds until the next probe: the start interval while starting inside the start
        period, else the interval."""
        if self._status == "starting" and self.in_start_period(now):
            return self._check.start_interval
        return self._check.interval

    def record(self, probe: Probe, now: float) -> HealthStatus | None:
        """One probe's result, finished at monotonic time ``now``."""
        self._log.append(probe)
        del self._log[:-MAX_LOG_ENTRIES]
        before = self._status
        if probe.exit_code == 0:
            self._streak = 0
            self._status = "healthy"
        elif not (self._status == "starting" and self.in_start_period(now)):
            self._streak += 1
            if self._streak >= self._check.retries:
                self._status = "unhealthy"
        return self._status if self._status != before else None
