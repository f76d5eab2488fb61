"""lifecycle: an async engine that gives a process the lifecycle of a container.

The public names are re-exported here; the modules behind them are private
(``lifecycle._states``, ``lifecycle._errors``, ...) and may change.
"""

from __future__ import annotations

__version__ = "0.1.0"  # NB: pyproject.toml's [project] version must match.

from lifecycle._errors import (
    ContainerNotFoundError,
    GraphvizNotFoundError,
    InvalidTransitionError,
    LifecycleError,
    NameConflictError,
    RenderError,
    SpawnError,
    UnknownTriggerError,
)
from lifecycle._states import TRANSITIONS, State, StateModel, Transition, Trigger

__all__ = [
    "TRANSITIONS",
    "ContainerNotFoundError",
    "GraphvizNotFoundError",
    "InvalidTransitionError",
    "LifecycleError",
    "NameConflictError",
    "RenderError",
    "SpawnError",
    "State",
    "StateModel",
    "Transition",
    "Trigger",
    "UnknownTriggerError",
    "__version__",
]
