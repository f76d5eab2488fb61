"""A tour of the engine on real processes: every operation, with what /proc says.

Run: .venv/bin/python examples/basic_lifecycle.py [asyncio|trio]
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import anyio

from lifecycle import Engine, InvalidTransitionError, SpawnError


def proc_state(pid: int | None) -> str:
    """The kernel's one-letter state of ``pid`` (T = stopped), or '-' if there is none."""
    if pid is None:
        return "-"
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return "gone"
    return stat[stat.rindex(")") + 2]


async def main() -> None:
    async with Engine() as engine:
        # As root a container is a cgroup and pause freezes it (/proc shows D);
        # otherwise it is a process group and pause SIGSTOPs it (/proc shows T).
        print(f"containment {engine.statistics().containment}")
        web = await engine.create(["sleep", "60"], name="web", stop_timeout=2.0)
        print(f"created     {web!r}")
        await web.start()
        print(f"started     {web!r}  /proc: {proc_state(web.pid)}")
        await web.pause()
        print(f"paused      {web!r}  /proc: {proc_state(web.pid)}")
        await web.unpause()
        print(f"unpaused    {web!r}  /proc: {proc_state(web.pid)}")
        try:
            await web.unpause()
        except InvalidTransitionError as error:
            print(f"refused     {error}")
        await web.stop()
        print(f"stopped     {web!r}  (143 = 128 + SIGTERM)")
        await web.restart()
        print(f"restarted   {web!r}")

        with tempfile.TemporaryDirectory() as scratch:
            ready = Path(scratch) / "ready"
            stubborn = await engine.create(
                ["sh", "-c", f"trap '' TERM; touch {ready}; exec sleep 60"],
                name="stubborn",
                stop_timeout=0.3,
            )
            await stubborn.start()
            while not ready.exists():  # noqa: ASYNC110 -- the child reports readiness only in a file
                await anyio.sleep(0.01)
            await stubborn.stop()
        print(f"escalated   {stubborn!r}  (137 = 128 + SIGKILL after 0.3 s)")

        job = await engine.create(["sh", "-c", "exit 3"], name="job")
        await job.start()
        code = await job.wait()
        print(f"exited      {job!r}  wait() -> {code}")

        missing = await engine.create(["no-such-program"], name="missing")
        try:
            await missing.start()
        except SpawnError as error:
            print(f"spawn error {error}")

        await web.remove(force=True)
        print(f"removed     {web!r}; live: {[c.name for c in engine.containers()]}")
    print(f"engine closed: {engine!r}")


if __name__ == "__main__":
    anyio.run(main, backend=sys.argv[1] if len(sys.argv) > 1 else "asyncio")
