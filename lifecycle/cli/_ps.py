"""``lifecycle ps [-a] --root DIR``: the journal's containers, read without starting an engine.

What ``docker ps`` prints, from the records on disk (``lifecycle.journal``):
no engine needs to run, and none is disturbed if one does (records are only
read; a torn one is reported and skipped). A record that says running or
paused is checked against ``/proc`` by its PID *and* start time: if that
process is gone, the run ended with the engine that ran it, and the status
says so (``Exited (255)``, as the next engine will restore it).
"""

from __future__ import annotations

import argparse
import shlex
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from lifecycle._stringid import truncate_id
from lifecycle.api import human_duration
from lifecycle.containment import procfs
from lifecycle.journal import Journal, JournalRecord
from lifecycle.model import State

__all__ = ["add_ps_command", "run_ps"]

# docker ps cuts COMMAND at 20 characters (with an ellipsis) unless --no-trunc.
COMMAND_WIDTH: Final = 20
_LIVE: Final = frozenset({State.RUNNING, State.PAUSED})


def add_ps_command(commands: Any) -> argparse.ArgumentParser:  # _SubParsersAction is private
    ps: argparse.ArgumentParser = commands.add_parser(
        "ps",
        help="list the containers an engine's journal keeps (like docker ps), no engine needed",
        description="Read the journal of an engine root (Engine(root=DIR), lifecycle serve "
        "--root DIR) and list its containers as docker ps does.",
    )
    ps.add_argument("--root", type=Path, required=True, help="the engine's root directory")
    ps.add_argument("-a", "--all", action="store_true", help="show all, not only running")
    ps.add_argument("-q", "--quiet", action="store_true", help="only the container ids")
    ps.add_argument("--no-trunc", action="store_true", help="full ids and commands")
    return ps


def _still_running(record: JournalRecord) -> bool:
    """Whether the recorded main process is still that process (PID and start time)."""
    if record.pid is None or record.pid_start_time is None:
        return False
    return procfs.start_time(record.pid) == record.pid_start_time


def status(record: JournalRecord, now: datetime) -> str:
    """moby's ``State.String`` for a record: ``Up 2 minutes``, ``Exited (3) 1 second ago``."""
    if record.state in _LIVE and record.started_at is not None:
        if not _still_running(record):
            return "Exited (255) (its engine died; restored as such)"
        up = human_duration((now - record.started_at).total_seconds())
        return f"Up {up} (Paused)" if record.state is State.PAUSED else f"Up {up}"
    if record.finished_at is None:
        return "Created"
    ago = human_duration((now - record.finished_at).total_seconds())
    return f"Exited ({record.exit_code or 0}) {ago} ago"


def run_ps(arguments: argparse.Namespace) -> int:
    """Print the table; 0, or 1 if a record could not be read (each is named on stderr)."""
    root: Path = arguments.root
    if not (root / "containers").is_dir():
        print(f"lifecycle: error: {root} has no journal (no containers/)", file=sys.stderr)
        return 1
    records, broken = Journal(root).read_each()
    for error in broken:
        print(f"lifecycle: error: {error}", file=sys.stderr)
    now = datetime.now(UTC)
    shown = [
        record
        for record in reversed(records)  # newest first, as docker ps
        if arguments.all or (record.state in _LIVE and _still_running(record))
    ]
    if arguments.quiet:
        for record in shown:
            print(record.id if arguments.no_trunc else truncate_id(record.id))
        return 1 if broken else 0
    rows = [("CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "NAMES")]
    for record in shown:
        command = shlex.join(record.spec.command)
        if not arguments.no_trunc and len(command) > COMMAND_WIDTH:
            command = command[: COMMAND_WIDTH - 1] + "…"
        image = record.spec.image or "-"
        rows.append(
            (
                record.id if arguments.no_trunc else truncate_id(record.id),
                image if arguments.no_trunc else truncate_id(image.removeprefix("sha256:")),
                f'"{command}"',
                f"{human_duration((now - record.created).total_seconds())} ago",
                status(record, now),
                record.name,
            )
        )
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    for row in rows:
        cells = (cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        print("   ".join(cells).rstrip())
    return 1 if broken else 0
