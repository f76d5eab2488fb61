"""``lifecycle demo``: a guided tour of every edge of the table, on real processes.

A few containers walk through all sixteen transitions (plus ``create``):
pause confirmed in /proc, a cooperative stop, a process that ignores SIGTERM
and is escalated to SIGKILL, one that exits by itself, one stopped and
resumed from outside, then killed from outside while paused, a forced
remove. An async subscriber prints the event stream on stdout; the
structured log (stderr) shows each transition. After each step, a picture
of that container's live graph goes into the output folder, and the fleet
graph at the end.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio

from lifecycle._errors import SpawnError
from lifecycle._files import write_atomically
from lifecycle._polling import poll_until
from lifecycle.engine import Container, Engine
from lifecycle.events import Event
from lifecycle.graph import render_async
from lifecycle.images import ImageStore

__all__ = ["run_demo"]

# Python that handles SIGTERM by exiting 0, and says when it is ready.
_COOPERATIVE = (
    "import pathlib, signal, sys, time\n"
    "signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))\n"
    "pathlib.Path(sys.argv[1]).touch()\n"
    "while True: time.sleep(1)\n"
)


class _Tour:
    def __init__(self, engine: Engine, out_dir: Path, scratch: Path) -> None:
        self.engine = engine
        self.out_dir = out_dir
        self.scratch = scratch
        self.written: list[Path] = []
        self.step = 0

    async def snapshot(self, container: Container, what: str) -> None:
        self.step += 1
        path = self.out_dir / f"{self.step:02d}-{container.name}-{what}.svg"
        svg = await render_async(container.graph())
        await anyio.to_thread.run_sync(write_atomically, path, svg)
        self.written.append(path)

    async def do(
        self, container: Container, what: str, operation: Callable[[], Awaitable[object]]
    ) -> None:
        print(f"\n== {container.name}: {what}", flush=True)
        await operation()
        await anyio.wait_all_tasks_blocked()  # let the event printer catch up
        await self.snapshot(container, what.split(maxsplit=1)[0])

    async def ready(self, marker: Path) -> None:
        # The child reports readiness only by creating a file: poll for it.
        while not await anyio.Path(marker).exists():  # noqa: ASYNC110
            await anyio.sleep(0.01)


def _proc_state(pid: int | None) -> str:
    """The state letter ``/proc`` shows for ``pid`` (the demo looks for itself, as a user would)."""
    if pid is None:
        return "gone"
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            data = stat.read()
    except OSError:
        return "gone"
    # The command name (field 2) may hold spaces and parentheses: the state follows the last ')'.
    return data[data.rindex(b")") + 2 :].split(b" ", 1)[0].decode()


async def _print_events(engine: Engine, started: anyio.Event) -> None:
    async with engine.subscribe(lossless=True) as events:
        started.set()
        event: Event
        async for event in events:
            attributes = " ".join(f"{k}={v}" for k, v in event.attributes.items() if k != "name")
            change = f" {event.from_state} -> {event.to_state}" if event.to_state else ""
            print(f"   event: {event.action:<8} {event.name}{change} {attributes}".rstrip())


async def _from_outside(tour: _Tour) -> None:
    """Signals the engine did not send: it follows /proc (stopped -> paused, and back)."""
    frozen = await tour.engine.create(["sleep", "600"], name="frozen")
    await tour.do(frozen, "start", frozen.start)
    pid = frozen.pid

    def report() -> None:
        print(f"   /proc/{pid}/stat says {_proc_state(pid)!r}; the engine reads {frozen.state}")

    async def stop_from_outside() -> None:
        if pid is not None:
            os.killpg(pid, signal.SIGSTOP)  # lands asynchronously: wait for T
            await poll_until(lambda: _proc_state(pid) == "T", timeout=5)
        report()

    async def continue_from_outside() -> None:
        if pid is not None:
            os.killpg(pid, signal.SIGCONT)
        report()

    await tour.do(frozen, "pause (kill -STOP from outside)", stop_from_outside)
    await tour.do(frozen, "unpause (kill -CONT from outside)", continue_from_outside)
    await tour.do(frozen, "pause (kill -STOP from outside, again)", stop_from_outside)

    async def kill_from_outside() -> None:
        if pid is not None:
            os.kill(pid, signal.SIGKILL)  # a stopped process dies of SIGKILL
        await frozen.wait()

    # Stopped by a signal, not frozen: a process frozen by the cgroup v1 freezer (pause()
    # as root) would die of SIGKILL only once thawed, the kernel's rule (README, Containment).
    await tour.do(frozen, "die (kill -9 from outside while paused)", kill_from_outside)


async def _tour(tour: _Tour) -> None:
    engine = tour.engine
    web = await engine.create(["sleep", "600"], name="web", stop_timeout=5)
    await tour.snapshot(web, "create")
    await tour.do(web, "start", web.start)
    if (engine.statistics().containment or "").startswith("cgroup"):
        await tour.do(web, "pause (cgroup freezer, confirmed FROZEN)", web.pause)
        print(f"   /proc/{web.pid}/stat says state {_proc_state(web.pid)!r} (D = frozen)")
        await tour.do(web, "unpause (thawed)", web.unpause)
    else:
        await tour.do(web, "pause (SIGSTOP, confirmed in /proc)", web.pause)
        print(f"   /proc/{web.pid}/stat says state {_proc_state(web.pid)!r} (T = stopped)")
        await tour.do(web, "unpause (SIGCONT)", web.unpause)
    print(f"   /proc/{web.pid}/stat says state {_proc_state(web.pid)!r}")
    await tour.do(web, "stop (SIGTERM: sleep dies of it, 143)", web.stop)
    await tour.do(web, "start again", web.start)
    await tour.do(web, "restart (running -> running)", web.restart)
    await tour.do(web, "pause", web.pause)
    await tour.do(web, "restart from paused", web.restart)
    await tour.do(web, "kill (SIGKILL, 137)", web.kill)
    await tour.do(web, "restart from stopped", web.restart)
    await tour.do(web, "pause", web.pause)
    await tour.do(web, "kill while paused", web.kill)
    await tour.do(web, "start", web.start)
    await tour.do(web, "pause", web.pause)
    await tour.do(web, "stop while paused (SIGTERM + SIGCONT)", web.stop)
    await tour.do(web, "remove", web.remove)

    ready = tour.scratch / "cooperative.ready"
    cooperative = await engine.create(
        [sys.executable, "-c", _COOPERATIVE, str(ready)], name="cooperative"
    )
    await tour.do(cooperative, "start", cooperative.start)
    await tour.ready(ready)
    await tour.do(cooperative, "stop (handles SIGTERM, exits 0)", cooperative.stop)

    ready = tour.scratch / "stubborn.ready"
    stubborn = await engine.create(
        ["sh", "-c", f"trap '' TERM; touch {ready}; exec sleep 600"],
        name="stubborn",
        stop_timeout=1,
    )
    await tour.do(stubborn, "start", stubborn.start)
    await tour.ready(ready)
    await tour.do(stubborn, "stop (ignores SIGTERM: SIGKILL after 1 s, 137)", stubborn.stop)

    job = await engine.create(["sh", "-c", "sleep 0.2; exit 3"], name="job")
    await tour.do(job, "start (exits 3 by itself)", job.start)
    await tour.do(job, "wait for its die", job.wait)

    await _from_outside(tour)

    draft = await engine.create(["sleep", "600"], name="draft")
    await tour.do(draft, "remove (never started)", draft.remove)

    oneshot = await engine.create(["sleep", "600"], name="oneshot")
    await tour.do(oneshot, "restart (from created)", oneshot.restart)
    await tour.do(
        oneshot, "remove --force (kill, die, destroy)", lambda: oneshot.remove(force=True)
    )


async def _image_container(scratch: Path) -> None:
    """Where root, runc and a static busybox are: a real PID 1 in its own namespaces."""
    busybox = shutil.which("busybox")
    if os.geteuid() != 0 or busybox is None or shutil.which("runc") is None:
        print("\n(no image container: it needs root, runc and busybox-static)")
        return
    rootfs = scratch / "busybox-rootfs"
    (rootfs / "bin").mkdir(parents=True)
    shutil.copy2(busybox, rootfs / "bin" / "busybox")
    (rootfs / "bin" / "sh").symlink_to("busybox")
    store = ImageStore(scratch / "store")
    await store.import_rootfs(rootfs, "busybox", cmd=["sh"])
    async with Engine(store=store, runtime="runc") as engine:
        box = await engine.create(
            image="busybox",
            name="box",
            command=[
                "sh",
                "-c",
                "echo pid $$ on $(busybox hostname), network: $(busybox ls /sys/class/net)",
            ],
        )
        print("\n== box: an image container under runc (a real PID 1 in its own namespaces)")
        try:
            await box.start()
        except SpawnError as error:
            print(f"   could not start: {error.reason}")
            return
        host_pid = box.pid
        code = await box.wait()
        for line in box.logs():
            print(f"   {line.text}")
        print(f"   exit code {code}; on the host it was pid {host_pid}; driver {box.driver}")


async def run_demo(out_dir: Path) -> list[Path]:
    """Tour every transition on real processes; write the pictures into ``out_dir``."""
    print("lifecycle demo: every edge of the transition table, on real processes.")
    print("Events (from an async subscriber) on stdout; the structured log on stderr.")
    with tempfile.TemporaryDirectory(prefix="lifecycle-demo-") as scratch:
        async with Engine() as engine:
            print(f"Containment: {engine.statistics().containment}.")
            tour = _Tour(engine, out_dir, Path(scratch))
            async with anyio.create_task_group() as printer:
                subscribed = anyio.Event()
                printer.start_soon(_print_events, engine, subscribed)
                await subscribed.wait()
                await _tour(tour)
                fleet = out_dir / "fleet.svg"
                svg = await render_async(engine.graph())
                await anyio.to_thread.run_sync(write_atomically, fleet, svg)
                tour.written.append(fleet)
                printer.cancel_scope.cancel()
        await _image_container(Path(scratch))
    print(f"\nWrote {len(tour.written)} pictures into {out_dir}/:")
    for path in tour.written:
        print(f"  {path}")
    return tour.written
