"""The committed diagrams are what the table generates, and SVG needs no system Graphviz."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from lifecycle import TRANSITIONS, State, Trigger
from lifecycle.graph import INITIAL_NODE, lifecycle_graph, render_source, table_transitions

from ..helpers import REPO, environment_without_dot, run_cli, svg_texts

COMMITTED_DOT = REPO / "diagrams" / "lifecycle.dot"
COMMITTED_SVG = REPO / "diagrams" / "lifecycle.svg"
REGENERATE = "regenerate with `make diagrams` (lifecycle diagram) and commit the result"


def test_committed_dot_is_generated_from_the_table() -> None:
    """diagrams/lifecycle.dot is byte for byte what the table generates."""
    assert lifecycle_graph().source == COMMITTED_DOT.read_text(), REGENERATE


def test_committed_svg_is_rendered_from_the_dot() -> None:
    """diagrams/lifecycle.svg is byte for byte what the in-process renderer makes of it."""
    assert render_source(COMMITTED_DOT.read_text(), "svg") == COMMITTED_SVG.read_bytes(), REGENERATE


def test_generation_is_deterministic() -> None:
    """Two generations give the same DOT and the same SVG."""
    first, second = lifecycle_graph().source, lifecycle_graph().source
    assert first == second
    assert render_source(first, "svg") == render_source(second, "svg")


def test_one_labelled_edge_per_table_row() -> None:
    """Every row is one edge, labelled with its trigger, plus the initial point into created."""
    source = lifecycle_graph().source
    rows = sum(len(row) for row in TRANSITIONS.values())
    assert rows == len(table_transitions()) == source.count(" -> ")
    for transition in table_transitions():
        tail = INITIAL_NODE if transition.source is None else transition.source.value
        assert f"\t{tail} -> {transition.dest.value} [label={transition.trigger.value}" in source
    assert f"\t{INITIAL_NODE} -> created [label=create]" in source
    assert f'\t{INITIAL_NODE} [label="" shape=point' in source


def test_edges_are_sorted() -> None:
    """Edges come in lifecycle order of source, then target, then trigger."""
    order = {state: i for i, state in enumerate(State)}
    keys = [
        (-1 if t.source is None else order[t.source], order[t.dest], list(Trigger).index(t.trigger))
        for t in table_transitions()
    ]
    assert sorted(keys) == keys


def test_svg_renders_with_dot_hidden_from_path(tmp_path: Path) -> None:
    """`lifecycle diagram --format svg -o x.svg` writes a valid SVG with no `dot` on PATH."""
    result = run_cli(
        "diagram",
        "--format",
        "svg",
        "-o",
        "x.svg",
        cwd=tmp_path,
        env=environment_without_dot(tmp_path),
    )
    assert 0 == result.returncode, result.stderr.decode()
    svg = (tmp_path / "x.svg").read_bytes()
    nodes, labels = svg_texts(svg)
    assert {state.value for state in State} | {INITIAL_NODE} == nodes
    assert {trigger.value for trigger in Trigger} == labels


def test_png_without_dot_fails_with_install_advice(tmp_path: Path) -> None:
    """PNG without system Graphviz exits 1, says how to install it, and writes nothing."""
    result = run_cli("diagram", "-o", "x.png", cwd=tmp_path, env=environment_without_dot(tmp_path))
    assert 1 == result.returncode
    stderr = result.stderr.decode()
    assert stderr.startswith("lifecycle: error: png output needs the Graphviz 'dot' binary")
    assert "apt-get install graphviz" in stderr
    assert not (tmp_path / "x.png").exists()
    assert [] == list(tmp_path.glob("*.png*"))


@pytest.mark.skipif(shutil.which("dot") is None, reason="system Graphviz (dot) is not installed")
def test_png_with_system_dot(tmp_path: Path) -> None:
    """With system Graphviz installed, PNG output is a real PNG."""
    result = run_cli("diagram", "--format", "png", "-o", "x.png", cwd=tmp_path)
    assert 0 == result.returncode, result.stderr.decode()
    assert (tmp_path / "x.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
