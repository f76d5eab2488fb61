"""The package version, in one leaf module (the command line prints it)."""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"  # NB: pyproject.toml's [project] version must match.
