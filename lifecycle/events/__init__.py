"""The events layer: event records and their fan-out to subscribers (never waiting).

Events name containers by id and name (strings): this layer knows nothing
of the engine's handles. Imports only the model layer and the base modules.
"""

from __future__ import annotations

from lifecycle.events._bus import (
    ACTIONS,
    DEFAULT_MAX_BUFFER,
    Event,
    EventBus,
    EventStatistics,
    Subscription,
    deliver_to_callback,
    make_event,
)

__all__ = [
    "ACTIONS",
    "DEFAULT_MAX_BUFFER",
    "Event",
    "EventBus",
    "EventStatistics",
    "Subscription",
    "deliver_to_callback",
    "make_event",
]
