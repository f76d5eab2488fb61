"""The command line: ``lifecycle run / demo / diagram`` (the top layer; it may use any other).

It is the only place that configures logging (DESIGN.md, "Logging").
"""

from __future__ import annotations

from lifecycle.cli._main import main

__all__ = ["main"]
