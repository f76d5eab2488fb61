"""The table in the code is DESIGN.md's table.

The expected rows below are transcribed by hand from DESIGN.md ("States and
transitions"), an independent second statement of the spec. When the shared
DESIGN.md sits beside the checkout (as it does for the team and in CI), it
is parsed and compared too.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from lifecycle import TRANSITIONS, State, Trigger

# trigger -> (from states, to state); None is "(initial)".
DESIGN_TABLE: dict[str, tuple[set[str | None], str]] = {
    "create": ({None}, "created"),
    "start": ({"created", "stopped"}, "running"),
    "pause": ({"running"}, "paused"),
    "unpause": ({"paused"}, "running"),
    "stop": ({"running", "paused"}, "stopped"),
    "kill": ({"running", "paused"}, "stopped"),
    "die": ({"running", "paused"}, "stopped"),
    "restart": ({"created", "running", "paused", "stopped"}, "running"),
    "remove": (
        {"created", "stopped"},
        "deleted",
    ),  # running/paused only with force: kill, die, remove
}

DESIGN_PATH = Path(__file__).resolve().parents[3] / "shared" / "DESIGN.md"


def code_table() -> dict[str, tuple[set[str | None], str]]:
    table: dict[str, tuple[set[str | None], str]] = {}
    for source, row in TRANSITIONS.items():
        for trigger, dest in row.items():
            sources, previous = table.setdefault(trigger.value, (set(), dest.value))
            assert previous == dest.value, f"{trigger} leads to two states"
            sources.add(None if source is None else source.value)
    return table


def test_code_matches_the_transcribed_design_table() -> None:
    """Every trigger leaves exactly DESIGN.md's states for DESIGN.md's target."""
    assert DESIGN_TABLE == code_table()
    assert {t.value for t in Trigger} == set(DESIGN_TABLE)


def parse_design_table(text: str) -> dict[str, tuple[set[str | None], str]]:
    section = text.split("## States and transitions", 1)[1].split("\n## ", 1)[0]
    states = {state.value for state in State}
    table: dict[str, tuple[set[str | None], str]] = {}
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) < 3 or cells[0] not in {t.value for t in Trigger}:
            continue
        trigger, source_cell, dest_cell = cells[:3]
        # "created, stopped (running/paused only with force)": the parenthesis is the force case.
        source_text = source_cell.split("(")[0] if not source_cell.startswith("(") else source_cell
        sources: set[str | None] = (
            {None}
            if source_text == "(initial)"
            else set(re.findall(r"[a-z]+", source_text)) & states
        )
        # "stopped if the signal ends it; else unchanged ...": the first state named.
        dest = next(word for word in re.findall(r"[a-z]+", dest_cell) if word in states)
        table[trigger] = (sources, dest)
    return table


@pytest.mark.skipif(not DESIGN_PATH.exists(), reason="shared/DESIGN.md is not beside this checkout")
def test_code_matches_design_md_itself() -> None:
    """Parsing DESIGN.md's markdown table gives the same rows as the code."""
    assert code_table() == parse_design_table(DESIGN_PATH.read_text())
