"""Profile the engine's hot path (the lifecycle cycle) with pyinstrument.

Run: .venv/bin/python benchmarks/profile_cycle.py [asyncio|trio]
"""

from __future__ import annotations

import sys

import anyio
from pyinstrument import Profiler

from lifecycle import Engine

CYCLES = 400


async def main() -> None:
    async with Engine() as engine:

        async def cycle() -> None:
            container = await engine.create(["sleep", "60"])
            await container.start()
            await container.pause()
            await container.unpause()
            await container.stop()
            await container.remove()

        for _ in range(50):  # warm up
            await cycle()
        profiler = Profiler(interval=0.0002, async_mode="disabled")
        profiler.start()
        for _ in range(CYCLES):
            await cycle()
        profiler.stop()
    print(profiler.output_text(unicode=False, color=False))


if __name__ == "__main__":
    anyio.run(main, backend=sys.argv[1] if len(sys.argv) > 1 else "trio")
