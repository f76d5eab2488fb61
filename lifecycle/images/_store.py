"""``ImageStore``: images in an OCI image layout, imported, tagged, removed, saved.

Imports verify everything on the way in (every blob against its digest
and size, every layer walked as hostile input, every DiffID against the
config) and add nothing when anything is wrong: blobs an import wrote are
deleted again, and the index is only replaced, atomically, at the end.
Layers are stored once, by digest, whatever number of images use them.
Removing an image removes only the blobs no remaining image references,
under the store's lock (so never a blob an import in progress has just
written).

The work runs in a worker thread (file I/O, hashing, decompression); the
async methods wait for it. Cancellation: the operation in the thread runs
to its end (or failure) first; then the cancellation propagates.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import io
import json
import os
import platform
import tarfile
import tempfile
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Final, final

import anyio
import anyio.from_thread
import anyio.to_thread
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from lifecycle._errors import (
    ImageConflictError,
    ImageContentError,
    ImageNotFoundError,
    InvalidArgumentError,
)
from lifecycle.images._layers import (
    DEFAULT_MAX_LAYER_BYTES,
    LayerFacts,
    decompressed,
    scan_layer,
)
from lifecycle.images._layout import (
    ANNOTATION_CONTAINERD_NAME,
    ANNOTATION_REF_NAME,
    MAX_DOCUMENT_BYTES,
    MEDIA_DOCKER_MANIFEST,
    MEDIA_DOCKER_MANIFEST_LIST,
    MEDIA_OCI_CONFIG,
    MEDIA_OCI_INDEX,
    MEDIA_OCI_MANIFEST,
    Layout,
    check_digest,
    check_root,
    sha256_digest,
)
from lifecycle.images._model import Image, Layer, chain_ids, parse_config, parse_created
from lifecycle.images._reference import ImageReference, is_identifier
from lifecycle.images._registry import RegistryClient
from lifecycle.images._sources import Source, open_source
from lifecycle.model import check_whole_number

__all__ = ["ImageStore", "Progress"]

# (what, bytes so far, bytes in all or None): called from the worker thread.
Progress = Callable[[str, int, int | None], None]

_LAYER_MEDIA: Final = {
    "none": "application/vnd.oci.image.layer.v1.tar",
    "gzip": "application/vnd.oci.image.layer.v1.tar+gzip",
    "zstd": "application/vnd.oci.image.layer.v1.tar+zstd",
}
_MANIFESTS: Final = frozenset({MEDIA_OCI_MANIFEST, MEDIA_DOCKER_MANIFEST})
_INDEXES: Final = frozenset({MEDIA_OCI_INDEX, MEDIA_DOCKER_MANIFEST_LIST})
# Go's names for this machine (GOARCH), as image configs and platforms use them.
_GOARCH: Final = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "ppc64le": "ppc64le"}


def host_architecture() -> str:
    machine = platform.machine()
    return _GOARCH.get(machine, machine)


def _json(data: bytes, blob: str) -> dict[str, Any]:
    try:
        document = json.loads(data)
    except (ValueError, UnicodeDecodeError) as error:
        raise ImageContentError(blob, f"not valid JSON: {error}") from None
    if not isinstance(document, dict):
        raise ImageContentError(blob, "not a JSON object")
    return document


def _read_small(source: Source, name: str) -> bytes:
    with source.open(name) as file:
        data = file.read(MAX_DOCUMENT_BYTES + 1)
    if len(data) > MAX_DOCUMENT_BYTES:
        raise ImageContentError(source.describe(name), f"larger than {MAX_DOCUMENT_BYTES} bytes")
    return data


def _blob_name(digest: str) -> str:
    return f"blobs/sha256/{check_digest(digest).removeprefix('sha256:')}"


def _descriptor(document: object, what: str, blob: str) -> tuple[str, int, str]:
    """(digest, size, media type) of a descriptor, checked."""
    if not isinstance(document, dict):
        raise ImageContentError(blob, f"{what} is not a descriptor")
    digest = check_digest(document.get("digest"), f"the digest of {what}")
    size = document.get("size")
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise ImageContentError(blob, f"{what} has no valid size")
    media = document.get("mediaType")
    return digest, size, media if isinstance(media, str) else ""


@final
@dataclasses.dataclass(slots=True)
class _Import:
    """One import in progress: what it wrote (to undo) and what the index gains."""

    new_blobs: list[str] = dataclasses.field(default_factory=list)
    entries: list[tuple[ImageReference, dict[str, Any]]] = dataclasses.field(default_factory=list)


@final
class ImageStore:
    """An image store in an OCI image layout at ``root`` (created if missing).

    ``max_layer_bytes`` bounds each layer's uncompressed size (a tar bomb
    is refused with ``UnsafeLayerError``).
    """

    def __init__(
        self, root: str | os.PathLike[str], *, max_layer_bytes: int = DEFAULT_MAX_LAYER_BYTES
    ) -> None:
        self.root = check_root(root)
        self.max_layer_bytes = check_whole_number(max_layer_bytes, "max_layer_bytes", minimum=1)
        self._layout = Layout(self.root)
        self._layout.ensure()
        self._cache: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}
        # image id -> ids of the containers using it (Docker refuses rmi of those: 409).
        self._holds: dict[str, set[str]] = {}

    def __repr__(self) -> str:
        return f"<ImageStore {self.root}>"

    # -- reading -------------------------------------------------------------

    def images(self) -> list[Image]:
        """Every image in the store (one per image id, with all its references), newest first."""
        by_id: dict[str, Image] = {}
        for manifest_digest, references in self._tagged_manifests().items():
            image = self._image(manifest_digest, tuple(references))
            known = by_id.get(image.id)
            if known is None:
                by_id[image.id] = image
            else:
                merged = tuple(sorted({*known.references, *image.references}, key=str))
                by_id[image.id] = dataclasses.replace(known, references=merged)
        epoch = datetime.fromtimestamp(0, UTC)
        return sorted(by_id.values(), key=lambda image: image.created or epoch, reverse=True)

    def get(self, reference: str) -> Image:
        """The image a reference, an id (``sha256:...``, 64 hex) or a unique id prefix names.

        Raises ``ImageNotFoundError`` (saying when a prefix is ambiguous).
        """
        if not isinstance(reference, str) or not reference:
            raise ImageNotFoundError(repr(reference), reason="expected a reference or an id")
        images = self.images()
        hex_part = reference.removeprefix("sha256:")
        if (
            reference.startswith("sha256:")
            or is_identifier(reference)
            or (len(hex_part) >= 4 and all(c in "0123456789abcdef" for c in hex_part))
        ):
            matches = [
                image for image in images if image.id.removeprefix("sha256:").startswith(hex_part)
            ]
            if len(matches) == 1:
                return matches[0]
            if len(matches) > 1:
                raise ImageNotFoundError(
                    reference, reason=f"ambiguous: {len(matches)} images match"
                )
            if reference.startswith("sha256:") or is_identifier(reference):
                raise ImageNotFoundError(reference)
        wanted = ImageReference.parse(reference)
        for image in images:
            if wanted in image.references:
                return image
        raise ImageNotFoundError(reference)

    def _tagged_manifests(self) -> dict[str, list[ImageReference]]:
        found: dict[str, list[ImageReference]] = {}
        for entry in self._layout.read_index():
            name = _annotated_name(entry)
            digest = entry.get("digest")
            if not isinstance(name, str) or not isinstance(digest, str):
                continue
            found.setdefault(digest, []).append(ImageReference.parse(name))
        return found

    def _documents(self, manifest_digest: str) -> tuple[dict[str, Any], dict[str, Any]]:
        cached = self._cache.get(manifest_digest)
        if cached is None:
            manifest = _json(self._layout.read_document(manifest_digest), manifest_digest)
            config_digest, _, _ = _descriptor(manifest.get("config"), "config", manifest_digest)
            config = _json(self._layout.read_document(config_digest), config_digest)
            cached = self._cache[manifest_digest] = (manifest, config)
        return cached

    def _image(self, manifest_digest: str, references: tuple[ImageReference, ...]) -> Image:
        manifest, config = self._documents(manifest_digest)
        config_digest, _, _ = _descriptor(manifest.get("config"), "config", manifest_digest)
        run_config, diff_ids = parse_config(config, config_digest)
        layers = []
        for descriptor, diff_id, chain_id in zip(
            manifest.get("layers") or [], diff_ids, chain_ids(diff_ids), strict=False
        ):
            digest, size, media = _descriptor(descriptor, "layer", manifest_digest)
            facts = self._layout.read_layer_facts(digest) or {}
            layers.append(Layer(digest, diff_id, chain_id, int(facts.get("size", size)), media))
        return Image(
            id=config_digest,
            manifest_digest=manifest_digest,
            references=tuple(sorted(references, key=str)),
            created=parse_created(config.get("created")),
            layers=tuple(layers),
            config=run_config,
            architecture=config.get("architecture"),
            os=config.get("os"),
        )

    # -- importing -----------------------------------------------------------

    async def import_oci_layout(
        self,
        path: str | os.PathLike[str],
        *,
        repository: str | None = None,
        progress: Progress | None = None,
    ) -> list[Image]:
        """Every tagged manifest of an OCI layout directory (umoci, ``skopeo copy ... oci:``).

        A manifest named only by a tag (umoci's ``latest``) is filed under
        ``repository`` (default: the directory's name). Raises
        ``ImageContentError`` / ``UnsafeLayerError`` naming the blob, and
        adds nothing, if anything is wrong. Cancellation: see the module doc.
        """
        source_path = Path(os.fspath(path))
        return await anyio.to_thread.run_sync(
            self._import_source, source_path, repository, progress, True
        )

    async def import_archive(
        self,
        path: str | os.PathLike[str],
        *,
        repository: str | None = None,
        progress: Progress | None = None,
    ) -> list[Image]:
        """A ``docker save`` tarball (docker-archive) or an OCI archive tar: every tagged image.

        Same checks and failure rules as ``import_oci_layout``.
        """
        source_path = Path(os.fspath(path))
        return await anyio.to_thread.run_sync(
            self._import_source, source_path, repository, progress, False
        )

    def _import_source(
        self, path: Path, repository: str | None, progress: Progress | None, want_dir: bool
    ) -> list[Image]:
        if want_dir and not path.is_dir():
            raise ImageContentError(str(path), "not an OCI layout directory")
        if not want_dir and not path.is_file():
            raise ImageContentError(str(path), "not an archive file")
        source = open_source(path)
        try:
            default_repository = repository or path.name.removesuffix(".tar").lower()
            with self._layout.locked():
                work = _Import()
                try:
                    if source.exists("manifest.json"):
                        self._import_docker_archive(source, work, progress)
                    else:
                        self._import_layout(source, default_repository, work, progress)
                    if not work.entries:
                        raise ImageContentError(
                            source.describe("index.json"), "names no tagged image"
                        )
                    self._commit(work)
                except BaseException:
                    self._undo(work)
                    raise
        finally:
            source.close()
        return self._images_of(work)

    def _images_of(self, work: _Import) -> list[Image]:
        wanted = {reference for reference, _ in work.entries}
        return [image for image in self.images() if wanted & set(image.references)]

    def _import_layout(
        self, source: Source, repository: str, work: _Import, progress: Progress | None
    ) -> None:
        if not source.exists("oci-layout"):
            raise ImageContentError(source.describe("oci-layout"), "missing: not an OCI layout")
        index = _json(_read_small(source, "index.json"), source.describe("index.json"))
        for entry in index.get("manifests") or []:
            name = _annotated_name(entry)
            if not name:
                continue  # untagged: not imported (docker load does the same)
            reference = self._reference_for(name, repository)
            digest, size, media = _descriptor(entry, "index entry", source.describe("index.json"))
            manifest_digest = self._import_manifest_or_index(
                source, digest=digest, size=size, media=media, work=work, progress=progress
            )
            work.entries.append((reference, self._index_entry(manifest_digest, reference)))

    @staticmethod
    def _reference_for(name: str, repository: str) -> ImageReference:
        # umoci names manifests by tag only ("latest"); skopeo and docker by a full reference.
        if any(mark in name for mark in "/:@"):
            return ImageReference.parse(name)
        return ImageReference.parse(repository).with_tag(name)

    def _import_manifest_or_index(
        self,
        source: Source,
        *,
        digest: str,
        size: int,
        media: str,
        work: _Import,
        progress: Progress | None,
    ) -> str:
        data = _read_small(source, _blob_name(digest))
        document = _json(data, digest)
        media = media or str(document.get("mediaType") or MEDIA_OCI_MANIFEST)
        if media in _INDEXES:
            chosen = self._choose_platform(document, digest)
            self._verify_document(data, digest, size, source)
            chosen_digest, chosen_size, chosen_media = chosen
            return self._import_manifest_or_index(
                source,
                digest=chosen_digest,
                size=chosen_size,
                media=chosen_media,
                work=work,
                progress=progress,
            )
        if media not in _MANIFESTS:
            raise ImageContentError(digest, f"unsupported manifest media type {media!r}")
        self._verify_document(data, digest, size, source)
        self._import_manifest(source, data, digest, work, progress)
        return digest

    @staticmethod
    def _choose_platform(index: dict[str, Any], blob: str) -> tuple[str, int, str]:
        """The manifest for this machine in an image index (linux and our architecture)."""
        architecture = host_architecture()
        for entry in index.get("manifests") or []:
            platform_ = (entry.get("platform") or {}) if isinstance(entry, dict) else {}
            if (
                platform_.get("os", "linux") == "linux"
                and platform_.get("architecture", architecture) == architecture
            ):
                return _descriptor(entry, "index entry", blob)
        raise ImageContentError(blob, f"no manifest for linux/{architecture} in the index")

    @staticmethod
    def _verify_document(data: bytes, digest: str, size: int, source: Source) -> None:
        if sha256_digest(data) != digest:
            raise ImageContentError(
                source.describe(_blob_name(digest)), f"does not match its digest {digest} (corrupt)"
            )
        if len(data) != size:
            raise ImageContentError(
                source.describe(_blob_name(digest)),
                f"has {len(data)} bytes, its descriptor says {size}",
            )

    def _import_manifest(
        self, source: Source, data: bytes, digest: str, work: _Import, progress: Progress | None
    ) -> None:
        manifest = _json(data, digest)
        config_digest, config_size, _ = _descriptor(manifest.get("config"), "config", digest)
        config_bytes = _read_small(source, _blob_name(config_digest))
        self._verify_document(config_bytes, config_digest, config_size, source)
        _, diff_ids = parse_config(_json(config_bytes, config_digest), config_digest)
        layers = manifest.get("layers") or []
        if not isinstance(layers, list) or len(layers) != len(diff_ids):
            count = len(layers) if isinstance(layers, list) else "no"
            raise ImageContentError(digest, f"lists {count} layers, its config {len(diff_ids)}")
        for position, (descriptor, diff_id) in enumerate(zip(layers, diff_ids, strict=True)):
            layer_digest, layer_size, _ = _descriptor(descriptor, f"layer {position}", digest)
            if not self._layer_present(layer_digest):
                with source.open(_blob_name(layer_digest)) as stream:
                    self._ingest_layer(
                        stream,
                        source.describe(_blob_name(layer_digest)),
                        expected_digest=layer_digest,
                        expected_size=layer_size,
                        work=work,
                        progress=progress,
                    )
            self._check_diff_id(layer_digest, diff_id, position)
        self._keep(config_bytes, config_digest, work)
        self._keep(data, digest, work)

    def _import_docker_archive(
        self, source: Source, work: _Import, progress: Progress | None
    ) -> None:
        entries = json.loads(_read_small(source, "manifest.json"))
        if not isinstance(entries, list):
            raise ImageContentError(source.describe("manifest.json"), "not a list of images")
        for number, entry in enumerate(entries):
            where = source.describe(f"manifest.json[{number}]")
            if not isinstance(entry, dict) or not isinstance(entry.get("Config"), str):
                raise ImageContentError(where, "has no Config")
            tags = entry.get("RepoTags") or []
            layer_names = entry.get("Layers") or []
            if not isinstance(tags, list) or not isinstance(layer_names, list):
                raise ImageContentError(where, "RepoTags and Layers must be lists")
            config_bytes = _read_small(source, entry["Config"])
            config_digest = sha256_digest(config_bytes)
            _, diff_ids = parse_config(_json(config_bytes, where), config_digest)
            if len(layer_names) != len(diff_ids):
                raise ImageContentError(
                    where, f"lists {len(layer_names)} layers, its config {len(diff_ids)}"
                )
            descriptors = []
            for position, (name, diff_id) in enumerate(zip(layer_names, diff_ids, strict=True)):
                if not isinstance(name, str):
                    raise ImageContentError(where, f"layer {position} is not a path")
                with source.open(name) as stream:
                    layer_digest, size, facts = self._ingest_layer(
                        stream,
                        source.describe(name),
                        expected_digest=None,
                        expected_size=None,
                        work=work,
                        progress=progress,
                    )
                self._check_diff_id(layer_digest, diff_id, position)
                descriptors.append(
                    {
                        "mediaType": _LAYER_MEDIA[facts.compression],
                        "digest": layer_digest,
                        "size": size,
                    }
                )
            self._keep(config_bytes, config_digest, work)
            manifest = {
                "schemaVersion": 2,
                "mediaType": MEDIA_OCI_MANIFEST,
                "config": {
                    "mediaType": MEDIA_OCI_CONFIG,
                    "digest": config_digest,
                    "size": len(config_bytes),
                },
                "layers": descriptors,
            }
            manifest_bytes = json.dumps(manifest, indent=2).encode()
            manifest_digest = self._keep_new(manifest_bytes, work)
            for tag in tags:
                reference = ImageReference.parse(tag)
                work.entries.append(
                    (reference, self._index_entry(manifest_digest, reference, len(manifest_bytes)))
                )

    # -- the pieces of an import ---------------------------------------------

    def _layer_present(self, digest: str) -> bool:
        return self._layout.has_blob(digest) and self._layout.read_layer_facts(digest) is not None

    def _ingest_layer(
        self,
        stream: IO[bytes],
        blob: str,
        *,
        expected_digest: str | None,
        expected_size: int | None,
        work: _Import,
        progress: Progress | None,
    ) -> tuple[str, int, LayerFacts]:
        reporting = _Reporting(stream, blob, expected_size, progress)

        def scan(reader: IO[bytes]) -> LayerFacts:
            return scan_layer(reader, blob, max_bytes=self.max_layer_bytes)

        digest, size, new, facts = self._layout.ingest(
            reporting,  # type: ignore[arg-type]
            blob=blob,
            expected_digest=expected_digest,
            expected_size=expected_size,
            limit=self.max_layer_bytes,
            consume=scan,
        )
        if new:
            work.new_blobs.append(digest)
        if not isinstance(facts, LayerFacts):  # pragma: no cover -- scan returns its facts
            raise TypeError(f"the layer scan of {blob} returned {facts!r}")
        self._layout.write_layer_facts(
            digest, {"diff_id": facts.diff_id, "size": facts.size, "compression": facts.compression}
        )
        return digest, size, facts

    def _check_diff_id(self, digest: str, diff_id: str, position: int) -> None:
        facts = self._layout.read_layer_facts(digest) or {}
        if facts.get("diff_id") != diff_id:
            raise ImageContentError(
                digest,
                f"layer {position} uncompresses to {facts.get('diff_id')}, "
                f"but the config says its DiffID is {diff_id}",
            )

    def _keep(self, data: bytes, digest: str, work: _Import) -> None:
        written = self._keep_new(data, work)
        if written != digest:  # pragma: no cover -- verified before
            raise ImageContentError(digest, "changed while it was stored")

    def _keep_new(self, data: bytes, work: _Import) -> str:
        digest, new = self._layout.ingest_bytes(data, blob="(document)")
        if new:
            work.new_blobs.append(digest)
        return digest

    @staticmethod
    def _index_entry(
        manifest_digest: str,
        reference: ImageReference,
        size: int | None = None,
    ) -> dict[str, Any]:
        entry: dict[str, Any] = {"mediaType": MEDIA_OCI_MANIFEST, "digest": manifest_digest}
        entry["size"] = size if size is not None else -1
        entry["annotations"] = {
            ANNOTATION_CONTAINERD_NAME: str(reference),
            ANNOTATION_REF_NAME: str(reference),
        }
        return entry

    def _commit(self, work: _Import) -> None:
        """Replace the index: the new references win over old entries of the same name."""
        entries = self._layout.read_index()
        wanted = {str(reference) for reference, _ in work.entries}
        kept = [entry for entry in entries if _entry_name(entry) not in wanted]
        added = []
        for _, entry in work.entries:
            if entry["size"] < 0:
                entry["size"] = self._layout.blob_path(entry["digest"]).stat().st_size
            added.append(entry)
        self._layout.write_index(kept + added)
        # Tags that moved may leave images behind with no name: collect them.
        self._collect_garbage()

    def _undo(self, work: _Import) -> None:
        for digest in work.new_blobs:
            self._layout.remove_blob(digest)

    # -- rootfs import -------------------------------------------------------

    async def import_rootfs(
        self,
        path: str | os.PathLike[str],
        reference: str,
        *,
        cmd: Sequence[str] | None = None,
        entrypoint: Sequence[str] | None = None,
        env: Mapping[str, str] | None = None,
        working_dir: str | None = None,
        progress: Progress | None = None,
    ) -> Image:
        """A directory or a rootfs tar as a one-layer image (``docker import``).

        Cancellation: see the module doc.
        """
        target = ImageReference.parse(reference)
        config_section: dict[str, Any] = {}
        if cmd is not None:
            config_section["Cmd"] = _string_list(cmd, "cmd")
        if entrypoint is not None:
            config_section["Entrypoint"] = _string_list(entrypoint, "entrypoint")
        if env:
            config_section["Env"] = [f"{key}={value}" for key, value in _string_map(env).items()]
        if working_dir is not None:
            config_section["WorkingDir"] = str(working_dir)
        source_path = Path(os.fspath(path))
        return await anyio.to_thread.run_sync(
            self._import_rootfs_sync, source_path, target, config_section, progress
        )

    def _import_rootfs_sync(
        self,
        path: Path,
        target: ImageReference,
        config_section: dict[str, Any],
        progress: Progress | None,
    ) -> Image:
        with contextlib.ExitStack() as stack:
            if path.is_dir():
                spool = stack.enter_context(tempfile.TemporaryFile(dir=self._layout.meta))
                _tar_directory(path, spool)
                spool.seek(0)
                stream: IO[bytes] = spool
            elif path.is_file():
                stream = stack.enter_context(path.open("rb"))
            else:
                raise ImageContentError(str(path), "no such file or directory")
            base_config = {
                "architecture": host_architecture(),
                "os": "linux",
                "config": config_section,
                "rootfs": {"type": "layers", "diff_ids": []},
            }
            return self._stack_layer(
                stream,
                str(path),
                target,
                base=({"layers": []}, base_config),
                created_by="lifecycle image import",
                progress=progress,
            )

    def _stack_layer(
        self,
        stream: IO[bytes],
        source: str,
        target: ImageReference,
        *,
        base: tuple[dict[str, Any], dict[str, Any]],
        created_by: str,
        progress: Progress | None,
    ) -> Image:
        """One layer on top of ``base`` (a manifest and config; no layers for an import):
        the layer checked like any import, the config given its DiffID and a history entry."""
        base_manifest, base_config = base
        with self._layout.locked():
            work = _Import()
            try:
                digest, size, facts = self._ingest_layer(
                    stream,
                    source,
                    expected_digest=None,
                    expected_size=None,
                    work=work,
                    progress=progress,
                )
                now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
                config = json.loads(json.dumps(base_config))  # a deep copy
                config["created"] = now
                config["rootfs"]["diff_ids"] = [*config["rootfs"]["diff_ids"], facts.diff_id]
                config["history"] = [
                    *(config.get("history") or []),
                    {"created": now, "created_by": created_by},
                ]
                config_bytes = json.dumps(config).encode()
                config_digest = self._keep_new(config_bytes, work)
                layer = {
                    "mediaType": _LAYER_MEDIA[facts.compression],
                    "digest": digest,
                    "size": size,
                }
                manifest = {
                    "schemaVersion": 2,
                    "mediaType": MEDIA_OCI_MANIFEST,
                    "config": {
                        "mediaType": MEDIA_OCI_CONFIG,
                        "digest": config_digest,
                        "size": len(config_bytes),
                    },
                    "layers": [*(base_manifest.get("layers") or []), layer],
                }
                manifest_bytes = json.dumps(manifest, indent=2).encode()
                manifest_digest = self._keep_new(manifest_bytes, work)
                entry = self._index_entry(manifest_digest, target, len(manifest_bytes))
                work.entries.append((target, entry))
                self._commit(work)
            except BaseException:
                self._undo(work)
                raise
        return self.get(str(target))

    # -- a container's changes as a new image (docker commit) --------------------

    async def add_layer(
        self,
        parent: Image,
        layer: str | os.PathLike[str],
        reference: str,
        *,
        created_by: str = "lifecycle commit",
    ) -> Image:
        """A new image: ``parent``'s layers plus the layer tar at ``layer``, named ``reference``.

        The layer is checked like any import; the config is the parent's with
        the new DiffID and a ``history`` entry (docker commit). Cancellation:
        see the module doc.
        """
        target = ImageReference.parse(reference)
        path = Path(os.fspath(layer))
        return await anyio.to_thread.run_sync(
            functools.partial(self._add_layer_sync, parent, path, target, created_by)
        )

    def _add_layer_sync(
        self, parent: Image, path: Path, target: ImageReference, created_by: str
    ) -> Image:
        with path.open("rb") as stream:
            return self._stack_layer(
                stream,
                str(path),
                target,
                base=self._documents(parent.manifest_digest),
                created_by=created_by,
                progress=None,
            )

    # -- tags, removal, garbage ------------------------------------------------

    def tag(self, source: str, target: str) -> Image:
        """Give the image ``source`` names the reference ``target`` too (moving it if taken)."""
        image = self.get(source)
        new = ImageReference.parse(target)
        with self._layout.locked():
            entries = [
                entry for entry in self._layout.read_index() if _entry_name(entry) != str(new)
            ]
            size = self._layout.blob_path(image.manifest_digest).stat().st_size
            entries.append(self._index_entry(image.manifest_digest, new, size))
            self._layout.write_index(entries)
            self._collect_garbage()
        return self.get(str(new))

    async def remove(self, reference: str, *, force: bool = False) -> list[str]:
        """Untag a reference, and delete the image once no reference is left (``docker rmi``).

        By id: an image with several references needs ``force=True``
        (``ImageConflictError`` otherwise, as Docker's 409). Returns what
        happened, Docker-style: ``Untagged: ...`` and ``Deleted: ...`` lines.
        Cancellation: see the module doc.
        """
        return await anyio.to_thread.run_sync(self._remove_sync, reference, force)

    def _remove_sync(self, reference: str, force: bool) -> list[str]:
        image = self.get(reference)
        by_id = not self._names_a_reference(image, reference)
        last_name = by_id or len(image.references) == 1
        holders = self._holds.get(image.id)
        if holders and last_name and not force:
            users = ", ".join(sorted(holder[:12] for holder in holders))
            raise ImageConflictError(
                f"unable to remove {image.short_id} (must be forced): "
                f"it is in use by container(s) {users}"
            )
        if by_id and len(image.references) > 1 and not force:
            names = ", ".join(r.familiar for r in image.references)
            raise ImageConflictError(
                f"unable to delete {image.short_id} (must be forced): "
                f"the image is referenced in several repositories ({names})"
            )
        untag = set(image.references) if by_id else {ImageReference.parse(reference)}
        done = [f"Untagged: {r.familiar}" for r in sorted(untag, key=str)]
        with self._layout.locked():
            untagged = {str(r) for r in untag}
            entries = [
                entry for entry in self._layout.read_index() if _entry_name(entry) not in untagged
            ]
            self._layout.write_index(entries)
            deleted = self._collect_garbage()
        if image.id in deleted or image.manifest_digest in deleted:
            done.append(f"Deleted: {image.id}")
        return done

    @staticmethod
    def _names_a_reference(image: Image, reference: str) -> bool:
        try:
            return ImageReference.parse(reference) in image.references
        except InvalidArgumentError:
            return False

    def _collect_garbage(self) -> set[str]:
        """Delete every blob no index entry reaches (call it with the lock held)."""
        keep: set[str] = set()
        for entry in self._layout.read_index():
            digest = entry.get("digest")
            if not isinstance(digest, str):
                continue
            keep.add(digest)
            with contextlib.suppress(ImageContentError):
                manifest, _ = self._documents(digest)
                keep.add(manifest["config"]["digest"])
                keep.update(layer["digest"] for layer in manifest.get("layers") or [])
        deleted = set()
        for digest in self._layout.all_blobs():
            if digest not in keep:
                self._layout.remove_blob(digest)
                self._cache.pop(digest, None)
                deleted.add(digest)
        for stale in self._layout.stale_temporaries():
            with contextlib.suppress(FileNotFoundError):
                stale.unlink()
        return deleted

    def open_layer(self, digest: str) -> IO[bytes]:
        """A stored layer, uncompressed (blocking reads: use it in a worker thread)."""
        return decompressed(self._layout.open_blob(digest), digest)

    # -- holds: images that containers use -------------------------------------

    def hold(self, image_id: str, holder: str) -> None:
        """``holder`` (a container id) uses ``image_id``: removing it then needs force."""
        self._holds.setdefault(image_id, set()).add(holder)

    def release(self, image_id: str, holder: str) -> None:
        holders = self._holds.get(image_id)
        if holders is not None:
            holders.discard(holder)
            if not holders:
                del self._holds[image_id]

    def shared_size(self, image: Image) -> int:
        """Bytes of ``image``'s layers that other images use too (``docker system df -v``)."""
        others = {
            layer.digest
            for other in self.images()
            if other.id != image.id
            for layer in other.layers
        }
        return sum(layer.size for layer in image.layers if layer.digest in others)

    # -- the registry ------------------------------------------------------------

    async def pull(
        self,
        reference: str,
        *,
        insecure: bool = False,
        credentials: tuple[str, str] | None = None,
        progress: Progress | None = None,
    ) -> Image:
        """Pull ``reference`` from its registry (OCI distribution API v2); the image.

        ``insecure`` speaks HTTP instead of HTTPS; ``credentials`` (user,
        password) answer Basic and token challenges. Every blob is verified
        and every layer checked as an import does; on failure nothing is
        added. Layers the store has are not downloaded again. Cancellation:
        the download stops, what it wrote is removed, then the cancellation
        propagates.
        """
        wanted = ImageReference.parse(reference)
        async with RegistryClient(
            wanted.domain, insecure=insecure, credentials=credentials
        ) as client:
            tag_or_digest = wanted.digest or wanted.tag or "latest"
            data, media = await client.manifest(wanted.path, tag_or_digest)
            digest = sha256_digest(data)
            if wanted.digest is not None and digest != wanted.digest:
                raise ImageContentError(
                    wanted.digest, f"the registry sent a manifest with digest {digest}"
                )
            document = _json(data, digest)
            media = media or str(document.get("mediaType") or MEDIA_OCI_MANIFEST)
            if media in _INDEXES:
                digest, _, _ = self._choose_platform(document, digest)
                data, media = await client.manifest(wanted.path, digest)
                if sha256_digest(data) != digest:
                    raise ImageContentError(
                        digest, "the registry sent other content for this digest"
                    )
                document = _json(data, digest)
            if media not in _MANIFESTS:
                raise ImageContentError(digest, f"unsupported manifest media type {media!r}")
            config_digest, config_size, _ = _descriptor(document.get("config"), "config", digest)
            config_bytes = await self._download_small(
                client, wanted.path, config_digest, config_size
            )
            _, diff_ids = parse_config(_json(config_bytes, config_digest), config_digest)
            layers = [_descriptor(d, "layer", digest) for d in document.get("layers") or []]
            if len(layers) != len(diff_ids):
                raise ImageContentError(
                    digest, f"lists {len(layers)} layers, its config {len(diff_ids)}"
                )
            lock = await anyio.to_thread.run_sync(self._layout.acquire)
            work = _Import()
            try:
                missing = [
                    (layer_digest, layer_size)
                    for layer_digest, layer_size, _ in dict.fromkeys(layers)
                    if not self._layer_present(layer_digest)
                ]
                await self._pull_layers(client, wanted.path, missing, work, progress)
                for position, ((layer_digest, _, _), diff_id) in enumerate(
                    zip(layers, diff_ids, strict=True)
                ):
                    self._check_diff_id(layer_digest, diff_id, position)
                named = dataclasses.replace(wanted, digest=None) if wanted.tag else wanted
                await anyio.to_thread.run_sync(
                    functools.partial(
                        self._finish_pull,
                        work,
                        config_bytes=config_bytes,
                        config_digest=config_digest,
                        manifest_bytes=data,
                        manifest_digest=digest,
                        reference=named,
                    )
                )
            except BaseException:
                with anyio.CancelScope(shield=True):
                    await anyio.to_thread.run_sync(self._undo, work)
                raise
            finally:
                self._layout.release(lock)
        return self.get(str(named))

    def _finish_pull(
        self,
        work: _Import,
        *,
        config_bytes: bytes,
        config_digest: str,
        manifest_bytes: bytes,
        manifest_digest: str,
        reference: ImageReference,
    ) -> None:
        self._keep(config_bytes, config_digest, work)
        self._keep(manifest_bytes, manifest_digest, work)
        # Pulled by digest (no tag): kept under name@digest, Docker's RepoDigests.
        work.entries.append(
            (reference, self._index_entry(manifest_digest, reference, len(manifest_bytes)))
        )
        self._commit(work)

    async def _download_small(
        self, client: RegistryClient, repository: str, digest: str, size: int
    ) -> bytes:
        if size > MAX_DOCUMENT_BYTES:
            raise ImageContentError(digest, f"larger than {MAX_DOCUMENT_BYTES} bytes")
        chunks = []
        async with client.blob(repository, digest) as response:
            async for chunk in response.aiter_bytes():
                chunks.append(chunk)
                if sum(map(len, chunks)) > MAX_DOCUMENT_BYTES:
                    raise ImageContentError(digest, f"larger than {MAX_DOCUMENT_BYTES} bytes")
        data = b"".join(chunks)
        if sha256_digest(data) != digest or len(data) != size:
            raise ImageContentError(digest, "the registry sent other content for this digest")
        return data

    async def _pull_layers(
        self,
        client: RegistryClient,
        repository: str,
        layers: list[tuple[str, int]],
        work: _Import,
        progress: Progress | None,
    ) -> None:
        """One layer after the other. Measured (benchmarks/images.py, 2 cores): three at once
        took as long as one after the other -- the checks hold the GIL long enough that
        overlapping them gains nothing -- so the simpler order stays."""
        for digest, size in layers:
            await self._pull_layer(
                client, repository, digest=digest, size=size, work=work, progress=progress
            )

    async def _pull_layer(
        self,
        client: RegistryClient,
        repository: str,
        *,
        digest: str,
        size: int,
        work: _Import,
        progress: Progress | None,
    ) -> None:
        """Stream a layer from the registry into the store: the download runs on the event
        loop, the checks (hash, decompress, walk the tar) in a worker thread that reads it."""
        send, receive = anyio.create_memory_object_stream[bytes](4)
        failure: list[BaseException] = []

        async def download(send: MemoryObjectSendStream[bytes]) -> None:
            async with send:
                try:
                    async with client.blob(repository, digest) as response:
                        async for chunk in response.aiter_bytes(1 << 20):
                            await send.send(chunk)
                except Exception as error:  # handed to the reader's side, which raises it
                    failure.append(error)

        reader = _ChannelReader(receive)
        async with anyio.create_task_group() as group:
            group.start_soon(download, send)
            try:
                await anyio.to_thread.run_sync(
                    lambda: self._ingest_layer(
                        reader,  # type: ignore[arg-type]
                        f"{client.domain}/{repository}@{digest}",
                        expected_digest=digest,
                        expected_size=size,
                        work=work,
                        progress=progress,
                    )
                )
            except ImageContentError:
                if failure:
                    raise failure[0] from None
                raise
            finally:
                receive.close()
                group.cancel_scope.cancel()
        if failure:
            raise failure[0]

    async def push(
        self,
        source: str,
        target: str | None = None,
        *,
        insecure: bool = False,
        credentials: tuple[str, str] | None = None,
        progress: Progress | None = None,
    ) -> str:
        """Push the image ``source`` names to ``target`` (default: ``source``); its digest.

        Blobs the registry has are skipped (``HEAD``); blobs another
        repository of the same registry has are mounted from it; the rest
        are uploaded. Cancellation: stops between requests; the registry
        keeps what it had received (blobs are content-addressed).
        """
        image = self.get(source)
        destination = ImageReference.parse(target or source)
        manifest_bytes = await anyio.to_thread.run_sync(
            self._layout.read_document, image.manifest_digest
        )
        manifest = _json(manifest_bytes, image.manifest_digest)
        media = str(manifest.get("mediaType") or MEDIA_OCI_MANIFEST)
        blobs = [_descriptor(manifest.get("config"), "config", image.manifest_digest)]
        blobs += [
            _descriptor(d, "layer", image.manifest_digest) for d in manifest.get("layers") or []
        ]
        images = self.images()
        async with RegistryClient(
            destination.domain, insecure=insecure, credentials=credentials
        ) as client:
            for digest, size, _ in blobs:
                if await client.has_blob(destination.path, digest):
                    continue
                mounted = False
                for repository in _repositories_with(images, digest, destination):
                    if await client.mount(destination.path, digest, repository):
                        mounted = True
                        break
                if not mounted:
                    await client.upload(
                        destination.path, digest, size, self._chunks(digest, progress)
                    )
            await client.put_manifest(
                destination.path, destination.tag or image.manifest_digest, manifest_bytes, media
            )
        return image.manifest_digest

    async def _chunks(self, digest: str, progress: Progress | None) -> AsyncIterator[bytes]:
        path = self._layout.blob_path(digest)
        total = (await anyio.Path(path).stat()).st_size
        done = 0
        async with await anyio.open_file(path, "rb") as file:
            while chunk := await file.read(1 << 20):
                done += len(chunk)
                if progress is not None:
                    progress(digest, done, total)
                yield chunk

    # -- saving ----------------------------------------------------------------

    async def save(
        self,
        references: Iterable[str],
        path: str | os.PathLike[str],
        *,
        progress: Progress | None = None,
    ) -> Path:
        """Write images to one tar that is both an OCI archive and a docker-archive.

        Like ``docker save`` since Docker 25: an OCI layout (``oci-layout``,
        ``index.json``, ``blobs/``) plus Docker's ``manifest.json``, so
        ``docker load``, ``skopeo ... oci-archive:`` and ``docker-archive:``
        all read it. Written to a temporary file and renamed.
        """
        chosen = [(self.get(reference), reference) for reference in references]
        if not chosen:
            raise InvalidArgumentError("save needs at least one image")
        target = Path(os.fspath(path))
        return await anyio.to_thread.run_sync(self._save_sync, chosen, target, progress)

    def _save_sync(
        self, chosen: list[tuple[Image, str]], target: Path, progress: Progress | None
    ) -> Path:
        index_entries = []
        docker_manifest = []
        blobs: dict[str, None] = {}
        for image, asked in chosen:
            named = self._names_a_reference(image, asked)
            references = (ImageReference.parse(asked),) if named else image.references
            size = self._layout.blob_path(image.manifest_digest).stat().st_size
            for reference in references:
                index_entries.append(self._index_entry(image.manifest_digest, reference, size))
            manifest, _ = self._documents(image.manifest_digest)
            blobs[image.manifest_digest] = None
            blobs[image.id] = None
            for layer in image.layers:
                blobs[layer.digest] = None
            docker_manifest.append(
                {
                    "Config": _blob_name(image.id),
                    "RepoTags": [reference.familiar for reference in references if reference.tag],
                    "Layers": [
                        _blob_name(layer["digest"]) for layer in manifest.get("layers") or []
                    ],
                }
            )
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(
            dir=target.parent, prefix=f".{target.name}.", suffix=".tmp"
        )
        try:
            with (
                os.fdopen(fd, "wb") as file,
                tarfile.open(fileobj=file, mode="w", format=tarfile.PAX_FORMAT) as archive,
            ):
                _add_bytes(
                    archive, "oci-layout", json.dumps({"imageLayoutVersion": "1.0.0"}).encode()
                )
                _add_bytes(
                    archive,
                    "index.json",
                    json.dumps(
                        {
                            "schemaVersion": 2,
                            "mediaType": MEDIA_OCI_INDEX,
                            "manifests": index_entries,
                        },
                        indent=2,
                    ).encode(),
                )
                _add_bytes(archive, "manifest.json", json.dumps(docker_manifest).encode())
                for digest in blobs:
                    blob_path = self._layout.blob_path(digest)
                    info = archive.gettarinfo(str(blob_path), arcname=_blob_name(digest))
                    info.uid = info.gid = 0
                    info.uname = info.gname = ""
                    with blob_path.open("rb") as blob:
                        archive.addfile(info, _Reporting(blob, digest, info.size, progress))
            os.replace(temporary, target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
            raise
        return target


def _repositories_with(images: list[Image], digest: str, destination: ImageReference) -> list[str]:
    """Other repositories of the destination's registry that ``images`` came from and that
    use ``digest`` (candidates for a cross-repository mount)."""
    found: list[str] = []
    for image in images:
        if digest != image.id and digest not in {layer.digest for layer in image.layers}:
            continue
        for reference in image.references:
            if reference.domain == destination.domain and reference.path != destination.path:
                found.append(reference.path)
    return list(dict.fromkeys(found))


def _annotated_name(entry: object) -> str | None:
    """The name an index entry gives its manifest: containerd's full one, else the OCI one."""
    annotations = (entry.get("annotations") or {}) if isinstance(entry, dict) else {}
    if not isinstance(annotations, dict):
        return None
    name = annotations.get(ANNOTATION_CONTAINERD_NAME) or annotations.get(ANNOTATION_REF_NAME)
    return name if isinstance(name, str) else None


def _entry_name(entry: dict[str, Any]) -> str | None:
    """An index entry's name, normalised, to compare with a reference's ``str()``."""
    name = _annotated_name(entry)
    if name is None:
        return None
    try:
        return str(ImageReference.parse(name))
    except InvalidArgumentError:
        return name


def _add_bytes(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    archive.addfile(info, io.BytesIO(data))


def _tar_directory(root: Path, spool: IO[bytes]) -> None:
    """``root`` as an uncompressed tar (names relative to it; links kept as links)."""
    with tarfile.open(fileobj=spool, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for current, directories, files in os.walk(root):
            directories.sort()
            relative = Path(current).relative_to(root)
            for name in sorted([*directories, *files]):
                full = Path(current) / name
                archive.add(full, arcname=str(relative / name), recursive=False)


def _string_list(value: Sequence[str], what: str) -> list[str]:
    if isinstance(value, str) or not all(isinstance(item, str) for item in value):
        raise InvalidArgumentError(f"{what} must be a list of strings, not {value!r}")
    return list(value)


def _string_map(value: Mapping[str, str]) -> dict[str, str]:
    if not all(
        isinstance(k, str) and isinstance(v, str) and k and "=" not in k for k, v in value.items()
    ):
        raise InvalidArgumentError(f"env must map names (no '=') to strings, not {value!r}")
    return dict(value)


@final
class _ChannelReader:
    """A blocking reader, for a worker thread, of chunks an event-loop task sends."""

    def __init__(self, receive: MemoryObjectReceiveStream[bytes]) -> None:
        self._receive = receive
        self._pending = b""
        self._offset = 0  # into _pending: slicing off the front each read would be O(n^2)
        self._ended = False

    def read(self, size: int = -1) -> bytes:
        while self._offset >= len(self._pending) and not self._ended:
            try:
                self._pending = anyio.from_thread.run(self._receive.receive)
            except (anyio.EndOfStream, anyio.ClosedResourceError):
                self._ended = True
                self._pending = b""
            self._offset = 0
        start = self._offset
        end = len(self._pending) if size < 0 else min(len(self._pending), start + size)
        self._offset = end
        if start == 0 and end == len(self._pending):
            return self._pending
        return self._pending[start:end]


@final
class _Reporting:
    """Passes reads through, telling ``progress`` how far it got (at most every 1 MiB)."""

    def __init__(
        self, source: IO[bytes], what: str, total: int | None, progress: Progress | None
    ) -> None:
        self._source = source
        self._what = what
        self._total = total
        self._progress = progress
        self._done = 0
        self._reported = 0

    def read(self, size: int = -1) -> bytes:
        data = self._source.read(size)
        self._done += len(data)
        if self._progress is not None and (not data or self._done - self._reported >= 1 << 20):
            self._reported = self._done
            self._progress(self._what, self._done, self._total)
        return data
