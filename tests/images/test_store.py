"""ImageStore against tools no one here wrote: umoci builds, skopeo copies and reads back."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import tarfile
from pathlib import Path

import anyio
import pytest
import zstandard

from lifecycle import (
    ImageConflictError,
    ImageContentError,
    ImageNotFoundError,
    ImageReference,
    ImageStore,
    InvalidReferenceError,
)
from lifecycle.images import chain_ids

from .tools import busybox_rootfs, layout_document, layout_manifest, require, run, umoci_image

pytestmark = pytest.mark.anyio


@pytest.fixture
def rootfs(tmp_path: Path) -> Path:
    return busybox_rootfs(tmp_path / "rootfs")


@pytest.fixture
def umoci_layout(tmp_path: Path, rootfs: Path) -> Path:
    """A layout made by umoci: bb:latest (busybox) and bb:extra (busybox + one more layer)."""
    layout = tmp_path / "bb"
    umoci_image(layout, "latest", rootfs)
    more = tmp_path / "more"
    (more / "srv").mkdir(parents=True)
    (more / "srv" / "data").write_bytes(b"x" * 5000)
    umoci_image(layout, "extra", more, base="latest")
    return layout


def blobs(store: ImageStore) -> set[str]:
    return {entry.name for entry in (store.root / "blobs" / "sha256").iterdir()}


def store_state(store: ImageStore) -> tuple[set[str], bytes]:
    return blobs(store), (store.root / "index.json").read_bytes()


async def test_an_umoci_layout_imports_with_ids_chain_ids_and_config(
    tmp_path: Path, umoci_layout: Path
) -> None:
    """Every tagged manifest comes in; the id is the config digest umoci wrote; DiffIDs are
    the config's and chain ids follow the OCI spec; the run config is umoci's."""
    store = ImageStore(tmp_path / "store")
    with anyio.fail_after(60):
        images = await store.import_oci_layout(umoci_layout)
    assert {"bb:latest", "bb:extra"} == {r.familiar for i in images for r in i.references}
    manifest = layout_manifest(umoci_layout, "extra")
    config = layout_document(umoci_layout, manifest["config"]["digest"])
    extra = store.get("bb:extra")
    assert manifest["config"]["digest"] == extra.id
    assert 12 == len(extra.short_id)
    assert config["rootfs"]["diff_ids"] == [layer.diff_id for layer in extra.layers]
    assert chain_ids(config["rootfs"]["diff_ids"]) == [layer.chain_id for layer in extra.layers]
    assert extra.layers[0].chain_id == extra.layers[0].diff_id
    second = hashlib.sha256(f"{extra.layers[0].diff_id} {extra.layers[1].diff_id}".encode())
    assert f"sha256:{second.hexdigest()}" == extra.layers[1].chain_id
    assert ("sh",) == extra.config.cmd
    assert extra.created is not None
    assert extra.created.tzinfo is not None
    assert extra.size == sum(layer.size for layer in extra.layers) > 1_900_000


async def test_layers_are_stored_once_and_removal_keeps_what_others_use(
    tmp_path: Path, umoci_layout: Path
) -> None:
    """Two images sharing a base layer store it once; removing one deletes only its own
    blobs; removing the last leaves no blob behind."""
    store = ImageStore(tmp_path / "store")
    with anyio.fail_after(60):
        await store.import_oci_layout(umoci_layout)
        base, extra = store.get("bb:latest"), store.get("bb:extra")
        assert base.layers[0].digest == extra.layers[0].digest
        layer_blobs = {layer.digest.removeprefix("sha256:") for layer in extra.layers}
        assert layer_blobs <= blobs(store)
        # 2 manifests + 2 configs + 2 distinct layers: the shared one is there once.
        assert 6 == len(blobs(store))
        assert base.size == store.shared_size(extra) == store.shared_size(base)
        assert ["Untagged: bb:extra", f"Deleted: {extra.id}"] == await store.remove("bb:extra")
        assert base.layers[0].digest.removeprefix("sha256:") in blobs(store)
        assert extra.layers[1].digest.removeprefix("sha256:") not in blobs(store)
        await store.remove("bb:latest")
    assert set() == blobs(store)
    assert [] == store.images()


async def test_skopeo_copies_import_from_oci_and_docker_archive(
    tmp_path: Path, umoci_layout: Path
) -> None:
    """skopeo's oci: layout (full reference names) and its docker-archive tarball both import."""
    require("skopeo")
    copied = tmp_path / "copied"
    target = f"oci:{copied}:docker.io/library/busybox:1.36"
    run("skopeo", "copy", f"oci:{umoci_layout}:latest", target)
    archive = tmp_path / "busybox.tar"
    run("skopeo", "copy", f"oci:{umoci_layout}:latest", f"docker-archive:{archive}:me/box:v1")
    store = ImageStore(tmp_path / "store")
    with anyio.fail_after(60):
        from_layout = await store.import_oci_layout(copied)
        from_archive = await store.import_archive(archive)
    assert ["busybox:1.36"] == [r.familiar for r in from_layout[0].references]
    # skopeo kept the config, so both are one image (the id is the config's digest) by two names.
    assert from_layout[0].id == from_archive[0].id
    assert {"busybox:1.36", "me/box:v1"} == {r.familiar for r in store.get("me/box:v1").references}


