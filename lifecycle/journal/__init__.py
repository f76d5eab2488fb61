"""The journal: each container's spec and state on disk, for an engine that restarts.

The files and their crash-safe writes (``Journal``), and the record kept
per container (``JournalRecord``, encoded and checked by ``_records.py``).
The engine does not write through it yet (issue 18's next step); ``Journal``
and its records are usable on their own.
"""

from __future__ import annotations

from lifecycle.journal._records import FORMAT_VERSION, JournalError, JournalRecord
from lifecycle.journal._store import MAX_RECORD_BYTES, Journal

__all__ = ["FORMAT_VERSION", "MAX_RECORD_BYTES", "Journal", "JournalError", "JournalRecord"]
