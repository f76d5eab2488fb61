"""A plain asyncio program that embeds the engine and reacts to `die` events.

A flaky worker crashes (exit 7). The program hears each `die` through a
subscription, logs the exit code, and starts the worker again, at most three
times; then it gives up and reports what it saw.

Run: .venv/bin/python examples/asyncio_embedding.py
"""

from __future__ import annotations

import asyncio

from lifecycle import Engine


async def supervise_flaky_worker(max_restarts: int = 3) -> list[int]:
    """Start the worker, restart it after each die up to ``max_restarts``; return the exit codes."""
    exit_codes: list[int] = []
    async with Engine() as engine:
        worker = await engine.create(["sh", "-c", "echo working >&2; exit 7"], name="worker")
        async with engine.subscribe(container="worker", actions={"die"}) as deaths:
            await worker.start()
            async for event in deaths:
                exit_codes.append(int(event.attributes["exitCode"]))
                print(f"{event.name} died with exit code {event.attributes['exitCode']}")
                if len(exit_codes) > max_restarts:
                    print(f"giving up after {max_restarts} restarts")
                    break
                await worker.start()
    return exit_codes


if __name__ == "__main__":
    codes = asyncio.run(supervise_flaky_worker())
    print(f"exit codes seen: {codes}")
