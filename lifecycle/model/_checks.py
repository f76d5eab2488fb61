"""Checking what callers pass in, before anything changes: the one home of every input rule.

Each check returns the normalised value or raises ``InvalidArgumentError``
(a ``ValueError``) whose message names the argument and the rule it broke.
Every layer that takes a number (timeouts, buffer sizes, retries, log
tails) checks it here, so the rules and their wording cannot drift apart.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Final, Literal, TypeGuard, get_args

from lifecycle._errors import InvalidArgumentError

__all__ = [
    "DEFAULT_STOP_TIMEOUT",
    "WAIT_CONDITIONS",
    "WaitCondition",
    "check_at_least",
    "check_command",
    "check_cwd",
    "check_env",
    "check_interval",
    "check_path",
    "check_since",
    "check_timeout",
    "check_wait_condition",
    "check_whole_number",
    "is_number",
]

# Docker and Podman wait 10 s, supervisord's stopwaitsecs is 10, systemd's
# TimeoutStopSec is 90 s: we follow Docker.
DEFAULT_STOP_TIMEOUT: Final = 10.0

WaitCondition = Literal["not-running", "next-exit", "removed"]
# Docker's `docker wait --condition` values (moby container.WaitCondition).
WAIT_CONDITIONS: Final[tuple[str, ...]] = get_args(WaitCondition)


def _check_text(value: str, what: str) -> str:
    """``value`` if ``execve`` can take it: no NUL byte, and encodable as ``os.fsencode`` would.

    The filesystem encoding with ``surrogateescape`` (what ``subprocess`` uses
    for argv and environment): bytes that came from the OS as surrogates
    round-trip; a lone surrogate that came from anywhere else does not.
    """
    if "\x00" in value:
        raise InvalidArgumentError(f"{what} contains a NUL byte: {value!r}")
    try:
        os.fsencode(value)
    except UnicodeEncodeError as error:
        raise InvalidArgumentError(
            f"{what} cannot be encoded for the operating system "
            f"({sys.getfilesystemencoding()} with surrogateescape): "
            f"{value[error.start : error.end]!r} at position {error.start} of {value!r}"
        ) from None
    return value


def check_command(command: object) -> tuple[str, ...]:
    """An argv list of strings (or paths), non-empty, no NUL bytes. Never a shell string."""
    if isinstance(command, str | bytes):
        raise InvalidArgumentError(
            f"command must be a list of arguments, not a single string ({command!r}); "
            "there is no shell: write ['sleep', '60'], or ['sh', '-c', '...'] for shell syntax"
        )
    if not isinstance(command, Sequence):
        raise InvalidArgumentError(
            f"command must be a list of strings, not {type(command).__name__}"
        )
    if not command:
        raise InvalidArgumentError("command must not be empty: it needs at least the executable")
    argv: list[str] = []
    for index, item in enumerate(command):
        argument = os.fspath(item) if isinstance(item, os.PathLike) else item
        if not isinstance(argument, str):
            raise InvalidArgumentError(
                f"command[{index}] must be a string, not {type(argument).__name__} ({argument!r})"
            )
        argv.append(_check_text(argument, f"command[{index}]"))
    if not argv[0]:
        raise InvalidArgumentError("command[0] (the executable) must not be empty")
    return tuple(argv)


def check_env(env: object) -> dict[str, str]:
    """A mapping of variable names to values: strings, names without '=' or NUL."""
    if env is None:
        return {}
    if not isinstance(env, Mapping):
        raise InvalidArgumentError(f"env must be a mapping of strings, not {type(env).__name__}")
    checked: dict[str, str] = {}
    for key, value in env.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise InvalidArgumentError(
                f"env entries must be strings: {key!r}={value!r} is "
                f"{type(key).__name__}={type(value).__name__}"
            )
        if not key or "=" in key:
            raise InvalidArgumentError(f"env name {key!r} must be non-empty and contain no '='")
        checked[_check_text(key, "env name")] = _check_text(value, f"env value of {key}")
    return checked


def check_labels(labels: object) -> dict[str, str]:
    """Docker's labels: a mapping of non-empty string keys to string values (no NUL)."""
    if labels is None:
        return {}
    if not isinstance(labels, Mapping):
        raise InvalidArgumentError(
            f"labels must be a mapping of strings, not {type(labels).__name__}"
        )
    checked: dict[str, str] = {}
    for key, value in labels.items():
        if not isinstance(key, str) or not key or not isinstance(value, str):
            raise InvalidArgumentError(
                f"labels must map non-empty strings to strings: {key!r}: {value!r}"
            )
        checked[_check_text(key, "label")] = _check_text(value, f"label {key}")
    return checked


def check_path(path: object, what: str) -> str:
    """A non-empty path string (or path-like) without NUL bytes."""
    if isinstance(path, os.PathLike):
        path = os.fspath(path)
    if not isinstance(path, str) or not path:
        raise InvalidArgumentError(f"{what} must be a non-empty path string, not {path!r}")
    return _check_text(path, what)


