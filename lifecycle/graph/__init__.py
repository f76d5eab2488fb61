"""The graph layer: the lifecycle diagram from the transition table, and rendering it.

``lifecycle_graph`` builds DOT from the table (static, one container's live
highlight, or the fleet's counts); ``render`` turns DOT into SVG in-process
or PNG/PDF through the system ``dot``. Imports only the model layer and the
base modules: callers hand it states and counts, never engine objects.
"""

from __future__ import annotations

from lifecycle.graph._diagram import (
    CURRENT_STATE_STYLE,
    INITIAL_NODE,
    LAST_TRANSITION_STYLE,
    lifecycle_graph,
    table_transitions,
)
from lifecycle.graph._render import (
    IN_PROCESS_FORMATS,
    SYSTEM_DOT_FORMATS,
    render,
    render_async,
    render_source,
    warm_up,
)

__all__ = [
    "CURRENT_STATE_STYLE",
    "INITIAL_NODE",
    "IN_PROCESS_FORMATS",
    "LAST_TRANSITION_STYLE",
    "SYSTEM_DOT_FORMATS",
    "lifecycle_graph",
    "render",
    "render_async",
    "render_source",
    "table_transitions",
    "warm_up",
]
