"""Restart policies and their backoff, after Docker's restart manager.

moby ``restartmanager/restartmanager.go``: the first delay is 100 ms and
doubles after each restart, capped at one minute; a container that ran for
10 s or more before it exited starts again from the first delay.
``on-failure[:N]`` restarts only after a non-zero exit, at most N times;
``always`` and ``unless-stopped`` restart after any exit. None of them
restarts a container that was stopped, killed or removed by hand.

``unless-stopped`` differs from ``always`` only across a restart of the
engine (``restarts_on_restore``): an engine with a journal
(``Engine(root=...)``) brings its containers back, and then ``always``
starts one even if it had been stopped by hand, ``unless-stopped`` does not
(moby ``daemon.restore`` -> ``Container.ShouldRestart``).
"""

from __future__ import annotations

import dataclasses
import re
from typing import Final, Literal, final

from lifecycle._errors import InvalidArgumentError
from lifecycle.model._checks import check_at_least, check_timeout, check_whole_number

__all__ = ["RestartPolicy"]

PolicyName = Literal["no", "on-failure", "always", "unless-stopped"]
_NAMES: Final[tuple[PolicyName, ...]] = ("no", "on-failure", "always", "unless-stopped")
_FORMS: Final = "no, on-failure, on-failure:N (N >= 0), always, unless-stopped"
_ON_FAILURE: Final = re.compile(r"on-failure(?::(\d+))?")


@final
@dataclasses.dataclass(frozen=True, slots=True)
class RestartPolicy:
    """When to start a container again after its process exits, and how fast.

    ``max_retries`` (``on-failure`` only; None = no limit) counts policy
    restarts since the last manual start. The delays are Docker's defaults;
    tests and impatient users may shorten them.
    """

    name: PolicyName = "no"
    max_retries: int | None = None
    initial_delay: float = 0.1
    max_delay: float = 60.0
    reset_after: float = 10.0
    multiplier: float = 2.0

    def __post_init__(self) -> None:
        if self.name not in _NAMES:
            raise InvalidArgumentError(f"unknown restart policy {self.name!r} (accepted: {_FORMS})")
        if self.max_retries is not None:
            if self.name != "on-failure":
                raise InvalidArgumentError(
                    f"max_retries only applies to on-failure, not to {self.name!r}"
                )
            check_whole_number(self.max_retries, "max_retries", minimum=0)
        for what in ("initial_delay", "max_delay", "reset_after"):
            check_timeout(getattr(self, what), what, hint="")
        check_at_least(self.multiplier, "multiplier", 1)

    def __str__(self) -> str:
        if self.name == "on-failure" and self.max_retries is not None:
            return f"on-failure:{self.max_retries}"
        return self.name

    @classmethod
    def parse(cls, value: str | RestartPolicy | None) -> RestartPolicy:
        """``"no"``, ``"on-failure"``, ``"on-failure:5"``, ``"always"``, ``"unless-stopped"``.

        Raises ``InvalidArgumentError`` (a ``ValueError``) naming the accepted forms.
        """
        if value is None:
            return cls()
        if isinstance(value, RestartPolicy):
            return value
        if not isinstance(value, str):
            raise InvalidArgumentError(
                f"restart policy must be a string or RestartPolicy, not {value!r} "
                f"(accepted: {_FORMS})"
            )
        if (match := _ON_FAILURE.fullmatch(value)) is not None:
            retries = match.group(1)
            return cls("on-failure", None if retries is None else int(retries))
        if value in ("no", "always", "unless-stopped"):
            return cls(value)  # type: ignore[arg-type]
        raise InvalidArgumentError(f"unknown restart policy {value!r} (accepted: {_FORMS})")

    def should_restart(self, exit_code: int, restarts_so_far: int) -> bool:
        """Whether an exit (not caused by hand) calls for a restart."""
        if self.name == "no":
            return False
        if self.name == "on-failure":
            if exit_code == 0:
                return False
            return self.max_retries is None or restarts_so_far < self.max_retries
        return True

    def restarts_on_restore(
        self, exit_code: int | None, restarts_so_far: int, *, manually_stopped: bool
    ) -> bool:
        """Whether an engine that comes back starts this (stopped) container again.

        moby's ``RestartManager.ShouldRestart`` as ``daemon.restore`` calls it:
        ``always`` restarts whatever stopped it, even ``docker stop``
        (docker/for-linux#652 is users finding that out); ``unless-stopped``
        unless it was stopped by hand (a stop by the engine's own shutdown is
        not by hand: moby#36496); ``on-failure[:N]`` if the last exit code was
        not 0 and fewer than N restarts were made; ``no`` never. A container
        that never ran (``exit_code`` None) is not started by any of them.
        """
        if exit_code is None or self.name == "no":
            return False
        if self.name == "always":
            return True
        if self.name == "unless-stopped":
            return not manually_stopped
        return self.should_restart(exit_code, restarts_so_far)

    def next_delay(self, previous: float, ran_for: float) -> float:
        """The delay before the next restart, given the last one and how long the process ran.

        moby: reset to the first delay after a run of ``reset_after`` seconds
        or more; otherwise double the last delay (first time: the first
        delay); never more than ``max_delay``.
        """
        if ran_for >= self.reset_after or previous <= 0:
            delay = self.initial_delay
        else:
            delay = previous * self.multiplier
        return min(delay, self.max_delay)
