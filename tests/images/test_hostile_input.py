"""Layer tars, manifests and paths are attacker-controlled: each trick is refused with an error
naming the entry, nothing is added to the store, nothing is written outside it."""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest

from lifecycle import ImageContentError, ImageStore, InvalidArgumentError, UnsafeLayerError
from lifecycle.images._layers import scan_layer

pytestmark = pytest.mark.anyio

Entry = Callable[[tarfile.TarFile], None]


def _file(name: str, data: bytes = b"x") -> Entry:
    def add(archive: tarfile.TarFile) -> None:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))

    return add


def _link(name: str, target: str, kind: bytes) -> Entry:
    def add(archive: tarfile.TarFile) -> None:
        info = tarfile.TarInfo(name)
        info.type = kind
        info.linkname = target
        archive.addfile(info)

    return add


def _device(name: str, kind: bytes) -> Entry:
    def add(archive: tarfile.TarFile) -> None:
        info = tarfile.TarInfo(name)
        info.type = kind
        info.devmajor, info.devminor = 1, 3
        archive.addfile(info)

    return add


def layer(*entries: Entry) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        _file("ok/first", b"fine")(archive)
        for entry in entries:
            entry(archive)
    return buffer.getvalue()


def docker_archive(
    path: Path,
    layer_bytes: bytes,
    *,
    layer_name: str = "layer.tar",
    image_config: dict[str, object] | None = None,
) -> Path:
    """A docker-save tarball with one image (me/evil:1) whose one layer is ``layer_bytes``."""
    diff_id = f"sha256:{hashlib.sha256(layer_bytes).hexdigest()}"
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": image_config or {},
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        }
    ).encode()
    manifest = json.dumps(
        [{"Config": "config.json", "RepoTags": ["me/evil:1"], "Layers": [layer_name]}]
    ).encode()
    with tarfile.open(path, "w") as archive:
        for name, data in (
            ("manifest.json", manifest),
            ("config.json", config),
            ("layer.tar", layer_bytes),
        ):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def store_state(store: ImageStore) -> tuple[list[str], bytes]:
    return (
        sorted(p.name for p in (store.root / "blobs" / "sha256").iterdir()),
        (store.root / "index.json").read_bytes(),
    )


HOSTILE = [
    ("climbs out", [_file("../../escaped", b"owned")], "../../escaped", "climbs out"),
    ("absolute", [_file("/etc/evil", b"owned")], "/etc/evil", "absolute"),
    ("dot-dot inside", [_file("a/../../escaped")], "a/../../escaped", "climbs out"),
    ("symlink out", [_link("a/link", "../../../etc", tarfile.SYMTYPE)], "a/link", "symbolic link"),
    ("absolute symlink climbing", [_link("lnk", "/../../etc", tarfile.SYMTYPE)], "lnk", "symbolic"),
    ("hard link out", [_link("hard", "../outside", tarfile.LNKTYPE)], "hard", "hard link"),
    ("hard link absolute", [_link("hard", "/etc/passwd", tarfile.LNKTYPE)], "hard", "hard link"),
]


@pytest.mark.parametrize(
    ("case", "entries", "entry", "problem"), HOSTILE, ids=[h[0] for h in HOSTILE]
)
async def test_a_hostile_layer_entry_is_refused_naming_it(
    tmp_path: Path, case: str, entries: list[Entry], entry: str, problem: str
) -> None:
    """UnsafeLayerError names the entry and the problem; the store is unchanged; nothing was
    written next to it."""
    store = ImageStore(tmp_path / "store")
    before = store_state(store)
    archive = docker_archive(tmp_path / "evil.tar", layer(*entries))
    with anyio.fail_after(30), pytest.raises(UnsafeLayerError) as raised:
        await store.import_archive(archive)
    assert entry == raised.value.entry
    assert problem in str(raised.value)
    assert before == store_state(store)
    assert not (tmp_path / "escaped").exists()
    assert not (tmp_path.parent / "escaped").exists()
    assert {"store", "evil.tar"} == {p.name for p in tmp_path.iterdir()}


def test_links_that_stay_inside_are_accepted() -> None:
    """Absolute symlinks (read from the layer's root in a container) and ones that climb but
    stay inside are fine, as real images need them."""
    data = layer(
        _link("bin/ls", "/bin/busybox", tarfile.SYMTYPE),
        _link("usr/lib/x", "../../lib/x", tarfile.SYMTYPE),
        _link("ok/hard", "ok/first", tarfile.LNKTYPE),
    )
    facts = scan_layer(io.BytesIO(data), "test")
    assert (4, f"sha256:{hashlib.sha256(data).hexdigest()}") == (facts.entries, facts.diff_id)


def test_names_made_of_dots_that_do_not_climb_are_accepted() -> None:
    """ "...", "..x" and "a/..." are ordinary names (only ".." climbs): they are kept."""
    data = layer(_file("..."), _file("..x"), _file("ok/..."), _file("ok/.hidden"))
    assert 5 == scan_layer(io.BytesIO(data), "test").entries


@pytest.mark.parametrize("kind", [tarfile.CHRTYPE, tarfile.BLKTYPE])
def test_devices_are_refused_unless_root(kind: bytes) -> None:
    """A device entry: refused when we could not create it (not root), accepted when we can."""
    data = layer(_device("dev/mem", kind))
    with pytest.raises(UnsafeLayerError, match="only root may create devices") as raised:
        scan_layer(io.BytesIO(data), "test", allow_devices=False)
    assert "dev/mem" == raised.value.entry
    assert 2 == scan_layer(io.BytesIO(data), "test", allow_devices=True).entries
    assert (os.geteuid() == 0) == _accepted_by_default(data)


