"""Subscribe to events: an async iterator with filters, and a plain callback.

Run: .venv/bin/python examples/event_subscriber.py
"""

from __future__ import annotations

import anyio

from lifecycle import Engine, Event


def log_everything(event: Event) -> None:
    """A plain callback: called in order, in its own task, never inline in an operation."""
    change = f" {event.from_state} -> {event.to_state}" if event.to_state else ""
    print(f"[callback] {event.action:<8} {event.name}{change}")


async def main() -> None:
    async with Engine() as engine:
        engine.add_callback(log_everything)
        # Only the web container's starts and deaths; opened before create, so nothing is missed.
        async with engine.subscribe(container="web", actions={"start", "die"}) as events:
            web = await engine.create(["sh", "-c", "sleep 0.2; exit 3"], name="web")
            other = await engine.create(["sleep", "60"], name="other")
            await other.start()
            await web.start()
            async for event in events:
                print(f"[subscriber] {event.action} {event.attributes}")
                if event.action == "die":
                    print(f"[subscriber] web exited with {event.attributes['exitCode']}")
                    break
        print(engine.statistics())


if __name__ == "__main__":
    anyio.run(main)