async def test_saved_images_and_the_store_itself_are_read_back_by_skopeo_and_umoci(
    tmp_path: Path, rootfs: Path
) -> None:
    """`save` writes a tar skopeo reads as oci-archive and docker-archive; the store is an
    OCI layout that skopeo and umoci read directly."""
    require("skopeo")
    require("umoci")
    store = ImageStore(tmp_path / "store")
    with anyio.fail_after(60):
        image = await store.import_rootfs(rootfs, "me/tool:1.0", cmd=["sh"], env={"PATH": "/bin"})
        saved = await store.save(["me/tool:1.0"], tmp_path / "out.tar")
    for transport in ("oci-archive", "docker-archive"):
        seen = json.loads(run("skopeo", "inspect", f"{transport}:{saved}"))
        assert [layer.digest for layer in image.layers] == seen["Layers"], transport
        assert ["PATH=/bin"] == seen["Env"]
    direct = json.loads(run("skopeo", "inspect", f"oci:{store.root}:docker.io/me/tool:1.0"))
    assert [layer.digest for layer in image.layers] == direct["Layers"]
    assert "docker.io/me/tool:1.0" in run("umoci", "ls", "--layout", store.root)
    # And what we saved imports into a second store as the same image.
    again = ImageStore(tmp_path / "again")
    with anyio.fail_after(60):
        [loaded] = await again.import_archive(saved)
    assert image.id == loaded.id


@pytest.mark.parametrize("compression", ["none", "gzip", "zstd"])
async def test_import_rootfs_from_a_directory_or_a_compressed_tar(
    tmp_path: Path, rootfs: Path, compression: str
) -> None:
    """A rootfs tar, plain, gzip or zstd, is one layer whose DiffID is the plain tar's sha256."""
    plain = io.BytesIO()
    with tarfile.open(fileobj=plain, mode="w") as archive:
        archive.add(rootfs, arcname=".")
    data = plain.getvalue()
    packed = {
        "none": data,
        "gzip": __import__("gzip").compress(data),
        "zstd": zstandard.ZstdCompressor().compress(data),
    }[compression]
    path = tmp_path / "rootfs.tar"
    path.write_bytes(packed)
    store = ImageStore(tmp_path / "store")
    with anyio.fail_after(60):
        image = await store.import_rootfs(path, "me/packed", entrypoint=["/bin/sh", "-c"])
        from_directory = await store.import_rootfs(rootfs, "me/dir:1")
    [layer] = image.layers
    assert f"sha256:{hashlib.sha256(data).hexdigest()}" == layer.diff_id
    assert len(data) == layer.size
    assert f"sha256:{hashlib.sha256(packed).hexdigest()}" == layer.digest
    assert ("/bin/sh", "-c") == image.config.command()
    assert 1 == len(from_directory.layers)


