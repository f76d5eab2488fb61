"""The lifecycle diagram, generated from the transition table.

The picture is a function of ``TRANSITIONS`` alone, with nodes and edges in a
fixed sorted order (states in lifecycle order; edges by source, target,
trigger), so the generated DOT is stable byte for byte and the committed
``diagrams/lifecycle.dot`` can be compared with it (h11 generates its state
diagrams the same way).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Final

import graphviz

from lifecycle.model import TRANSITIONS, State, Transition, Trigger

__all__ = [
    "CURRENT_STATE_STYLE",
    "INITIAL_NODE",
    "LAST_TRANSITION_STYLE",
    "lifecycle_graph",
    "table_transitions",
]

# The "(initial)" pseudo-state of DESIGN.md's table, drawn as a point (UML's
# initial pseudostate). Not a State: no container is ever in it.
INITIAL_NODE: Final = "initial"

_STATE_ORDER: Final = {state: index for index, state in enumerate(State)}
_TRIGGER_ORDER: Final = {trigger: index for index, trigger in enumerate(Trigger)}

# Per-trigger edge styles: the process's own exit is dashed, so a reader tells
# what a caller asks for from what happens to a container.
_EDGE_STYLE: Final[dict[Trigger, dict[str, str]]] = {Trigger.DIE: {"style": "dashed"}}

# The live picture: where the container is, and how it got there.
CURRENT_STATE_STYLE: Final = {
    "style": "rounded,filled,bold",
    "fillcolor": "#ffd966",
    "penwidth": "2.5",
}
LAST_TRANSITION_STYLE: Final = {"color": "#c0392b", "fontcolor": "#c0392b", "penwidth": "2.5"}
# The fleet picture: states that hold containers, edges that were taken.
_OCCUPIED_STYLE: Final = {"style": "rounded,filled", "fillcolor": "#dbe9f9"}
_TAKEN_STYLE: Final = {"penwidth": "1.8"}


def _transition_sort_key(transition: Transition) -> tuple[int, int, int]:
    source = -1 if transition.source is None else _STATE_ORDER[transition.source]
    return (source, _STATE_ORDER[transition.dest], _TRIGGER_ORDER[transition.trigger])


@functools.cache
def table_transitions() -> tuple[Transition, ...]:
    """Every row of the table as a ``Transition``, in the diagram's sorted order."""
    rows = [
        Transition(source, trigger, dest)
        for source, row in TRANSITIONS.items()
        for trigger, dest in row.items()
    ]
    return tuple(sorted(rows, key=_transition_sort_key))


def _node_name(state: State | None) -> str:
    return INITIAL_NODE if state is None else state.value


def lifecycle_graph(
    *,
    current: State | None = None,
    last: Transition | None = None,
    state_counts: Mapping[State, int] | None = None,
    edge_counts: Mapping[Transition, int] | None = None,
    title: str | None = None,
) -> graphviz.Digraph:
    """The lifecycle diagram: an initial point into ``created``, one labelled edge per table row.

    With no arguments, the static diagram committed in ``diagrams/``. The live
    picture of one container marks ``current`` (filled, bold) and ``last``
    (a coloured edge); the fleet picture writes ``state_counts`` into the
    states' labels and ``edge_counts`` into the edges' labels. Building it
    costs O(states + edges), whatever the history.
    """
    body = [_node_line(INITIAL_NODE, "", (("shape", "point"), ("width", "0.15")))]
    for state in State:
        attributes: dict[str, str] = {}
        # A deleted container is final: double border, as UML draws a final state.
        if not TRANSITIONS[state]:
            attributes["peripheries"] = "2"
        label = state.value
        if state_counts is not None:
            count = state_counts.get(state, 0)
            label = f"{state.value} ({count})"
            if count:
                attributes.update(_OCCUPIED_STYLE)
        if state is current:
            attributes.update(CURRENT_STATE_STYLE)
        body.append(_node_line(state.value, label, tuple(attributes.items())))
    for transition in table_transitions():
        edge_attributes = dict(_EDGE_STYLE.get(transition.trigger, {}))
        label = transition.trigger.value
        if edge_counts is not None:
            taken = edge_counts.get(transition, 0)
            if taken:
                label = f"{label} ({taken})"
                edge_attributes.update(_TAKEN_STYLE)
        if transition == last:
            edge_attributes.update(LAST_TRANSITION_STYLE)
        body.append(
            _edge_line(
                _node_name(transition.source),
                transition.dest.value,
                label,
                tuple(edge_attributes.items()),
            )
        )
    return graphviz.Digraph(
        name="lifecycle",
        graph_attr={
            "rankdir": "LR",
            "label": title or "container lifecycle (generated from lifecycle.TRANSITIONS)",
            "labelloc": "t",
            "fontname": "Helvetica",
            "fontsize": "14",
        },
        node_attr={"shape": "box", "style": "rounded", "fontname": "Helvetica", "fontsize": "12"},
        edge_attr={"fontname": "Helvetica", "fontsize": "10"},
        body=body,
    )


# Building a line through graphviz's API (quoting, attribute formatting) costs
# about 7 us; there are only a few dozen distinct lines, so each is built once.
# Building a whole picture then costs well under 0.1 ms (benchmarks/graph.py).
@functools.lru_cache(maxsize=4096)
def _node_line(name: str, label: str, attributes: tuple[tuple[str, str], ...]) -> str:
    scratch = graphviz.Digraph()
    scratch.node(name, label=label, **dict(attributes))
    line: str = scratch.body[0]
    return line


@functools.lru_cache(maxsize=4096)
def _edge_line(tail: str, head: str, label: str, attributes: tuple[tuple[str, str], ...]) -> str:
    scratch = graphviz.Digraph()
    scratch.edge(tail, head, label=label, **dict(attributes))
    line: str = scratch.body[0]
    return line
