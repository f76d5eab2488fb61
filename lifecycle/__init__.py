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
    ImageConflictError,
    ImageContentError,
    ImageNotFoundError,
    InvalidArgumentError,
    InvalidNameError,
    InvalidReferenceError,
    InvalidSignalError,
    InvalidTransitionError,
    LifecycleError,
    NameConflictError,
    PauseTimeoutError,
    RegistryError,
    RenderError,
    SpawnError,
    UnknownTriggerError,
    UnsafeLayerError,
)
from lifecycle._logging import configure_logging
from lifecycle._version import __version__
from lifecycle.engine import Container, Engine, EngineStatistics
from lifecycle.events import Event, Subscription
from lifecycle.graph import render, render_async
from lifecycle.images import Image, ImageConfig, ImageReference, ImageStore, Layer
from lifecycle.journal import JournalError
from lifecycle.live import LiveGraph
from lifecycle.logs import LogLine, LogStatistics
from lifecycle.model import (
    TRANSITIONS,
    Health,
    Healthcheck,
    Probe,
    RestartPolicy,
    State,
    StateModel,
    Transition,
    Trigger,
)
from lifecycle.rootfs import Change

__all__ = [
    "TRANSITIONS",
    "Change",
    "Container",
    "ContainerNotFoundError",
    "Engine",
    "EngineClosedError",
    "EngineStatistics",
    "Event",
    "GraphvizNotFoundError",
    "Health",
    "Healthcheck",
    "Image",
    "ImageConfig",
    "ImageConflictError",
    "ImageContentError",
    "ImageNotFoundError",
    "ImageReference",
    "ImageStore",
    "InvalidArgumentError",
    "InvalidNameError",
    "InvalidReferenceError",
    "InvalidSignalError",
    "InvalidTransitionError",
    "JournalError",
    "Layer",
    "LifecycleError",
    "LiveGraph",
    "LogLine",
    "LogStatistics",
    "NameConflictError",
    "PauseTimeoutError",
    "Probe",
    "RegistryError",
    "RenderError",
    "RestartPolicy",
    "SpawnError",
    "State",
    "StateModel",
    "Subscription",
    "Transition",
    "Trigger",
    "UnknownTriggerError",
    "UnsafeLayerError",
    "__version__",
    "configure_logging",
    "render",
    "render_async",
]
