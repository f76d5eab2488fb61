"""Pull and push against a real registry (Debian's CNCF distribution), with skopeo as oracle."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from lifecycle import ImageNotFoundError, ImageStore, RegistryError

from .tools import Registry, busybox_rootfs, layout_manifest, require, run, umoci_image

pytestmark = pytest.mark.anyio


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    server = Registry(tmp_path / "registry-open")
    yield server
    server.stop()


@pytest.fixture
def locked_registry(tmp_path: Path) -> Iterator[Registry]:
    server = Registry(tmp_path / "registry-auth", users={"alice": "s3cret"})
    yield server
    server.stop()


@pytest.fixture
async def store_with_tool(tmp_path: Path) -> ImageStore:
    store = ImageStore(tmp_path / "store")
    rootfs = busybox_rootfs(tmp_path / "rootfs")
    await store.import_rootfs(rootfs, "me/tool:1.0", cmd=["sh"], env={"PATH": "/bin"})
    return store


async def test_a_pushed_image_is_what_skopeo_sees_and_pulls_back_the_same(
    tmp_path: Path, registry: Registry, store_with_tool: ImageStore
) -> None:
    """push -> skopeo inspect docker:// shows our layers and env; pull into an empty store
    gives the same image id, layers and config; by digest too."""
    require("skopeo")
    store = store_with_tool
    image = store.get("me/tool:1.0")
    target = f"{registry.address}/me/tool:1.0"
    with anyio.fail_after(60):
        digest = await store.push("me/tool:1.0", target, insecure=True)
    assert image.manifest_digest == digest
    seen = json.loads(run("skopeo", "inspect", "--tls-verify=false", f"docker://{target}"))
    assert (digest, ["PATH=/bin"]) == (seen["Digest"], seen["Env"])
    assert [layer.digest for layer in image.layers] == seen["Layers"]
    fresh = ImageStore(tmp_path / "fresh")
    with anyio.fail_after(60):
        pulled = await fresh.pull(target, insecure=True)
        by_digest = await fresh.pull(f"{registry.address}/me/tool@{digest}", insecure=True)
    assert (image.id, image.layers, image.config) == (pulled.id, pulled.layers, pulled.config)
    assert [target] == [str(r) for r in pulled.references]
    assert pulled.id == by_digest.id


async def test_an_image_skopeo_pushed_pulls_with_umocis_id(
    tmp_path: Path, registry: Registry
) -> None:
    """skopeo copies an umoci image (gzip layers) into the registry; our pull verifies and
    imports it with the config digest umoci wrote as its id."""
    require("skopeo")
    layout = tmp_path / "bb"
    umoci_image(layout, "latest", busybox_rootfs(tmp_path / "rootfs"))
    run(
        "skopeo",
        "copy",
        "--dest-tls-verify=false",
        f"oci:{layout}:latest",
        f"docker://{registry.address}/library/bb:1",
    )
    store = ImageStore(tmp_path / "store")
    with anyio.fail_after(60):
        image = await store.pull(f"{registry.address}/library/bb:1", insecure=True)
    assert layout_manifest(layout, "latest")["config"]["digest"] == image.id
    assert ("sh",) == image.config.cmd


async def test_push_skips_blobs_the_registry_has_and_mounts_across_repositories(
    tmp_path: Path, registry: Registry, store_with_tool: ImageStore
) -> None:
    """A second push of the same image uploads nothing (HEAD first); a push to another
    repository of the same registry mounts the blobs from one that has them."""
    store = store_with_tool
    with anyio.fail_after(60):
        await store.push("me/tool:1.0", f"{registry.address}/me/tool:1.0", insecure=True)
        first = len(registry.requests())
        await store.push("me/tool:1.0", f"{registry.address}/me/tool:1.0", insecure=True)
        again = registry.requests()[first:]
        # A store that knows the image under a name on this registry can mount from there.
        store.tag("me/tool:1.0", f"{registry.address}/me/tool:1.0")
        before_mount = len(registry.requests())
        await store.push("me/tool:1.0", f"{registry.address}/team/tool:2", insecure=True)
        mounting = registry.requests()[before_mount:]
    assert not [r for r in again if r.startswith(("POST", "PATCH")) or "/blobs/uploads" in r]
    assert [r for r in again if r.startswith("HEAD") and r.endswith(" 200")]
    mounts = [r for r in mounting if "mount=" in r and r.endswith(" 201")]
    assert 2 == len(mounts)  # the config and the one layer
    assert not [r for r in mounting if r.startswith("PUT") and "/blobs/uploads/" in r]


async def test_basic_auth_is_asked_for_refused_and_accepted(
    tmp_path: Path, locked_registry: Registry, store_with_tool: ImageStore
) -> None:
    """An htpasswd registry: no credentials or a wrong password is a RegistryError that
    says so; the right ones push and pull."""
    target = f"{locked_registry.address}/me/tool:1.0"
    with anyio.fail_after(60):
        with pytest.raises(RegistryError, match="wants a user name and password"):
            await store_with_tool.push("me/tool:1.0", target, insecure=True)
        with pytest.raises(RegistryError, match="401"):
            await store_with_tool.push(
                "me/tool:1.0", target, insecure=True, credentials=("alice", "wrong")
            )
        await store_with_tool.push(
            "me/tool:1.0", target, insecure=True, credentials=("alice", "s3cret")
        )
        fresh = ImageStore(tmp_path / "fresh")
        pulled = await fresh.pull(target, insecure=True, credentials=("alice", "s3cret"))
    assert store_with_tool.get("me/tool:1.0").id == pulled.id


async def test_pulling_what_is_not_there_is_image_not_found(
    tmp_path: Path, registry: Registry
) -> None:
    """A tag the registry does not have: ImageNotFoundError naming it; the store is empty."""
    store = ImageStore(tmp_path / "store")
    with anyio.fail_after(30), pytest.raises(ImageNotFoundError, match="nothing:here"):
        await store.pull(f"{registry.address}/nothing:here", insecure=True)
    assert [] == store.images()


async def test_an_unreachable_registry_is_a_registry_error(tmp_path: Path) -> None:
    """Nobody listening: RegistryError naming the registry."""
    store = ImageStore(tmp_path / "store")
    with anyio.fail_after(30), pytest.raises(RegistryError, match=r"registry 127\.0\.0\.1:9"):
        await store.pull("127.0.0.1:9/me/tool:1", insecure=True)
