"""Container names, as Docker makes them (ids: ``lifecycle._stringid``).

- name: given, or generated as ``adjective_noun`` from our own word lists;
  it must match ``[a-zA-Z0-9][a-zA-Z0-9_.-]*`` (moby ``restrictedNamePattern``).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from typing import Final

from lifecycle._errors import InvalidNameError

__all__ = ["NAME_PATTERN", "generate_name", "validate_name"]

NAME_PATTERN: Final = "[a-zA-Z0-9][a-zA-Z0-9_.-]*"
_NAME_RE: Final = re.compile(NAME_PATTERN)

# Our own lists (not moby's namesgenerator): weather and landscape words.
_ADJECTIVES: Final = (
    "amber", "ancient", "autumn", "billowing", "bitter", "bold", "brave", "breezy",
    "bright", "calm", "clear", "cold", "crimson", "crisp", "damp", "dawn", "deep",
    "dry", "dusky", "early", "eager", "fading", "falling", "frosty", "gentle",
    "golden", "green", "hidden", "hollow", "icy", "late", "lingering", "lively",
    "long", "misty", "morning", "muddy", "nameless", "patient", "polished", "proud",
    "quiet", "rapid", "restless", "rough", "shy", "silent", "snowy", "solitary",
    "sparkling", "spring", "steady", "still", "stormy", "summer", "swift", "tidy",
    "twilight", "wandering", "weathered", "wild", "winter", "wispy", "young",
)  # fmt: skip
_NOUNS: Final = (
    "bay", "brook", "butte", "canyon", "cape", "cascade", "cave", "cliff", "cloud",
    "creek", "delta", "desert", "dune", "estuary", "fen", "field", "fjord", "forest",
    "frost", "geyser", "glacier", "glade", "grove", "gulch", "harbor", "heath",
    "hill", "island", "lagoon", "lake", "marsh", "meadow", "mesa", "mist", "moor",
    "moraine", "oasis", "ocean", "pass", "peak", "plain", "plateau", "pond", "prairie",
    "rain", "rapids", "reef", "ridge", "river", "sea", "shoal", "shore", "sky",
    "slope", "snow", "spring", "steppe", "stream", "summit", "sun", "thunder",
    "tundra", "valley", "wave",
)  # fmt: skip
_MAX_PLAIN_ATTEMPTS: Final = 10


def validate_name(name: object) -> str:
    """Return ``name`` if it follows the naming rule; raise ``InvalidNameError`` otherwise."""
    if not isinstance(name, str) or _NAME_RE.fullmatch(name) is None:
        raise InvalidNameError(name, NAME_PATTERN)
    return name


def generate_name(is_taken: Callable[[str], bool]) -> str:
    """A free ``adjective_noun`` name; after some collisions a number is added (as moby does)."""
    attempt = 0
    while True:
        name = f"{secrets.choice(_ADJECTIVES)}_{secrets.choice(_NOUNS)}"
        if attempt >= _MAX_PLAIN_ATTEMPTS:
            name = f"{name}{secrets.randbelow(10**attempt)}"
        if not is_taken(name):
            return name
        attempt += 1
