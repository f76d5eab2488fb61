"""The live graph: highlights that follow real containers, fleet counts, rendering, LiveGraph."""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import anyio
import pytest
from structlog.testing import capture_logs

import lifecycle
from lifecycle import (
    Engine,
    GraphvizNotFoundError,
    InvalidArgumentError,
    LiveGraph,
    State,
    Transition,
    Trigger,
    render,
    render_async,
)
from lifecycle.graph import CURRENT_STATE_STYLE, LAST_TRANSITION_STYLE

from .helpers import run_cli, svg_texts
from .oshelpers import eventually
from .test_engine_table import ROWS, action_for, bring_to

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
        render(42)  # type: ignore[arg-type]


@pytest.mark.anyio
async def test_render_async_matches_render() -> None:
    """render_async gives the same bytes as render, from a worker thread."""
    graph = lifecycle.graph.lifecycle_graph(current=State.RUNNING)
    with anyio.fail_after(30):
        assert render(graph) == await render_async(graph)


def svg_title(path: Path) -> str:
    """The graph's title text in an SVG file (raises if the file is not well-formed SVG)."""
    root = ET.fromstring(path.read_bytes())  # noqa: S314 -- our own output
    namespace = "{http://www.w3.org/2000/svg}"
    graph_group = next(g for g in root.iter(f"{namespace}g") if g.get("class") == "graph")
    texts = [t.text or "" for t in graph_group.findall(f"{namespace}text")]
    return " ".join(texts)


@pytest.mark.anyio
async def test_live_graph_follows_a_container_and_stays_parseable(tmp_path: Path) -> None:
    """The file shows each new state within 0.5 s, and is valid SVG at every read during a burst."""
    path = tmp_path / "web.svg"
    reads = 0
    bursting = True

    async def keep_reading() -> None:
        nonlocal reads
        while bursting:
            svg_title(path)  # a half-written file would not parse
            reads += 1
            await anyio.sleep(0.002)

    with anyio.fail_after(60):
        async with Engine() as engine:
            container = await engine.create(["sleep", "60"], name="web")
            async with LiveGraph(container, path) as live:
                assert f"web ({container.short_id}): created" == svg_title(path)
                await container.start()
                await eventually(lambda: svg_title(path).endswith("running"), timeout=0.5)
                async with anyio.create_task_group() as group:
                    group.start_soon(keep_reading)
                    for _ in range(100):  # 200 transitions
                        await container.pause()
                        await container.unpause()
                    await container.pause()
                    bursting = False
                await eventually(lambda: svg_title(path).endswith("paused"), timeout=0.5)
                await container.stop()
            assert svg_title(path).endswith("stopped")  # the final render on exit
    assert reads > 0
    assert live.renders < 200  # bursts coalesce
    assert 0 == live.failures


@pytest.mark.anyio
async def test_live_fleet_graph_and_a_render_failure(tmp_path: Path) -> None:
    """A failing render is logged and the engine goes on; the final render shows the final fleet."""
    path = tmp_path / "fleet.svg"
    with anyio.fail_after(30), capture_logs() as logs:
        async with Engine() as engine:
            async with LiveGraph(engine, path) as live:
                first = await engine.create(["sleep", "60"])
                await first.start()
                await eventually(lambda: "fleet: 1 containers" in svg_title(path), timeout=5)
                while True:  # a render may still be landing: retry until the swap holds
                    path.unlink(missing_ok=True)
                    try:
                        path.mkdir()  # now the rename onto it fails
                        break
                    except FileExistsError:
                        continue
                second = await engine.create(["sleep", "60"])
                await second.start()
                await eventually(lambda: live.failures > 0, timeout=5)
                assert "running" == second.state
                path.rmdir()
                await second.stop()
            assert "fleet: 2 containers" in svg_title(path)
    failures = [entry for entry in logs if entry["event"] == "live graph render failed"]
    assert failures
    assert str(path) == failures[0]["path"]


def test_live_graph_needs_a_known_format(tmp_path: Path) -> None:
    """A path whose suffix names no format is refused before anything starts."""
    with pytest.raises(InvalidArgumentError, match="cannot tell which picture"):
        LiveGraph(Engine(), tmp_path / "fleet.gif")


def test_cli_highlight_marks_one_state(tmp_path: Path) -> None:
    """`lifecycle diagram --highlight paused` marks exactly that state."""
    result = run_cli("diagram", "--highlight", "paused", "--format", "dot", cwd=tmp_path)
    assert 0 == result.returncode, result.stderr.decode()
    assert ({"paused"}, set()) == highlighted(result.stdout.decode())
    result = run_cli("diagram", "--highlight", "paused", cwd=tmp_path)
    assert 1 == result.returncode
    assert b"--highlight draws one picture" in result.stderr
