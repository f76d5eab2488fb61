"""Containers from images: a copy-on-write root, diff, commit, and nothing left behind.

Run on both snapshotters (overlayfs and the copy-based vfs) and both backends. The
native driver chroots into the root filesystem, which needs root.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest

from lifecycle import (
    Engine,
    ImageConflictError,
    ImageNotFoundError,
    ImageStore,
    InvalidArgumentError,
    State,
)
from lifecycle.rootfs import mounts_under

from ..images.tools import busybox_rootfs, require, run
from ..oshelpers import eventually, require_root

pytestmark = [pytest.mark.anyio]

SNAPSHOTTERS = ["overlayfs", "vfs"]


def require_containers_from_images() -> None:
    require_root("image containers (the native driver chroots, overlay mounts)")


@pytest.fixture
async def store(tmp_path: Path) -> ImageStore:
    require_containers_from_images()
    store = ImageStore(tmp_path / "store")
    await store.import_rootfs(busybox_rootfs(tmp_path / "rootfs"), "busybox", cmd=["sh"])
    return store


@pytest.fixture(params=SNAPSHOTTERS)
async def engine(request: pytest.FixtureRequest, store: ImageStore) -> AsyncIterator[Engine]:
    async with Engine(store=store, snapshotter=request.param) as engine:
        yield engine
    assert [] == mounts_under(store.root)


def tree_digest(directory: Path) -> str:
    """One digest of every path, type, mode and content below ``directory``."""
    digest = hashlib.sha256()
    for current, directories, files in sorted(os.walk(directory)):
        directories.sort()
        for name in sorted([*directories, *files]):
            path = Path(current) / name
            info = path.lstat()
            digest.update(f"{path.relative_to(directory)} {info.st_mode} {info.st_size}".encode())
            if path.is_file() and not path.is_symlink():
                digest.update(path.read_bytes())
    return digest.hexdigest()


SCRIPT = "echo hi > /new && rm /etc/hostname && busybox mv /bin/ls /bin/list && pwd"


async def test_a_container_writes_only_to_its_own_layer(engine: Engine, store: ImageStore) -> None:
    """Writes, deletes and renames show in diff as Docker reports them; the image's blobs and
    the shared layer directories do not change; the process ran inside the image."""
    before = tree_digest(store.root / "blobs"), tree_digest(store.root / "snapshots")
    with anyio.fail_after(30):
        container = await engine.create(image="busybox", command=["sh", "-c", SCRIPT])
        assert container.rootfs is not None
        assert container.image is not None
        assert "busybox:latest" == container.image.references[0].familiar
        await container.start()
        assert 0 == await container.wait()
        changes = [str(change) for change in await container.diff()]
    assert ["/"] == [line.text for line in container.logs()]
    assert ["C /bin", "A /bin/list", "D /bin/ls", "C /etc", "D /etc/hostname", "A /new"] == changes
    assert (container.rootfs / "new").read_text() == "hi\n"
    blobs_after = tree_digest(store.root / "blobs")
    layers = store.root / "snapshots" / "overlayfs" / "layers"
    if layers.exists():  # overlay: the shared layer directories are untouched
        assert blobs_after == before[0]
        pristine = tree_digest(layers)
        container2 = await engine.create(
            image="busybox", command=["sh", "-c", "rm -rf /bin/busybox"]
        )
        await container2.start()
        await container2.wait()
        assert pristine == tree_digest(layers)
    assert blobs_after == before[0]


async def test_commit_makes_an_image_that_round_trips(
    engine: Engine, store: ImageStore, tmp_path: Path
) -> None:
    """commit: parent layers + one; skopeo reads it; a container from it sees the writes and
    the deletions (whiteouts survive the round trip); a running container keeps running."""
    require("skopeo")
    with anyio.fail_after(60):
        container = await engine.create(
            image="busybox", command=["sh", "-c", f"{SCRIPT}; exec busybox sleep 60"]
        )
        await container.start()
        root = container.rootfs
        assert root is not None
        await eventually((root / "bin" / "list").exists)
        image = await container.commit("me/snap:1")
        assert State.RUNNING == container.state
        parent = store.get("busybox")
        assert [layer.digest for layer in parent.layers] == [
            layer.digest for layer in image.layers[:-1]
        ]
        assert len(parent.layers) + 1 == len(image.layers)
        seen = json.loads(run("skopeo", "inspect", f"oci:{store.root}:docker.io/me/snap:1"))
        assert [layer.digest for layer in image.layers] == seen["Layers"]
        child = await engine.create(
            image="me/snap:1",
            command=[
                "sh",
                "-c",
                "busybox cat /new; test -e /etc/hostname || echo gone; "
                "test -e /bin/ls || echo moved",
            ],
        )
        await child.start()
        assert 0 == await child.wait()
    assert ["hi", "gone", "moved"] == [line.text for line in child.logs()]
    await container.kill()


async def test_remove_leaves_no_mount_and_no_directory_and_frees_the_image(
    engine: Engine, store: ImageStore
) -> None:
    """After remove: no rootfs, nothing mounted, no directory; the image, in use until then,
    can be removed."""
    with anyio.fail_after(30):
        container = await engine.create(image="busybox", command=["true"])
        root = container.rootfs
        assert root is not None
        with pytest.raises(ImageConflictError, match="in use by container"):
            await store.remove("busybox")
        await container.remove()
        assert container.rootfs is None
        assert [] == mounts_under(store.root)
        assert not root.exists()
        assert not root.parent.exists()
        assert ["Untagged: busybox:latest"] == (await store.remove("busybox"))[:1]


async def test_a_busy_rootfs_is_still_removed(engine: Engine, store: ImageStore) -> None:
    """A host process with its working directory inside the rootfs: removal still leaves
    no mount and no directory (a busy mount is detached, as moby#22312 asked for)."""
    with anyio.fail_after(30):
        container = await engine.create(image="busybox", command=["true"])
        assert container.rootfs is not None
        (container.rootfs / "holder").mkdir()
        # A plain host process; starting it does not block the loop for long.
        holder = subprocess.Popen(["sleep", "60"], cwd=container.rootfs / "holder")  # noqa: ASYNC220
        try:
            await container.remove()
            assert [] == mounts_under(store.root)
        finally:
            holder.kill()
            holder.wait()


async def test_the_engine_ending_leaves_no_rootfs_behind(store: ImageStore) -> None:
    """Containers the engine still has when it ends: their filesystems go with it."""
    with anyio.fail_after(30):
        async with Engine(store=store) as engine:
            container = await engine.create(image="busybox", command=["busybox", "sleep", "60"])
            await container.start()
            root = container.rootfs
            assert root is not None
            assert root.exists()
            assert engine.statistics().snapshotter in {"overlayfs", "vfs"}
    assert [] == mounts_under(store.root)
    assert not root.exists()


async def test_bad_image_requests_are_refused_and_create_nothing(
    store: ImageStore, tmp_path: Path
) -> None:
    """An image the store lacks: ImageNotFoundError; no store: InvalidArgumentError; a command
    missing from the image: SpawnError 127 at start; nothing mounted in any case."""
    from lifecycle import SpawnError  # noqa: PLC0415

    with anyio.fail_after(30):
        async with Engine(store=store) as engine:
            with pytest.raises(ImageNotFoundError, match="no such image: nothing"):
                await engine.create(image="nothing")
            assert [] == engine.containers()
            missing = await engine.create(image="busybox", command=["nosuchtool"])
            with pytest.raises(SpawnError, match="not found in the image") as raised:
                await missing.start()
            assert 127 == raised.value.exit_code
        async with Engine() as bare:
            with pytest.raises(InvalidArgumentError, match="no image store"):
                await bare.create(image="busybox")
    assert [] == mounts_under(store.root)


CRASHING_ENGINE = """
import os, sys, anyio
from lifecycle import Engine, ImageStore
async def main():
    engine = Engine(store=ImageStore(sys.argv[1]), snapshotter=sys.argv[2])
    async with engine:
        container = await engine.create(image="busybox", command=["true"])
        print(container.rootfs, flush=True)
        os.kill(os.getpid(), 9)  # a crash: no remove, no shutdown
anyio.run(main)
"""


@pytest.mark.parametrize("snapshotter", SNAPSHOTTERS)
async def test_what_a_crashed_engine_left_is_swept_by_the_next(
    store: ImageStore, snapshotter: str
) -> None:
    """An engine SIGKILLed with a container's rootfs mounted leaves it behind; the next
    engine on the store finds no live owner for it and removes it: no mount, no directory."""
    with anyio.fail_after(60):
        result = await anyio.run_process(
            [sys.executable, "-c", CRASHING_ENGINE, str(store.root), snapshotter], check=False
        )
    assert -9 == result.returncode, result.stderr
    left = Path(result.stdout.decode().strip())
    assert left.exists()
    Engine(store=store, snapshotter=snapshotter)
    assert not left.exists()
    assert not left.parent.exists()
    assert [] == mounts_under(store.root)
