"""A fleet: 100 containers started, paused and stopped concurrently; the fleet graph at the end.

Run: .venv/bin/python examples/fleet.py [OUT_DIR]   (default: demo-output/)
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import anyio

from lifecycle import Container, Engine, render_async

SIZE = 100


async def each(containers: list[Container], operation: str) -> float:
    """Run one operation on every container concurrently; return the seconds it took."""
    started = time.perf_counter()
    async with anyio.create_task_group() as group:
        for container in containers:
            group.start_soon(getattr(container, operation))
    return time.perf_counter() - started


async def main(out_dir: Path) -> None:
    async with Engine() as engine:
        fleet = [await engine.create(["sleep", "600"], name=f"node-{n:03d}") for n in range(SIZE)]
        for operation in ("start", "pause", "unpause", "stop"):
            seconds = await each(fleet, operation)
            print(f"{operation:<8} {SIZE} containers concurrently: {seconds * 1e3:7.1f} ms")
        await each(fleet[: SIZE // 2], "remove")
        svg = await render_async(engine.graph())
        target = anyio.Path(out_dir) / "fleet-100.svg"
        await target.parent.mkdir(parents=True, exist_ok=True)
        await target.write_bytes(svg)
        print(f"wrote {target} ({len(engine.containers())} containers left, {SIZE // 2} removed)")


if __name__ == "__main__":
    anyio.run(main, Path(sys.argv[1]) if len(sys.argv) > 1 else Path("demo-output"))
