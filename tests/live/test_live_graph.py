"""LiveGraph: a picture file that follows a container or the fleet while they change."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import anyio
import pytest
from structlog.testing import capture_logs

from lifecycle import Engine, InvalidArgumentError, LiveGraph

from ..oshelpers import eventually


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
