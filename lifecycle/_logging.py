"""Logging: where the library's log lines go, and the one place that configures anything.

The library logs through ``get_logger()``. It never configures logging at
import and never writes to stdout by itself:

- if the application has configured structlog, lines go through that
  configuration (this is also what ``structlog.testing.capture_logs`` uses);
- otherwise they are rendered as ``logfmt`` text and handed to the stdlib
  logger ``"lifecycle"``, whose handlers are the application's business (with
  none, Python prints warnings and errors to stderr and drops the rest).
  Unconfigured structlog would print everything to stdout: not from a library.

``configure_logging()`` is for applications and the CLI only (structlog's
own advice: global configuration lives in one place, called once).
"""

from __future__ import annotations

import logging
import sys
from typing import Any, Final, TextIO

import structlog

__all__ = ["LOGGER_NAME", "configure_logging", "get_logger"]

LOGGER_NAME: Final = "lifecycle"

_STDLIB_ROUTE: Final = structlog.wrap_logger(
    logging.getLogger(LOGGER_NAME),  # NB: _STDLIB_LOGGER below is the same logger
    processors=[
        structlog.stdlib.filter_by_level,  # before rendering: disabled levels cost little
        structlog.processors.format_exc_info,
        structlog.processors.LogfmtRenderer(key_order=["event"], drop_missing=True),
    ],
    wrapper_class=structlog.stdlib.BoundLogger,
)


_STDLIB_LOGGER: Final = logging.getLogger(LOGGER_NAME)


def get_logger(level: int | None = None) -> Any:
    """The logger for the library's own lines (see the module docstring for where they go).

    With ``level``, returns None when nothing would be logged at that level
    through the stdlib route: the hot path then skips building the line.
    """
    if structlog.is_configured():
        return structlog.get_logger(LOGGER_NAME)
    if level is not None and not _STDLIB_LOGGER.isEnabledFor(level):
        return None
    return _STDLIB_ROUTE


def configure_logging(
    *, json: bool | None = None, level: int | str = "INFO", stream: TextIO | None = None
) -> None:
    """Configure structlog (and the stdlib ``lifecycle`` logger) for an application.

    ``json=None`` picks a console renderer on a terminal and JSON lines
    otherwise. Output goes to ``stream`` (default: standard error). Call it
    once, at start-up; it replaces any structlog configuration.
    """
    output = sys.stderr if stream is None else stream
    if json is None:
        json = not output.isatty()
    numeric_level = logging.getLevelName(level.upper()) if isinstance(level, str) else level
    if not isinstance(numeric_level, int):
        raise ValueError(f"unknown log level {level!r} (expected DEBUG, INFO, WARNING or ERROR)")
    processors: list[Any] = [
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if json:
        processors += [structlog.processors.dict_tracebacks, structlog.processors.JSONRenderer()]
    else:  # ConsoleRenderer formats exceptions itself (and warns if format_exc_info ran first)
        processors.append(structlog.dev.ConsoleRenderer(colors=output.isatty()))
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(numeric_level),
        logger_factory=structlog.PrintLoggerFactory(file=output),
        cache_logger_on_first_use=False,
    )
