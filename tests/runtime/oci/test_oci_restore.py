"""Restore with the OCI driver: a container's writes survive the engine (its overlay is
unmounted at exit and mounted again at restore); a container an engine left running
when it was SIGKILLed -- still running under runc, its PID 1 alive -- is deleted from
the runtime and comes back stopped with exit code 255; with live_restore it is adopted
instead (its PID 1 checked by pidfd and start time), or, if it ended while no engine
ran, comes back stopped with the exit code its monitor kept."""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

import anyio
import pytest

from lifecycle import Container, Engine, ImageStore, State
from lifecycle.rootfs import mounts_under

from ...oshelpers import eventually, proc_state, read_first_line
from .test_oci_driver import runtime, runtime_ids, runtime_status, store

pytestmark = pytest.mark.anyio

__all__ = ["runtime", "store"]  # the fixtures, shared with the driver's tests

REPO = Path(__file__).resolve().parents[3]


# An engine in a child process: it starts one busybox container, says its PID 1 and short
# id, and waits; the test then SIGKILLs it, leaving the container as a crash would.
ENGINE_THAT_WAITS = """
import anyio, json, sys
from lifecycle import Engine, ImageStore
async def main(root, runtime, command, name, live_restore):
    store = ImageStore(root)
    async with Engine(store=store, root=store.root, runtime=runtime,
                      live_restore=live_restore == "live") as engine:
        c = await engine.create(image="busybox", command=json.loads(command), name=name)
        await c.start()
        print(c.pid, c.short_id, flush=True)
        await anyio.sleep_forever()
anyio.run(main, *sys.argv[1:])
"""


async def started_by_a_killed_engine(
    store: ImageStore, runtime: str, command: list[str], name: str, *, live_restore: bool
) -> tuple[int, str]:
    """Run ``ENGINE_THAT_WAITS`` until its container runs, SIGKILL it; (PID 1, short id)."""
    arguments = [
        str(store.root),
        runtime,
        json.dumps(command),
        name,
        "live" if live_restore else "",
    ]
    process = await anyio.open_process(
        [sys.executable, "-c", ENGINE_THAT_WAITS, *arguments], cwd=REPO
    )
    assert process.stdout is not None
    pid_text, short_id = (await read_first_line(process.stdout)).decode().split()
    process.kill()
    await process.wait()
    await process.stdout.aclose()
    return int(pid_text), short_id


async def test_writes_survive_a_restart_of_the_engine(
    tmp_path: Path, store: ImageStore, runtime: str
) -> None:
    with anyio.fail_after(60):
        async with Engine(store=store, root=store.root, runtime=runtime) as engine:
            container = await engine.create(
                image="busybox", command=["sh", "-c", "echo kept > /etc/note"], name="writer"
            )
            await container.start()
            assert 0 == await container.wait()
            rootfs = container.rootfs
            assert rootfs is not None
        assert not mounts_under(rootfs.parent)  # unmounted at exit, its files kept
        async with Engine(store=store, root=store.root, runtime=runtime) as engine:
            back = engine.get("writer")
            assert (State.STOPPED, 0) == (back.state, back.exit_code)
            assert back.rootfs is not None
            assert "kept\n" == (back.rootfs / "etc/note").read_text()
            assert ["A /etc/note"] == [str(c) for c in await back.diff() if c.path == "/etc/note"]
            await back.remove()
        assert not rootfs.parent.exists()


async def test_a_container_left_running_by_a_killed_engine_is_deleted_and_stopped(
    tmp_path: Path, store: ImageStore, runtime: str
) -> None:
    with anyio.fail_after(60):
        pid, short_id = await started_by_a_killed_engine(
            store, runtime, ["sleep", "60"], "left", live_restore=False
        )
        assert proc_state(pid) not in (None, "Z")  # runc's container outlived its engine
        assert any(name.startswith(f"{short_id}-") for name in runtime_ids(runtime))
        async with Engine(store=store, root=store.root, runtime=runtime) as engine:
            back = engine.get("left")
            assert (State.STOPPED, 255) == (back.state, back.exit_code)
            await eventually(lambda: proc_state(pid) in (None, "Z"), 5)  # init reaps it
            assert not any(name.startswith(f"{short_id}-") for name in runtime_ids(runtime))
            await back.start()  # its filesystem was kept mounted: it runs again
            assert back.pid is not None
            assert proc_state(back.pid) == "S"
            await back.remove(force=True)
        assert not list(Path("/run/lifecycle/bundles").glob(f"*/{short_id}-*"))


