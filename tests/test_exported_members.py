"""The public surface is exactly what we mean to export (after httpx's test)."""

from __future__ import annotations

from importlib.metadata import version

import lifecycle

EXPECTED = [
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


def test_all_is_pinned() -> None:
    """lifecycle.__all__ lists exactly the public names, sorted."""
    assert EXPECTED == lifecycle.__all__
    assert sorted(EXPECTED) == sorted(lifecycle.__all__)


def test_every_exported_name_exists() -> None:
    """Each name in __all__ resolves, and every exported class says its module is ours."""
    for name in lifecycle.__all__:
        member = getattr(lifecycle, name)
        if isinstance(member, type):
            assert member.__module__.startswith("lifecycle.")


def test_version_matches_the_distribution() -> None:
    """lifecycle.__version__ agrees with the installed package metadata."""
    assert version("lifecycle") == lifecycle.__version__
