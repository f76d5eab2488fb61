"""Profile the engine's hot path (the lifecycle cycle) with pyinstrument.

Run: .venv/bin/python benchmarks/profile_cycle.py [asyncio|trio]
"""

from __future__ import annotations

import sys
from pathlib import Path

import anyio
from pyinstrument import Profiler

from lifecycle import Engine

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import engine_cycle

CYCLES = 400


async def main() -> None:
    async with Engine() as engine:
        for _ in range(50):  # warm up
            await engine_cycle(engine)
        profiler = Profiler(interval=0.0002, async_mode="disabled")
        profiler.start()
        for _ in range(CYCLES):
            await engine_cycle(engine)
        profiler.stop()
    print(profiler.output_text(unicode=False, color=False))


if __name__ == "__main__":
    anyio.run(main, backend=sys.argv[1] if len(sys.argv) > 1 else "trio")
