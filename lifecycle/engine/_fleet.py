"""Fleet counters: how often each edge of the table was taken, and how many were removed.

O(1) per transition; the fleet graph is built from them on demand
(DESIGN.md, "Graph": never pay for a picture when nobody watches).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import final

import graphviz

from lifecycle.graph import lifecycle_graph
from lifecycle.model import State, Transition

__all__ = ["FleetCounters"]


@final
class FleetCounters:
    """Counts kept for the fleet graph. Removed containers are forgotten by the registry
    but still counted here, in ``deleted``."""

    __slots__ = ("removed", "transitions_taken")

    def __init__(self) -> None:
        self.transitions_taken: Counter[Transition] = Counter()
        self.removed = 0

    def record(self, transition: Transition) -> None:
        self.transitions_taken[transition] += 1

    def note_removed(self) -> None:
        self.removed += 1

    def graph(self, live_states: Iterable[State]) -> graphviz.Digraph:
        """The fleet picture, given the state of every live container."""
        counts = Counter(live_states)
        total = sum(counts.values()) + self.removed
        counts[State.DELETED] += self.removed
        return lifecycle_graph(
            state_counts=counts,
            edge_counts=self.transitions_taken,
            title=f"fleet: {total} containers",
        )