# Docker's minimum memory limit (daemon/daemon_unix.go linuxMinMemory: 6 MiB).
MIN_MEMORY: Final = 6 * 1024 * 1024
NETWORK_MODES: Final = ("none", "host")


def check_limits(
    memory: object, pids_limit: object, cpu_shares: object, cpus: object
) -> tuple[int | None, int | None, int | None, float | None]:
    """Docker's ``--memory`` (bytes), ``--pids-limit``, ``--cpu-shares``, ``--cpus``; None: none."""
    checked_memory = (
        None if memory is None else check_whole_number(memory, "memory", minimum=MIN_MEMORY)
    )
    checked_pids = (
        None if pids_limit is None else check_whole_number(pids_limit, "pids_limit", minimum=1)
    )
    # The kernel's floor for cpu.shares is 2 (Docker passes lower values up to it).
    checked_shares = (
        None if cpu_shares is None else check_whole_number(cpu_shares, "cpu_shares", minimum=2)
    )
    checked_cpus = None
    if cpus is not None:
        checked_cpus = check_at_least(cpus, "cpus", 0.01)
        if not math.isfinite(checked_cpus):
            raise InvalidArgumentError(f"cpus must be a finite number of CPUs, not {cpus!r}")
    return checked_memory, checked_pids, checked_shares, checked_cpus


def check_network(network: object) -> str | None:
    """``"none"`` (a network namespace with only loopback) or ``"host"``; None: the default."""
    if network is None or network in NETWORK_MODES:
        return network
    raise InvalidArgumentError(
        f"network must be one of {', '.join(NETWORK_MODES)}, not {network!r} "
        "(other networks are not supported yet)"
    )


def check_user(user: object) -> str | None:
    """Docker's ``--user``: ``name``, ``uid``, ``name:group`` or ``uid:gid``; None: the image's."""
    if user is None:
        return None
    if not isinstance(user, str) or not user or user.count(":") > 1 or user.startswith(":"):
        raise InvalidArgumentError(
            f"user must be 'name', 'uid', 'name:group' or 'uid:gid', not {user!r}"
        )
    return _check_text(user, "user")


def check_cwd(cwd: object) -> str | None:
    """A working directory path (its existence is checked at start, as Docker does)."""
    return None if cwd is None else check_path(cwd, "cwd")


def is_number(value: object) -> TypeGuard[int | float]:
    """An int or a float, and not a bool (``True`` is an ``int`` to Python, not to us)."""
    return not isinstance(value, bool) and isinstance(value, int | float)


def check_whole_number(value: object, what: str, *, minimum: int, none_ok: bool = False) -> int:
    """A whole number (not a bool) of at least ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        alternative = " or None" if none_ok else ""
        raise InvalidArgumentError(
            f"{what} must be a whole number >= {minimum}{alternative}, not {value!r}"
        )
    return value


def check_at_least(value: object, what: str, minimum: float) -> float:
    """A number (not a bool, not NaN) of at least ``minimum``."""
    if not is_number(value):
        raise InvalidArgumentError(f"{what} must be a number, not {value!r}")
    if not value >= minimum:  # also refuses NaN, which compares false
        raise InvalidArgumentError(f"{what} must be {minimum:g} or more, not {value!r}")
    return float(value)


def check_timeout(
    timeout: object, what: str = "timeout", *, hint: str = " (0 kills at once)"
) -> float:
    """Seconds: a non-negative number (``math.inf`` waits forever)."""
    if not is_number(timeout):
        raise InvalidArgumentError(f"{what} must be a number of seconds, not {timeout!r}")
    if math.isnan(timeout) or timeout < 0:
        raise InvalidArgumentError(f"{what} must be zero or more seconds, not {timeout!r}{hint}")
    return float(timeout)


def check_interval(interval: object, what: str) -> float | None:
    """Seconds between periodic looks: a positive, finite number, or None for never."""
    if interval is None:
        return None
    if not is_number(interval):
        raise InvalidArgumentError(f"{what} must be a number of seconds or None, not {interval!r}")
    if not math.isfinite(interval) or interval <= 0:
        raise InvalidArgumentError(
            f"{what} must be more than zero seconds and finite, not {interval!r} (None: never)"
        )
    return float(interval)


def check_since(since: object) -> int | None:
    """A point in time (an aware datetime, or Unix seconds) as nanoseconds; None for none."""
    if since is None:
        return None
    if isinstance(since, datetime):
        if since.tzinfo is None:
            raise InvalidArgumentError("since must be an aware datetime (with a time zone)")
        return int(since.timestamp() * 1e9)
    if not is_number(since):
        raise InvalidArgumentError(f"since must be a datetime or Unix seconds, not {since!r}")
    return int(since * 1e9)


def check_wait_condition(condition: object) -> WaitCondition:
    """One of Docker's wait conditions."""
    if condition == "not-running":
        return "not-running"
    if condition == "next-exit":
        return "next-exit"
    if condition == "removed":
        return "removed"
    raise InvalidArgumentError(
        f"unknown wait condition {condition!r} (expected one of: {', '.join(WAIT_CONDITIONS)})"
    )