def _accepted_by_default(data: bytes) -> bool:
    try:
        scan_layer(io.BytesIO(data), "test")
    except UnsafeLayerError:
        return False
    return True


async def test_a_tar_bomb_is_refused_at_the_limit(tmp_path: Path) -> None:
    """A layer that unpacks to more than max_layer_bytes: refused; nothing added."""
    import gzip  # noqa: PLC0415

    bomb = gzip.compress(layer(_file("zeros", b"\0" * 3_000_000)), compresslevel=9)
    assert len(bomb) < 20_000
    path = tmp_path / "bomb.tar.gz"
    path.write_bytes(bomb)
    store = ImageStore(tmp_path / "store", max_layer_bytes=1_000_000)
    before = store_state(store)
    with anyio.fail_after(30), pytest.raises(UnsafeLayerError, match="more than 1000000 bytes"):
        await store.import_rootfs(path, "me/bomb")
    assert before == store_state(store)


def test_data_that_is_not_a_tar_is_refused() -> None:
    """Random bytes (and a truncated gzip) are ImageContentError naming the blob."""
    with pytest.raises(ImageContentError, match="not a valid tar"):
        scan_layer(io.BytesIO(b"no tar here" * 100), "blob-a")
    import gzip  # noqa: PLC0415

    truncated = gzip.compress(layer())[:-20]
    with pytest.raises(ImageContentError, match="blob-b"):
        scan_layer(io.BytesIO(truncated), "blob-b")


@pytest.mark.parametrize("name", ["../../../etc/passwd", "/etc/passwd"])
async def test_an_archive_naming_a_file_outside_itself_is_refused(
    tmp_path: Path, name: str
) -> None:
    """manifest.json pointing outside the archive: refused naming the path; nothing added."""
    store = ImageStore(tmp_path / "store")
    archive = docker_archive(tmp_path / "evil.tar", layer(), layer_name=name)
    with anyio.fail_after(30), pytest.raises(ImageContentError, match="outside the image source"):
        await store.import_archive(archive)
    assert [] == store.images()


@pytest.mark.parametrize("keep", [700, 5000])
async def test_a_truncated_archive_is_refused_naming_it(tmp_path: Path, keep: int) -> None:
    """An upload cut short (docker load of half a tar): ImageContentError naming the archive,
    not tarfile's ReadError; nothing added."""
    store = ImageStore(tmp_path / "store")
    whole = docker_archive(tmp_path / "whole.tar", layer() + b"\0" * 20_000)
    cut = tmp_path / "cut.tar"
    cut.write_bytes(whole.read_bytes()[:keep])
    with anyio.fail_after(30), pytest.raises(ImageContentError, match=r"cut\.tar"):
        await store.import_archive(cut)
    assert [] == store.images()


async def test_a_layout_blob_that_links_outside_is_refused(tmp_path: Path) -> None:
    """An OCI layout whose blob is a symlink to a host file: refused; the file is not read."""
    layout = tmp_path / "layout"
    (layout / "blobs" / "sha256").mkdir(parents=True)
    (layout / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    secret = tmp_path / "secret"
    secret.write_text("host secret")
    digest = hashlib.sha256(b"host secret").hexdigest()
    (layout / "blobs" / "sha256" / digest).symlink_to(secret)
    (layout / "index.json").write_text(
        json.dumps(
            {
                "schemaVersion": 2,
                "manifests": [
                    {
                        "mediaType": "application/vnd.oci.image.manifest.v1+json",
                        "digest": f"sha256:{digest}",
                        "size": 11,
                        "annotations": {"org.opencontainers.image.ref.name": "x:1"},
                    }
                ],
            }
        )
    )
    store = ImageStore(tmp_path / "store")
    with anyio.fail_after(30), pytest.raises(ImageContentError, match="outside the image source"):
        await store.import_oci_layout(layout)


@pytest.mark.parametrize("digest", ["sha256:../../../etc/passwd", "md5:abc", 42])
async def test_a_descriptor_with_a_bad_digest_is_refused(tmp_path: Path, digest: object) -> None:
    """A digest that is not sha256 + 64 hex never becomes a path."""
    layout = tmp_path / "layout"
    (layout / "blobs" / "sha256").mkdir(parents=True)
    (layout / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    (layout / "index.json").write_text(
        json.dumps(
            {
                "schemaVersion": 2,
                "manifests": [
                    {
                        "digest": digest,
                        "size": 1,
                        "annotations": {"org.opencontainers.image.ref.name": "x:1"},
                    }
                ],
            }
        )
    )
    store = ImageStore(tmp_path / "store")
    with anyio.fail_after(30), pytest.raises(ImageContentError, match="not a sha256 digest"):
        await store.import_oci_layout(layout)


@pytest.mark.parametrize("bound", [0, -1, True, 1.5, "10"])
def test_a_layer_bound_that_is_not_a_positive_whole_number_is_refused(
    tmp_path: Path, bound: object
) -> None:
    """max_layer_bytes below one (which would refuse every layer) or not a whole number:
    InvalidArgumentError naming it; no store is made."""
    with pytest.raises(InvalidArgumentError, match="max_layer_bytes"):
        ImageStore(tmp_path / "store", max_layer_bytes=bound)  # type: ignore[arg-type]
    assert not (tmp_path / "store").exists()
