"""Reading signals the way Docker does: a name (with or without SIG, any case) or a number."""

from __future__ import annotations

import signal
from typing import Final

from lifecycle._errors import InvalidSignalError

__all__ = ["SignalLike", "parse_signal"]

SignalLike = str | int | signal.Signals

# SIGSTOP would stop the process behind the engine's back: the container would
# say "running" while the OS says "stopped". pause() is the way to stop it.
_REFUSED: Final = {signal.SIGSTOP: "use pause() to stop a container's processes"}


def parse_signal(value: SignalLike) -> signal.Signals:
    """``"SIGTERM"``, ``"term"``, ``"15"``, ``15`` or ``signal.SIGTERM`` -> ``signal.SIGTERM``.

    Follows moby's ``signal.ParseSignal``: case-insensitive, the ``SIG``
    prefix optional, numbers as ints or decimal strings. Anything else
    raises ``InvalidSignalError`` (a ``ValueError``) naming the value.
    """
    parsed: signal.Signals
    if isinstance(value, signal.Signals):
        parsed = value
    elif isinstance(value, bool) or not isinstance(value, int | str):
        raise InvalidSignalError(value, "expected a signal name, a number or signal.Signals")
    elif isinstance(value, int) or value.strip().isdigit():
        try:
            parsed = signal.Signals(int(value))
        except ValueError:
            raise InvalidSignalError(value) from None
    else:
        name = value.strip().upper()
        name = name if name.startswith("SIG") else f"SIG{name}"
        # Signals also has aliases (SIGIOT, SIGCLD, ...); "SIG_*" names are not signals.
        member = signal.Signals.__members__.get(name)
        if member is None or name.startswith("SIG_"):
            raise InvalidSignalError(value)
        parsed = member
    if parsed in _REFUSED:
        raise InvalidSignalError(value, _REFUSED[parsed])
    return parsed
