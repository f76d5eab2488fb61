"""The lifecycle diagram, generated from the transition table.

The picture is a function of ``TRANSITIONS`` alone, with nodes and edges in a
fixed sorted order (states in lifecycle order; edges by source, target,
trigger), so the generated DOT is stable byte for byte and the committed
``diagrams/lifecycle.dot`` can be compared with it (h11 generates its state
diagrams the same way).
"""

from __future__ import annotations

from typing import Final

import graphviz

from lifecycle._states import TRANSITIONS, State, Transition, Trigger

__all__ = ["INITIAL_NODE", "lifecycle_graph", "table_transitions"]

# The "(initial)" pseudo-state of DESIGN.md's table, drawn as a point (UML's
# initial pseudostate). Not a State: no container is ever in it.
INITIAL_NODE: Final = "initial"

_STATE_ORDER: Final = {state: index for index, state in enumerate(State)}
_TRIGGER_ORDER: Final = {trigger: index for index, trigger in enumerate(Trigger)}

# Per-trigger edge styles: the process's own exit is dashed, so a reader tells
# what a caller asks for from what happens to a container.
_EDGE_STYLE: Final[dict[Trigger, dict[str, str]]] = {Trigger.DIE: {"style": "dashed"}}


def _transition_sort_key(transition: Transition) -> tuple[int, int, int]:
    source = -1 if transition.source is None else _STATE_ORDER[transition.source]
    return (source, _STATE_ORDER[transition.dest], _TRIGGER_ORDER[transition.trigger])


def table_transitions() -> list[Transition]:
    """Every row of the table as a ``Transition``, in the diagram's sorted order."""
    rows = [
        Transition(source, trigger, dest)
        for source, row in TRANSITIONS.items()
        for trigger, dest in row.items()
    ]
    return sorted(rows, key=_transition_sort_key)


def _node_name(state: State | None) -> str:
    return INITIAL_NODE if state is None else state.value


def lifecycle_graph() -> graphviz.Digraph:
    """The lifecycle diagram: an initial point into ``created``, one labelled edge per table row."""
    graph = graphviz.Digraph(
        name="lifecycle",
        graph_attr={
            "rankdir": "LR",
            "label": "container lifecycle (generated from lifecycle.TRANSITIONS)",
            "labelloc": "t",
            "fontname": "Helvetica",
            "fontsize": "14",
        },
        node_attr={"shape": "box", "style": "rounded", "fontname": "Helvetica", "fontsize": "12"},
        edge_attr={"fontname": "Helvetica", "fontsize": "10"},
    )
    graph.node(INITIAL_NODE, label="", shape="point", width="0.15")
    for state in State:
        # A deleted container is final: double border, as UML draws a final state.
        extra = {"peripheries": "2"} if not TRANSITIONS[state] else {}
        graph.node(state.value, label=state.value, **extra)
    for transition in table_transitions():
        graph.edge(
            _node_name(transition.source),
            transition.dest.value,
            label=transition.trigger.value,
            **_EDGE_STYLE.get(transition.trigger, {}),
        )
    return graph
