"""Container ids, after moby's ``pkg/stringid``: the one place that knows their shape.

- id: 64 lowercase hex characters (32 random bytes); short id: the first 12.
  Like moby's ``stringid.GenerateRandomID``, an id whose short form is all
  digits is drawn again, so a short id never reads as a number.

A leaf: it imports nothing from the package, so the exception messages
(``_errors``) and every layer above shorten ids the same way.
"""

from __future__ import annotations

import secrets
from typing import Final

__all__ = ["SHORT_ID_LENGTH", "new_id", "truncate_id"]

SHORT_ID_LENGTH: Final = 12


def new_id() -> str:
    """A fresh 64-hex-character id whose 12-character short form is not all digits."""
    while True:
        candidate = secrets.token_hex(32)
        if not candidate[:SHORT_ID_LENGTH].isdigit():
            return candidate


def truncate_id(container_id: str) -> str:
    """The short form Docker shows (moby ``stringid.TruncateID``)."""
    return container_id[:SHORT_ID_LENGTH]
