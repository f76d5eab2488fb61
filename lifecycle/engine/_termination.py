"""Ending a container's process: the stop signal, a grace period, SIGKILL, the wait.

This is trio's ``run_process`` pattern (STYLE.md) and Docker's stop
(moby ``daemon/stop.go``): send the stop signal; wait up to the timeout;
SIGKILL; wait for the exit. If the wait is interrupted (cancelled, or an
error), the kill is finished shielded so the state stays true: after
SIGKILL the exit is waited for up to ``KILL_REAP_TIMEOUT``, and then the
interruption propagates.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from typing import Final

import anyio

from lifecycle.runtime import RuntimeHandle

__all__ = ["KILL_REAP_TIMEOUT", "terminate"]

# After SIGKILL, how long a cancelled operation waits (shielded) for the exit
# before giving up and letting the cancellation through; the driver still
# reports the exit whenever it comes.
KILL_REAP_TIMEOUT: Final = 5.0


async def terminate(
    handle: RuntimeHandle,
    first_signal: signal.Signals,
    timeout: float,
    *,
    was_paused: bool,
    send: Callable[[RuntimeHandle, signal.Signals], None],
    escalating: Callable[[RuntimeHandle, signal.Signals, float], None],
) -> None:
    """Signal ``handle`` with ``first_signal``, wait ``timeout``, then SIGKILL; wait for the exit.

    ``send(handle, sig)`` delivers each signal (and announces it);
    ``escalating(handle, first_signal, timeout)`` is called just before the
    SIGKILL that a timeout forces. (Plain callables, not closures: a fleet
    stopping at once keeps a thousand of these frames alive, and every
    object they hold is work for the garbage collector.) Returns once the
    exit is complete. Cancellation: SIGKILL (if not sent yet) and a shielded
    wait for the exit, then the cancellation propagates.
    """
    killed = False
    try:
        send(handle, first_signal)
        killed = first_signal is signal.SIGKILL
        if not killed and (was_paused or handle.stopped_now()):
            # A handled signal stays pending in a stopped process: wake it
            # so it can act (Docker does this for a paused container; we do
            # it too for one that was stopped from outside or by itself).
            await handle.thaw()
        if not killed:
            with anyio.move_on_after(timeout):
                await handle.wait()
            if not handle.exited:
                escalating(handle, first_signal, timeout)
                send(handle, signal.SIGKILL)
                killed = True
        await handle.wait()
    finally:
        if not handle.exited:
            # Cancelled (or failed) mid-way: finish the kill so the state stays true.
            with anyio.CancelScope(shield=True):
                if not killed:
                    send(handle, signal.SIGKILL)
                with anyio.move_on_after(KILL_REAP_TIMEOUT):
                    await handle.wait()
