"""lifecycle: an async engine that gives a process the lifecycle of a container.

The public names are re-exported here; the modules behind them are private
(``lifecycle._states``, ``lifecycle._errors``, ...) and may change.
"""

from __future__ import annotations

__version__ = "0.1.0"  # NB: pyproject.toml's [project] version must match.

from lifecycle._container import Container, LogStatistics
from lifecycle._engine import Engine, EngineStatistics
from lifecycle._errors import (
    ContainerNotFoundError,
    EngineClosedError,
    GraphvizNotFoundError,
    InvalidArgumentError,
    InvalidNameError,
    InvalidSignalError,
    InvalidTransitionError,
    LifecycleError,
    NameConflictError,
    PauseTimeoutError,
    RenderError,
    SpawnError,
    UnknownTriggerError,
)
from lifecycle._events import Event, Subscription
from lifecycle._live import LiveGraph
from lifecycle._logging import configure_logging
from lifecycle._logs import LogLine
from lifecycle._render import render, render_async
from lifecycle._restart import RestartPolicy
from lifecycle._states import TRANSITIONS, State, StateModel, Transition, Trigger

__all__ = [
    "TRANSITIONS",
    "Container",
    "ContainerNotFoundError",
    "Engine",
    "EngineClosedError",
    "EngineStatistics",
    "Event",
    "GraphvizNotFoundError",
    "InvalidArgumentError",
    "InvalidNameError",
    "InvalidSignalError",
    "InvalidTransitionError",
    "LifecycleError",
    "LiveGraph",
    "LogLine",
    "LogStatistics",
    "NameConflictError",
    "PauseTimeoutError",
    "RenderError",
    "RestartPolicy",
    "SpawnError",
    "State",
    "StateModel",
    "Subscription",
    "Transition",
    "Trigger",
    "UnknownTriggerError",
    "__version__",
    "configure_logging",
    "render",
    "render_async",
]