def corrupt_copy(source: Path, target: Path, damage: str) -> Path:
    """A copy of an OCI layout with one kind of damage to its first layer."""
    shutil.copytree(source, target)
    manifest = layout_manifest(target, "latest")
    layer = target / "blobs" / "sha256" / manifest["layers"][0]["digest"].removeprefix("sha256:")
    if damage == "truncated":
        layer.write_bytes(layer.read_bytes()[:1000])
    elif damage == "flipped":
        data = bytearray(layer.read_bytes())
        data[len(data) // 2] ^= 0xFF
        layer.write_bytes(bytes(data))
    elif damage == "missing":
        layer.unlink()
    return target


@pytest.mark.parametrize("damage", ["truncated", "flipped", "missing"])
async def test_a_damaged_layer_is_refused_naming_the_blob_and_nothing_is_added(
    tmp_path: Path, umoci_layout: Path, rootfs: Path, damage: str
) -> None:
    """Truncated, bit-flipped or missing: ImageContentError naming that blob; the store's
    blobs and index are exactly as before."""
    store = ImageStore(tmp_path / "store")
    with anyio.fail_after(60):
        await store.import_rootfs(rootfs, "me/keep")
        before = store_state(store)
        broken = corrupt_copy(umoci_layout, tmp_path / "broken", damage)
        digest = layout_manifest(broken, "latest")["layers"][0]["digest"]
        with pytest.raises(ImageContentError) as raised:
            await store.import_oci_layout(broken)
    assert digest.removeprefix("sha256:") in raised.value.blob
    assert before == store_state(store)
    assert ["me/keep:latest"] == [r.familiar for i in store.images() for r in i.references]


async def test_a_diff_id_the_config_does_not_list_is_refused(
    tmp_path: Path, umoci_layout: Path
) -> None:
    """A config whose DiffIDs do not match the layers: refused, naming the layer."""
    broken = tmp_path / "broken"
    shutil.copytree(umoci_layout, broken)
    index = json.loads((broken / "index.json").read_bytes())
    entry = next(
        e
        for e in index["manifests"]
        if e["annotations"]["org.opencontainers.image.ref.name"] == "latest"
    )
    manifest = layout_document(broken, entry["digest"])
    config = layout_document(broken, manifest["config"]["digest"])
    config["rootfs"]["diff_ids"] = ["sha256:" + "0" * 64]
    config_bytes = json.dumps(config).encode()
    manifest["config"] = {
        **manifest["config"],
        "digest": _put(broken, config_bytes),
        "size": len(config_bytes),
    }
    manifest_bytes = json.dumps(manifest).encode()
    index["manifests"] = [
        {**entry, "digest": _put(broken, manifest_bytes), "size": len(manifest_bytes)}
    ]
    (broken / "index.json").write_text(json.dumps(index))
    store = ImageStore(tmp_path / "store")
    with anyio.fail_after(60), pytest.raises(ImageContentError, match="DiffID"):
        await store.import_oci_layout(broken)
    assert set() == blobs(store)


def _put(layout: Path, data: bytes) -> str:
    digest = hashlib.sha256(data).hexdigest()
    (layout / "blobs" / "sha256" / digest).write_bytes(data)
    return f"sha256:{digest}"


async def test_tags_ids_and_prefixes_find_images_and_rm_follows_docker(
    tmp_path: Path, rootfs: Path
) -> None:
    """get by reference, id, 'sha256:' id or unique prefix; tag adds a name; removing an id
    with several names needs force (Docker's 409); unknown names are ImageNotFoundError."""
    store = ImageStore(tmp_path / "store")
    with anyio.fail_after(60):
        image = await store.import_rootfs(rootfs, "me/tool:1.0")
        store.tag("me/tool:1.0", "localhost:5000/tool")
        hex_id = image.id.removeprefix("sha256:")
        for name in ("me/tool:1.0", "docker.io/me/tool:1.0", image.id, hex_id, hex_id[:8]):
            assert image.id == store.get(name).id, name
        assert {"me/tool:1.0", "localhost:5000/tool:latest"} == {
            r.familiar for r in store.get(image.id).references
        }
        with pytest.raises(ImageConflictError, match="must be forced"):
            await store.remove(image.short_id)
        with pytest.raises(ImageNotFoundError, match="no such image: me/other"):
            store.get("me/other")
        with pytest.raises(InvalidReferenceError):
            store.tag("me/tool:1.0", "Bad/Name")
        assert ["Untagged: localhost:5000/tool:latest"] == await store.remove("localhost:5000/tool")
        last = await store.remove(image.short_id)
        assert ["Untagged: me/tool:1.0", f"Deleted: {image.id}"] == last
    assert [] == store.images()
    with pytest.raises(ImageNotFoundError):
        store.get(image.id)


async def test_a_removal_never_takes_the_blobs_of_a_concurrent_import(
    tmp_path: Path, rootfs: Path
) -> None:
    """Imports and removals racing in several threads: every image that was imported and not
    removed has all its blobs, and nothing unreferenced is left."""
    store = ImageStore(tmp_path / "store")
    with anyio.fail_after(120):
        await store.import_rootfs(rootfs, "me/victim")

        async def churn(number: int) -> None:
            for round_ in range(3):
                await store.import_rootfs(rootfs, f"me/churn{number}:{round_}", cmd=[str(round_)])
                await store.remove(f"me/churn{number}:{round_}")

        async def survive() -> None:
            await store.import_rootfs(rootfs, "me/survivor", cmd=["keep"])

        async with anyio.create_task_group() as group:
            for number in range(4):
                group.start_soon(churn, number)
            group.start_soon(survive)
    survivor = store.get("me/survivor")
    needed = {survivor.manifest_digest, survivor.id, *(layer.digest for layer in survivor.layers)}
    victim = store.get("me/victim")
    needed |= {victim.manifest_digest, victim.id, *(layer.digest for layer in victim.layers)}
    assert {d.removeprefix("sha256:") for d in needed} == blobs(store)


def test_a_store_root_that_is_a_file_is_refused(tmp_path: Path) -> None:
    """A root that exists and is not a directory: InvalidArgumentError naming it."""
    path = tmp_path / "file"
    path.write_text("x")
    with pytest.raises(ValueError, match="not a directory"):
        ImageStore(path)


def test_reference_objects_compare_by_value() -> None:
    """Two parses of equivalent names are equal (the store keys tags by them)."""
    assert ImageReference.parse("busybox") == ImageReference.parse(
        "docker.io/library/busybox:latest"
    )


async def test_an_image_index_imports_the_manifest_for_this_machine(
    tmp_path: Path, umoci_layout: Path
) -> None:
    """A layout whose tag names an image index (multi-platform): the manifest for linux and
    this machine's architecture is imported; one for no matching platform is refused."""
    from lifecycle.images._store import host_architecture  # noqa: PLC0415

    index_path = umoci_layout / "index.json"
    index = json.loads(index_path.read_bytes())
    entry = next(
        e
        for e in index["manifests"]
        if e["annotations"]["org.opencontainers.image.ref.name"] == "latest"
    )
    other = "arm64" if host_architecture() != "arm64" else "amd64"
    platforms = [
        {**_plain(entry), "platform": {"os": "linux", "architecture": other}},
        {**_plain(entry), "platform": {"os": "linux", "architecture": host_architecture()}},
    ]
    image_index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": platforms,
    }
    data = json.dumps(image_index).encode()
    wrapped = {
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "digest": _put(umoci_layout, data),
        "size": len(data),
        "annotations": {"org.opencontainers.image.ref.name": "multi"},
    }
    index["manifests"].append(wrapped)
    index_path.write_text(json.dumps(index))
    store = ImageStore(tmp_path / "store")
    with anyio.fail_after(60):
        await store.import_oci_layout(umoci_layout)
    assert store.get("bb:multi").manifest_digest == entry["digest"]
    # Only a foreign platform: refused, naming what is missing.
    image_index["manifests"] = platforms[:1]
    data = json.dumps(image_index).encode()
    wrapped.update(digest=_put(umoci_layout, data), size=len(data))
    index["manifests"] = [wrapped]
    index_path.write_text(json.dumps(index))
    fresh = ImageStore(tmp_path / "fresh")
    with anyio.fail_after(60), pytest.raises(ImageContentError, match="no manifest for linux/"):
        await fresh.import_oci_layout(umoci_layout)


def _plain(entry: dict[str, object]) -> dict[str, object]:
    return {key: value for key, value in entry.items() if key != "annotations"}
