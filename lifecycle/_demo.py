"""The demo: a tour of the state model that takes every edge of the table.

This first demo is pure (no processes yet): it prints the transition table,
walks ``StateModel``s along a tour that covers every row of ``TRANSITIONS``,
shows one refused trigger and one Docker no-op, and writes the diagram.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from pathlib import Path

from lifecycle._diagram import lifecycle_graph, table_transitions
from lifecycle._errors import InvalidTransitionError
from lifecycle._files import write_atomically
from lifecycle._render import render_source
from lifecycle._states import TRANSITIONS, State, StateModel, Transition, Trigger

__all__ = ["covering_tour", "run_demo"]


def _path_to_uncovered(start: State, uncovered: set[Transition]) -> list[Transition] | None:
    """Shortest list of table edges from ``start`` that ends with an uncovered edge."""
    queue: deque[tuple[State, list[Transition]]] = deque([(start, [])])
    seen = {start}
    while queue:
        state, path = queue.popleft()
        row = [Transition(state, trigger, dest) for trigger, dest in TRANSITIONS[state].items()]
        for edge in row:
            if edge in uncovered:
                return [*path, edge]
        for edge in row:
            if edge.dest not in seen:
                seen.add(edge.dest)
                queue.append((edge.dest, [*path, edge]))
    return None


def covering_tour() -> list[list[Trigger]]:
    """Trigger sequences, one per container, that together take every table edge."""
    uncovered = {edge for edge in table_transitions() if edge.source is not None}
    tours: list[list[Trigger]] = []
    while uncovered:
        state = TRANSITIONS[None][Trigger.CREATE]
        tour: list[Trigger] = []
        while (path := _path_to_uncovered(state, uncovered)) is not None:
            for edge in path:
                uncovered.discard(edge)
                tour.append(edge.trigger)
                state = edge.dest
        tours.append(tour)
    return tours


def _table_lines() -> Iterable[str]:
    yield f"{'from':<10} {'trigger':<9} to"
    for edge in table_transitions():
        source = "(initial)" if edge.source is None else edge.source.value
        yield f"{source:<10} {edge.trigger.value:<9} {edge.dest.value}"


def run_demo(out_dir: Path, echo: Callable[[str], None] = print) -> list[Path]:
    """Print the table, tour every edge, write the diagram into ``out_dir``; return the files."""
    echo("The transition table (lifecycle.TRANSITIONS):")
    for line in _table_lines():
        echo(f"  {line}")

    echo("\nA tour that takes every edge:")
    for number, tour in enumerate(covering_tour(), start=1):
        model = StateModel(name=f"demo-{number}")
        echo(f"  demo-{number}: create -> {model.state}")
        for trigger in tour:
            transition = model.apply(trigger)
            if transition is None:  # the tour follows table rows only, never a no-op
                raise RuntimeError(f"tour took a no-op: {trigger} from {model.state}")
            echo(f"  demo-{number}: {trigger} {transition.source} -> {transition.dest}")

    echo("\nWhat the table refuses, and Docker's no-ops:")
    model = StateModel(name="web")
    model.apply(Trigger.START)
    model.apply(Trigger.PAUSE)
    try:
        model.apply(Trigger.START)
    except InvalidTransitionError as error:
        echo(f"  refused: {error}")
    model.apply(Trigger.UNPAUSE)
    if model.apply(Trigger.START) is None:
        echo("  no-op:   start on a running container changes nothing (Docker answers 304)")

    source = lifecycle_graph().source
    written = [
        write_atomically(out_dir / "lifecycle.dot", source.encode()),
        write_atomically(out_dir / "lifecycle.svg", render_source(source, "svg")),
    ]
    echo("\nWrote:")
    for path in written:
        echo(f"  {path}")
    return written
