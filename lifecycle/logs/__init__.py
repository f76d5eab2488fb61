"""The logs layer: what a container wrote, kept in bounded memory, followed, and filed.

Imports only the model layer and the base modules.
"""

from __future__ import annotations

from lifecycle.logs._buffer import (
    DEFAULT_LOG_BYTES,
    MAX_LINE_BYTES,
    LogBuffer,
    LogLine,
    LogStatistics,
    Stream,
    follow,
    open_log_file,
    read_log_file,
    rfc3339_nano,
)

__all__ = [
    "DEFAULT_LOG_BYTES",
    "MAX_LINE_BYTES",
    "LogBuffer",
    "LogLine",
    "LogStatistics",
    "Stream",
    "follow",
    "open_log_file",
    "read_log_file",
    "rfc3339_nano",
]
