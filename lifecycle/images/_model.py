"""What an image is: its id, references, layers and run configuration (pure records).

The id is the digest of the config blob, as in Docker's classic store
(``docker images`` IMAGE ID). Chain IDs follow the OCI image spec
(``config.md``, "Layer ChainID"): ``ChainID(L0) = DiffID(L0)``,
``ChainID(L0|...|Ln) = sha256(ChainID(L0|...|Ln-1) + " " + DiffID(Ln))``.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, final

from lifecycle._errors import ImageContentError
from lifecycle.images._reference import ImageReference

__all__ = ["Image", "ImageConfig", "Layer", "chain_ids", "parse_config", "parse_created"]

_EMPTY: Mapping[str, str] = MappingProxyType({})


def chain_ids(diff_ids: Sequence[str]) -> list[str]:
    """The ChainID of each layer, base first (OCI image spec)."""
    chains: list[str] = []
    for diff_id in diff_ids:
        if not chains:
            chains.append(diff_id)
        else:
            joined = f"{chains[-1]} {diff_id}".encode()
            chains.append(f"sha256:{hashlib.sha256(joined).hexdigest()}")
    return chains


@final
@dataclasses.dataclass(frozen=True, slots=True)
class Layer:
    """One layer: its blob's digest, its uncompressed digest and chain id, its size."""

    digest: str  # of the blob as stored (compressed or not)
    diff_id: str  # of the uncompressed tar
    chain_id: str
    size: int  # uncompressed bytes
    media_type: str = "application/vnd.oci.image.layer.v1.tar+gzip"


@final
@dataclasses.dataclass(frozen=True, slots=True)
class ImageConfig:
    """How a container from this image runs (OCI config ``config``; Docker's ContainerConfig)."""

    entrypoint: tuple[str, ...] | None = None
    cmd: tuple[str, ...] | None = None
    env: Mapping[str, str] = dataclasses.field(default_factory=lambda: _EMPTY)
    working_dir: str | None = None
    user: str | None = None
    stop_signal: str | None = None
    labels: Mapping[str, str] = dataclasses.field(default_factory=lambda: _EMPTY)
    healthcheck: Mapping[str, Any] | None = None

    def command(self) -> tuple[str, ...]:
        """Entrypoint + Cmd, as Docker joins them for a container with no command of its own."""
        return (self.entrypoint or ()) + (self.cmd or ())


@final
@dataclasses.dataclass(frozen=True, slots=True)
class Image:
    """An image in the store. ``id`` is ``sha256:`` + the config blob's digest."""

    id: str
    manifest_digest: str
    references: tuple[ImageReference, ...]
    created: datetime | None
    layers: tuple[Layer, ...]
    config: ImageConfig
    architecture: str | None = None
    os: str | None = None

    @property
    def short_id(self) -> str:
        """12 hex characters, as ``docker images`` shows the id."""
        return self.id.removeprefix("sha256:")[:12]

    @property
    def size(self) -> int:
        """Bytes of its layers, uncompressed (Docker's SIZE)."""
        return sum(layer.size for layer in self.layers)

    def __repr__(self) -> str:
        names = ", ".join(reference.familiar for reference in self.references) or "<none>"
        return f"<Image {self.short_id} {names}>"


def _strings(value: object, what: str, blob: str) -> tuple[str, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ImageContentError(blob, f"config {what} must be a list of strings")
    return tuple(value)


def parse_created(value: object) -> datetime | None:
    """An RFC 3339 time (Go writes nanoseconds; Python takes microseconds), made aware."""
    if not isinstance(value, str) or not value:
        return None
    text = value.replace("Z", "+00:00")
    date, dot, rest = text.partition(".")
    if dot:
        digits = "".join(ch for ch in rest if ch.isdigit())
        zone = rest[len(digits) :]
        text = f"{date}.{digits[:6].ljust(6, '0')}{zone}"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def parse_config(document: Mapping[str, Any], blob: str) -> tuple[ImageConfig, list[str]]:
    """The run configuration and the DiffIDs of an image config (OCI or Docker JSON)."""
    rootfs = document.get("rootfs")
    if not isinstance(rootfs, dict) or rootfs.get("type") != "layers":
        raise ImageContentError(blob, "config has no rootfs of type layers")
    diff_ids = rootfs.get("diff_ids")
    if not isinstance(diff_ids, list) or not all(isinstance(d, str) for d in diff_ids):
        raise ImageContentError(blob, "config rootfs.diff_ids must be a list of digests")
    section = document.get("config") or {}
    if not isinstance(section, dict):
        raise ImageContentError(blob, "config.config must be an object")
    env: dict[str, str] = {}
    for item in _strings(section.get("Env"), "Env", blob) or ():
        key, _, value = item.partition("=")
        env[key] = value
    labels = section.get("Labels") or {}
    if not isinstance(labels, dict):
        raise ImageContentError(blob, "config Labels must be an object")
    healthcheck = section.get("Healthcheck")
    config = ImageConfig(
        entrypoint=_strings(section.get("Entrypoint"), "Entrypoint", blob),
        cmd=_strings(section.get("Cmd"), "Cmd", blob),
        env=MappingProxyType(env),
        working_dir=section.get("WorkingDir") or None,
        user=section.get("User") or None,
        stop_signal=section.get("StopSignal") or None,
        labels=MappingProxyType({str(k): str(v) for k, v in labels.items()}),
        healthcheck=MappingProxyType(healthcheck) if isinstance(healthcheck, dict) else None,
    )
    return config, list(diff_ids)
