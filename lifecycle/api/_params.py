"""Docker's query and body conventions: booleans, integers, filters, JSON bodies.

Every refusal is an ``HttpError(400)`` naming the parameter and what was
wrong with it, worded as moby words it where clients show the message.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, Final

from lifecycle.api._http import HttpError, Request

__all__ = [
    "MAX_JSON_BYTES",
    "flag",
    "integer",
    "json_body",
    "label_matches",
    "parse_filters",
    "text",
    "timestamp_ns",
]

# moby reads create bodies with no limit of its own; ours keeps a hostile client from
# making the server buffer gigabytes of JSON. A real create body is a few KiB.
MAX_JSON_BYTES: Final = 1024 * 1024

_FALSE: Final = frozenset({"", "0", "no", "false", "none"})
_TIMESTAMP_RE: Final = re.compile(r"^(-?\d+)(?:\.(\d{1,9}))?$")


def text(request: Request, name: str, default: str | None = None) -> str | None:
    """The first value of query parameter ``name``, as Go's ``r.Form.Get`` reads it."""
    values = request.query.get(name)
    return values[0] if values else default


def flag(request: Request, name: str, default: bool = False) -> bool:
    """moby's ``httputils.BoolValue``: "", 0, no, false, none are false; anything else true."""
    value = text(request, name)
    if value is None:
        return default
    return value.strip().lower() not in _FALSE


def integer(request: Request, name: str, default: int | None = None) -> int | None:
    """An integer query parameter; ``HttpError(400)`` naming it if it is not one."""
    value = text(request, name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise HttpError(400, f"invalid value for {name}: {value!r} is not an integer") from None


def timestamp_ns(request: Request, name: str) -> int | None:
    """``since``/``until``: Unix seconds, optionally with up to 9 decimals (the CLI's form)."""
    value = text(request, name)
    if value is None or value == "":
        return None
    match = _TIMESTAMP_RE.match(value)
    if match is None:
        raise HttpError(400, f"invalid value for {name}: {value!r} is not a Unix timestamp")
    seconds, fraction = int(match.group(1)), (match.group(2) or "").ljust(9, "0")
    return seconds * 1_000_000_000 + int(fraction)


def parse_filters(request: Request, known: frozenset[str]) -> dict[str, set[str]]:
    """``filters`` in both of moby's encodings: ``{"k":{"v":true}}`` and ``{"k":["v"]}``."""
    raw = text(request, "filters")
    if raw is None or raw == "":
        return {}
    try:
        document = json.loads(raw)
    except ValueError as error:
        raise HttpError(400, f"invalid filters: {error}") from None
    if not isinstance(document, dict):
        raise HttpError(400, "invalid filters: expected a JSON object")
    filters: dict[str, set[str]] = {}
    for key, value in document.items():
        if key not in known:
            raise HttpError(400, f"invalid filter '{key}'")
        if isinstance(value, dict) and all(isinstance(v, bool) for v in value.values()):
            filters[key] = {item for item, on in value.items() if on}
        elif isinstance(value, list) and all(isinstance(v, str) for v in value):
            filters[key] = set(value)
        else:
            raise HttpError(400, f"invalid filter '{key}': expected a list of strings")
    return filters


def label_matches(wanted: str, labels: Mapping[str, str]) -> bool:
    """moby's label filter: ``key`` (present) or ``key=value`` (equal)."""
    key, separator, value = wanted.partition("=")
    return key in labels and (not separator or labels[key] == value)


async def json_body(request: Request) -> Mapping[str, Any]:
    """The request's JSON object (an empty body is ``{}``); 400 for anything else."""
    data = await request.read_body(MAX_JSON_BYTES)
    if not data.strip():
        return {}
    try:
        document = json.loads(data)
    except ValueError as error:
        raise HttpError(400, f"invalid JSON body: {error}") from None
    if not isinstance(document, dict):
        raise HttpError(400, "invalid JSON body: expected an object")
    return document
