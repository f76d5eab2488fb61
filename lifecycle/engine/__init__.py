"""The engine layer: ``Engine`` and its ``Container`` handles (anyio, both backends).

It decides *when* things happen (the table, locks, restarts, events, shutdown)
and leaves *how* to a runtime driver, which it knows only through
``lifecycle.runtime``'s protocols: no module here imports a concrete driver.
"""

from __future__ import annotations

from lifecycle.engine._container import Container
from lifecycle.engine._engine import Engine, EngineStatistics

__all__ = ["Container", "Engine", "EngineStatistics"]
