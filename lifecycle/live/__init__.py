"""The live layer: picture files that follow an engine or a container while it runs.

Uses only public API of what it follows (``graph()`` and ``subscribe()``),
the graph layer's renderer and the base modules.
"""

from __future__ import annotations

from lifecycle.live._live import GraphSource, LiveGraph

__all__ = ["GraphSource", "LiveGraph"]
