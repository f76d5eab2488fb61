"""lifecycle: an async engine that gives a process the lifecycle of a container.

The public names are re-exported here. The layers behind them are
subpackages (``lifecycle.model``, ``lifecycle.engine``, ``lifecycle.runtime``,
...; see ARCHITECTURE.md) whose modules are private and may change.
"""

from __future__ import annotations

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
from lifecycle._logging import configure_logging
from lifecycle._version import __version__
from lifecycle.engine import Container, Engine, EngineStatistics
from lifecycle.events import Event, Subscription
from lifecycle.graph import render, render_async
from lifecycle.live import LiveGraph
from lifecycle.logs import LogLine, LogStatistics
from lifecycle.model import TRANSITIONS, RestartPolicy, State, StateModel, Transition, Trigger

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
