"""An engine with a journal doing a bit of everything, until it is killed (the crash test).

``python -m tests.engine.crash_workload ROOT SEED BACKEND [RUNTIME [live]]``: three
workers create, start, pause, unpause, stop, kill and remove containers of real
processes (some that fork a child of their own) as fast as they can; each prints
``created <id>`` once its create has returned, ``removing <id>`` before a remove begins
and ``removed <id>`` once it has returned, so the test knows what the journal must and
may hold when it kills this process with SIGKILL at a random line.
"""

from __future__ import annotations

import random
import sys

import anyio

from lifecycle import Engine, LifecycleError

COMMANDS = (
    ["sleep", "60"],
    ["sh", "-c", "sleep 60 & exec sleep 60"],  # a child of its own beside PID 1
    ["sh", "-c", "exit 3"],
    ["true"],
)


def say(*words: str) -> None:
    print(*words, flush=True)


async def worker(
    engine: Engine, chooser: random.Random, number: int, prefix: str, image: str | None
) -> None:
    for round_number in range(1_000_000):
        container = await engine.create(
            chooser.choice(COMMANDS),
            image=image,
            name=f"{prefix}w{number}-{round_number}",
            restart=chooser.choice(("no", "no", "always", "unless-stopped")),
            stop_timeout=0.2,
        )
        say("created", container.id)
        try:
            for step in chooser.sample(
                ["start", "pause", "unpause", "stop", "kill", "start"], chooser.randint(1, 5)
            ):
                if step == "start":
                    await container.start()
                elif step == "pause":
                    await container.pause()
                elif step == "unpause":
                    await container.unpause()
                elif step == "stop":
                    await container.stop()
                else:
                    await container.kill()
                say("did", step, container.id)
        except LifecycleError:
            pass  # the table refused a step (it exited meanwhile): part of the mix
        if chooser.random() < 0.5:
            say("removing", container.id)  # from here on it may be gone
            await container.remove(force=True)
            say("removed", container.id)


async def main(root: str, seed: int, runtime: str, live_restore: bool) -> None:
    """``runtime`` "native": argv-only containers; an OCI runtime: busybox containers on
    overlay root filesystems (the root's store must hold busybox). ``live_restore``: the
    engine adopts what the last one left running, and leaves its own running."""
    chooser = random.Random(seed)  # noqa: S311 -- a test's reproducible choices
    image = None if runtime == "native" else "busybox"
    engine = Engine(root=root, runtime=runtime, live_restore=live_restore)
    async with engine, anyio.create_task_group() as group:
        say("ready", str(len(engine.containers())))
        for number in range(3):
            choices = random.Random(chooser.random())  # noqa: S311
            group.start_soon(worker, engine, choices, number, f"s{seed}-", image)


if __name__ == "__main__":
    runtime = sys.argv[4] if len(sys.argv) > 4 else "native"
    live = sys.argv[5:] == ["live"]
    anyio.run(main, sys.argv[1], int(sys.argv[2]), runtime, live, backend=sys.argv[3])
