"""The live graph: highlights that follow real containers, fleet counts, rendering."""

from __future__ import annotations

import os
import re
from pathlib import Path

import anyio
import pytest

import lifecycle
from lifecycle import (
    Engine,
    GraphvizNotFoundError,
    State,
    Transition,
    Trigger,
    render,
    render_async,
)
from lifecycle.graph import CURRENT_STATE_STYLE, LAST_TRANSITION_STYLE

from ..engine.test_engine_table import ROWS, action_for, bring_to
from ..helpers import run_cli, svg_texts

NODE_LINE = re.compile(r"^\t(\w+) \[(.*)\]$")
EDGE_LINE = re.compile(r"^\t(\w+) -> (\w+) \[label=(\w+)(.*)\]$")
CURRENT_MARK = f'fillcolor="{CURRENT_STATE_STYLE["fillcolor"]}"'
LAST_MARK = f'color="{LAST_TRANSITION_STYLE["color"]}"'


def highlighted(source: str) -> tuple[set[str], set[tuple[str, str, str]]]:
    """The nodes marked current and the edges marked last, read from DOT source."""
    nodes: set[str] = set()
    edges: set[tuple[str, str, str]] = set()
    for line in source.splitlines():
        if (edge := EDGE_LINE.match(line)) is not None:
            if LAST_MARK in line:
                edges.add((edge.group(1), edge.group(2), edge.group(3)))
        elif (node := NODE_LINE.match(line)) is not None and CURRENT_MARK in line:
            nodes.add(node.group(1))
    return nodes, edges


@pytest.mark.anyio
@pytest.mark.parametrize(("source", "trigger", "dest"), ROWS, ids=str)
async def test_each_edge_driven_on_a_real_container_is_highlighted(
    source: State, trigger: Trigger, dest: State, tmp_path: Path
) -> None:
    """After taking an edge, exactly its destination state and exactly that edge are highlighted."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with anyio.fail_after(20):
        async with Engine() as engine:
            container = await engine.create(["sh", "-c", f"read line < {fifo}; exit 4"])
            await bring_to(container, source)
            await action_for(trigger, fifo)(container)
            assert Transition(source, trigger, dest) == container.last_transition
            nodes, edges = highlighted(container.graph().source)
    assert {dest.value} == nodes
    assert {(source.value, dest.value, trigger.value)} == edges


@pytest.mark.anyio
async def test_a_new_container_highlights_create() -> None:
    """A created container shows the initial edge and the created state."""
    with anyio.fail_after(10):
        async with Engine() as engine:
            container = await engine.create(["true"], name="web")
            graph_source = container.graph().source
    assert ({"created"}, {("initial", "created", "create")}) == highlighted(graph_source)
    assert f"web ({container.short_id}): created" in graph_source


@pytest.mark.anyio
async def test_fleet_counts_states_and_edges() -> None:
    """A dozen containers in mixed states: each state's label counts them; edges count uses."""
    with anyio.fail_after(20):
        async with Engine() as engine:
            containers = [await engine.create(["sleep", "60"]) for _ in range(12)]
            for container in containers[3:]:  # 3 stay created
                await container.start()
            for container in containers[3:5]:  # 2 paused
                await container.pause()
            for container in containers[5:8]:  # 3 stopped
                await container.stop()
            await containers[8].remove(force=True)  # 1 deleted; 3 running remain
            source = engine.graph().source
    labels = dict(re.findall(r"^\t(\w+) \[label=\"?([\w ()]+)\"?", source, flags=re.MULTILINE))
    assert {
        "created": "created (3)",
        "running": "running (3)",
        "paused": "paused (2)",
        "stopped": "stopped (3)",
        "deleted": "deleted (1)",
    } == labels
    assert '\tinitial -> created [label="create (12)"' in source
    assert '\tcreated -> running [label="start (9)"' in source
    assert '\trunning -> paused [label="pause (2)"' in source
    assert '\trunning -> stopped [label="stop (3)"' in source
    assert '\trunning -> stopped [label="kill (1)"' in source
    assert '\tstopped -> deleted [label="remove (1)"' in source
    assert "\tpaused -> running [label=unpause]" in source  # never taken: no count
    assert "fleet: 12 containers" in source


@pytest.mark.anyio
async def test_nothing_graph_related_runs_on_a_transition(monkeypatch: pytest.MonkeyPatch) -> None:
    """With nobody asking for a graph, transitions never build one."""

    def refuse(**_: object) -> None:
        raise AssertionError("a graph was built on a transition")

    monkeypatch.setattr("lifecycle.engine._container.lifecycle_graph", refuse)
    monkeypatch.setattr("lifecycle.engine._fleet.lifecycle_graph", refuse)
    with anyio.fail_after(10):
        async with Engine() as engine:
            container = await engine.create(["sleep", "60"])
            await container.start()
            await container.pause()
            await container.stop()
            await container.remove()
    with pytest.raises(AssertionError, match="graph was built"):
        container.graph()


def test_render_svg_with_dot_removed_from_path(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """lifecycle.render makes SVG with no `dot` reachable; PNG then raises the documented error."""
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    graph = lifecycle.graph.lifecycle_graph(current=State.PAUSED)
    svg = render(graph, "svg")
    nodes, labels = svg_texts(svg)
    assert "paused" in nodes
    assert "unpause" in labels
    with pytest.raises(GraphvizNotFoundError, match="png output needs the Graphviz 'dot' binary"):
        render(graph, format="png")
    with pytest.raises(GraphvizNotFoundError, match="pdf"):
        render(graph.source, format="pdf")
    with pytest.raises(TypeError, match="expected a graphviz graph"):
        render(42)


@pytest.mark.anyio
async def test_render_async_matches_render() -> None:
    """render_async gives the same bytes as render, from a worker thread."""
    graph = lifecycle.graph.lifecycle_graph(current=State.RUNNING)
    with anyio.fail_after(30):
        assert render(graph) == await render_async(graph)


def test_cli_highlight_marks_one_state(tmp_path: Path) -> None:
    """`lifecycle diagram --highlight paused` marks exactly that state."""
    result = run_cli("diagram", "--highlight", "paused", "--format", "dot", cwd=tmp_path)
    assert 0 == result.returncode, result.stderr.decode()
    assert ({"paused"}, set()) == highlighted(result.stdout.decode())
    result = run_cli("diagram", "--highlight", "paused", cwd=tmp_path)
    assert 1 == result.returncode
    assert b"--highlight draws one picture" in result.stderr
