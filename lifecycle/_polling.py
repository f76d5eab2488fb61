"""Waiting for a condition nobody announces (a process state in ``/proc``), cheaply."""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

import anyio
import anyio.lowlevel

__all__ = ["poll_until"]

_SPIN_CHECKPOINTS: Final = 20
_FIRST_SLEEP: Final = 0.0005
_MAX_SLEEP: Final = 0.05


async def poll_until(condition: Callable[[], bool], timeout: float) -> bool:
    """Wait until ``condition()`` is true or ``timeout`` seconds pass; return the last answer.

    Spins on scheduler checkpoints first (SIGSTOP and SIGKILL usually land
    within microseconds, and any ``anyio.sleep(>0)`` costs about 1 ms:
    DESIGN.md, "Known traps"), then backs off exponentially up to 50 ms
    between looks. Cancellation: stops looking and raises.
    """
    if condition():
        return True
    for _ in range(_SPIN_CHECKPOINTS):
        await anyio.lowlevel.checkpoint()
        if condition():
            return True
    delay = _FIRST_SLEEP
    with anyio.move_on_after(timeout):
        while True:
            await anyio.sleep(delay)
            if condition():
                return True
            delay = min(delay * 2, _MAX_SLEEP)
    return condition()
