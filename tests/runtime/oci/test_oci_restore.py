"""Restore with the OCI driver: a container's writes survive the engine (its overlay is
unmounted at exit and mounted again at restore), and a container an engine left running
when it was SIGKILLed -- still running under runc, its PID 1 alive -- is deleted from
the runtime (no live_restore yet) and comes back stopped with exit code 255."""

from __future__ import annotations

import sys
from pathlib import Path

import anyio
import pytest

from lifecycle import Engine, ImageStore, State
from lifecycle.rootfs import mounts_under

from ...oshelpers import eventually, proc_state, read_first_line
from .test_oci_driver import runtime, runtime_ids, store

pytestmark = pytest.mark.anyio

__all__ = ["runtime", "store"]  # the fixtures, shared with the driver's tests

REPO = Path(__file__).resolve().parents[3]


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
    script = (
        "import anyio, sys\n"
        "from lifecycle import Engine, ImageStore\n"
        "async def main():\n"
        "    store = ImageStore(sys.argv[1])\n"
        "    async with Engine(store=store, root=store.root, runtime=sys.argv[2]) as engine:\n"
        "        c = await engine.create(image='busybox', command=['sleep', '60'], name='left')\n"
        "        await c.start()\n"
        "        print(c.pid, c.short_id, flush=True)\n"
        "        await anyio.sleep_forever()\n"
        "anyio.run(main)\n"
    )
    with anyio.fail_after(60):
        process = await anyio.open_process(
            [sys.executable, "-c", script, str(store.root), runtime], cwd=REPO
        )
        assert process.stdout is not None
        pid_text, short_id = (await read_first_line(process.stdout)).decode().split()
        process.kill()
        await process.wait()
        await process.stdout.aclose()
        pid = int(pid_text)
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
