"""Run a small fleet while keeping a live picture of it current.

Run: .venv/bin/python examples/live_graph.py [OUT_DIR]   (default: demo-output/)

Writes OUT_DIR/fleet.svg (the whole fleet, rewritten after each transition)
and OUT_DIR/web.svg (one container). Open either in a browser and reload.
"""

from __future__ import annotations

import sys
from pathlib import Path

import anyio

from lifecycle import Engine, LiveGraph


async def main(out_dir: Path) -> None:
    async with Engine() as engine:
        async with (
            LiveGraph(engine, out_dir / "fleet.svg") as fleet,
            LiveGraph(await engine.create(["sleep", "60"], name="web"), out_dir / "web.svg"),
        ):
            web = engine.get("web")
            workers = [await engine.create(["sleep", "60"], name=f"worker-{n}") for n in range(4)]
            for container in [web, *workers]:
                await container.start()
            await web.pause()
            await workers[0].stop(timeout=1)
            await workers[1].kill()
            await workers[2].restart(timeout=1)
            await workers[3].pause()
            await workers[3].unpause()
            job = await engine.create(["sh", "-c", "exit 3"], name="job")
            await job.start()
            await job.wait()
            await job.remove()
            await engine.create(["true"], name="idle")
        print(f"{fleet.renders} renders of {out_dir / 'fleet.svg'} (bursts coalesce)")
    for name in ("fleet.svg", "web.svg"):
        print(f"wrote {out_dir / name}")


if __name__ == "__main__":
    anyio.run(main, Path(sys.argv[1]) if len(sys.argv) > 1 else Path("demo-output"))