# PID 1 of the live_restore tests: it says "up", "usr1" at SIGUSR1, "bye" and exits 3 at
# SIGTERM (PID 1 has no default action for either: the traps are what it does).
TRAPPING = [
    "sh",
    "-c",
    "trap 'echo usr1' USR1; trap 'echo bye; exit 3' TERM; echo up; while :; do sleep 0.05; done",
]
EXITS = Path("/run/lifecycle/exits")


def _lines(container: Container) -> list[str]:
    return [line.text for line in container.logs()]


def _left_of(short_id: str, runtime: str) -> list[str]:
    """What the runtime, the bundles and the exit files still hold of a container."""
    return [
        *[name for name in runtime_ids(runtime) if name.startswith(f"{short_id}-")],
        *[str(path) for path in Path("/run/lifecycle/bundles").glob(f"*/{short_id}-*")],
        *[str(path) for path in EXITS.glob(f"{short_id}-*")],
    ]


async def test_live_restore_leaves_a_container_running_and_the_next_engine_adopts_it(
    store: ImageStore, runtime: str
) -> None:
    """The engine ends; the container does not: its PID 1 runs on, its overlay stays
    mounted, what it writes meanwhile waits in its FIFO (no SIGPIPE); the next engine
    adopts it running, reads that output, and stops it with the exit code PID 1 gave."""
    with anyio.fail_after(60):
        async with Engine(store=store, root=store.root, runtime=runtime, live_restore=True) as one:
            container = await one.create(image="busybox", command=TRAPPING, name="kept")
            await container.start()
            await eventually(lambda: "up" in _lines(container))
            pid, short_id, rootfs = container.pid, container.short_id, container.rootfs
        assert pid is not None
        assert rootfs is not None
        assert proc_state(pid) == "S"  # it outlived the engine
        (run,) = [name for name in runtime_ids(runtime) if name.startswith(f"{short_id}-")]
        assert "running" == runtime_status(runtime, run)
        assert mounts_under(rootfs.parent)  # its root is still mounted: it is in use
        os.kill(pid, signal.SIGUSR1)  # it writes while no engine reads
        async with Engine(store=store, root=store.root, runtime=runtime, live_restore=True) as two:
            back = two.get("kept")
            assert (State.RUNNING, pid) == (back.state, back.pid)
            await eventually(lambda: "usr1" in _lines(back))
            await back.stop()
            assert 3 == back.exit_code  # from its monitor: PID 1 is not this engine's child
            assert ["usr1", "bye"] == _lines(back)
            await eventually(lambda: not _left_of(short_id, runtime), 10)
            await back.remove()
        assert proc_state(pid) is None


async def test_live_restore_keeps_the_exit_code_of_a_run_that_ended_while_no_engine_ran(
    store: ImageStore, runtime: str
) -> None:
    """The engine is SIGKILLed; the container then exits (code 3) with nobody watching but
    its monitor; the next engine restores it stopped with that code, not 255."""
    with anyio.fail_after(60):
        pid, short_id = await started_by_a_killed_engine(
            store, runtime, TRAPPING, "gone", live_restore=True
        )
        assert proc_state(pid) == "S"
        os.kill(pid, signal.SIGTERM)
        await eventually(lambda: proc_state(pid) is None, 10)  # its monitor reaped it
        await eventually(lambda: bool(list(EXITS.glob(f"{short_id}-*"))), 10)
        async with Engine(store=store, root=store.root, runtime=runtime, live_restore=True) as two:
            back = two.get("gone")
            assert (State.STOPPED, 3) == (back.state, back.exit_code)
            assert not _left_of(short_id, runtime)
            await back.remove()


async def test_live_restore_never_adopts_a_process_the_journal_does_not_name(
    store: ImageStore, runtime: str
) -> None:
    """A record whose PID 1 start time is not the running process's (a reused pid would
    look like this): nothing is adopted; the run is deleted and it comes back 255."""
    with anyio.fail_after(60):
        async with Engine(store=store, root=store.root, runtime=runtime, live_restore=True) as one:
            container = await one.create(image="busybox", command=TRAPPING, name="other")
            await container.start()
            pid, short_id, container_id = container.pid, container.short_id, container.id
        assert pid is not None
        record_path = store.root / "containers" / f"{container_id}.json"
        record = json.loads(record_path.read_text())
        assert pid == record["pid"]
        record["pid_start_time"] += 1
        record_path.write_text(json.dumps(record))
        async with Engine(store=store, root=store.root, runtime=runtime, live_restore=True) as two:
            back = two.get("other")
            assert (State.STOPPED, 255) == (back.state, back.exit_code)
            await eventually(lambda: proc_state(pid) in (None, "Z"), 10)
            assert not _left_of(short_id, runtime)
            await back.remove()
