"""``lifecycle images``, ``image import|load|save|tag|rm|inspect``, ``pull``, ``push``.

Output follows the docker CLI: ``images`` prints REPOSITORY TAG IMAGE ID
CREATED SIZE with go-units' human sizes (decimal, three significant digits)
and durations ("2 minutes ago"); ``rm`` prints ``Untagged:``/``Deleted:``
lines; ``inspect`` prints a JSON array. Errors print one line and exit 1.
Progress (bytes per layer) goes to stderr when it is a terminal.

The store root: ``--root``, else ``$LIFECYCLE_ROOT``, else
``/var/lib/lifecycle`` for root and ``$XDG_DATA_HOME/lifecycle`` (default
``~/.local/share/lifecycle``) for anyone else -- Podman's convention.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import anyio

from lifecycle.images import Image, ImageStore
from lifecycle.runtime import BUILTIN_DRIVERS

__all__ = ["IMAGE_COMMANDS", "add_image_commands", "default_root", "run_image_command"]

IMAGE_COMMANDS: Final = frozenset({"images", "image", "pull", "push", "info"})


def default_root() -> Path:
    """Where the store lives unless told otherwise (see the module doc)."""
    configured = os.environ.get("LIFECYCLE_ROOT")
    if configured:
        return Path(configured)
    if os.geteuid() == 0:
        return Path("/var/lib/lifecycle")
    data_home = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data_home) / "lifecycle"


def human_size(size: float) -> str:
    """go-units ``HumanSizeWithPrecision(size, 3)``: decimal units, as ``docker images``."""
    units = ("B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB")
    index = 0
    while size >= 1000 and index < len(units) - 1:
        size /= 1000
        index += 1
    return f"{size:.3g}{units[index]}"


# go-units HumanDuration: (below this many seconds, the wording, the unit it counts in).
_DURATIONS: Final[tuple[tuple[float, str, float | None], ...]] = (
    (1, "Less than a second", None),
    (2, "1 second", None),
    (60, "{} seconds", 1),
    (120, "About a minute", None),
    (3600, "{} minutes", 60),
    (7200, "About an hour", None),
    (48 * 3600, "{} hours", 3600),
    (14 * 86400, "{} days", 86400),
    (60 * 86400, "{} weeks", 7 * 86400),
    (730 * 86400, "{} months", 30 * 86400),
)


def human_duration(seconds: float) -> str:
    """go-units ``HumanDuration``, the CREATED column (without " ago")."""
    for below, wording, unit in _DURATIONS:
        if seconds < below:
            return wording if unit is None else wording.format(int(seconds / unit))
    return f"{int(seconds / (365 * 86400))} years"


def _env_pairs(items: Sequence[str]) -> dict[str, str]:
    env: dict[str, str] = {}
    for item in items:
        key, separator, value = item.partition("=")
        if not key or not separator:
            raise argparse.ArgumentTypeError(f"--env takes K=V, not {item!r}")
        env[key] = value
    return env


def _words(text: str | None) -> list[str] | None:
    """A JSON array (exec form, as Dockerfile's CMD) or shell words."""
    if text is None:
        return None
    if text.lstrip().startswith("["):
        value = json.loads(text)
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise argparse.ArgumentTypeError(f"expected a JSON array of strings, not {text!r}")
        return value
    return shlex.split(text)


def add_image_commands(commands: Any) -> None:  # argparse's _SubParsersAction is private
    """Add ``images`` and ``image ...`` to the command line's subcommands."""
    images = commands.add_parser("images", help="list the images in the store (like docker images)")
    _add_root(images)
    images.add_argument("--no-trunc", action="store_true", help="show full image ids")
    images.add_argument(
        "-s",
        "--shared-size",
        action="store_true",
        help="add SHARED SIZE: bytes of layers other images use too (docker system df -v)",
    )

    image = commands.add_parser("image", help="manage images: import, load, save, tag, rm, inspect")
    actions = image.add_subparsers(dest="image_command", required=True, metavar="COMMAND")

    imported = actions.add_parser(
        "import", help="a directory or rootfs tar as a one-layer image (like docker import)"
    )
    _add_root(imported)
    imported.add_argument("path", type=Path, help="a directory or a (compressed) tar of a rootfs")
    imported.add_argument("reference", help="name[:tag] for the image")
    imported.add_argument("--cmd", help='its command: a JSON array (["sh"]) or shell words')
    imported.add_argument("--entrypoint", help="its entrypoint, the same way")
    imported.add_argument("--env", "-e", action="append", default=[], metavar="K=V")
    imported.add_argument("--workdir", help="its working directory")

    load = actions.add_parser(
        "load", help="images from a docker save / OCI archive tar, or an OCI layout directory"
    )
    _add_root(load)
    load.add_argument("-i", "--input", required=True, type=Path, metavar="PATH")
    load.add_argument("--repository", help="the name for manifests tagged with a tag only")

    save = actions.add_parser("save", help="images to one tar (OCI archive and docker-archive)")
    _add_root(save)
    save.add_argument("-o", "--output", required=True, type=Path, metavar="FILE")
    save.add_argument("references", nargs="+", metavar="IMAGE")

    tag = actions.add_parser("tag", help="give an image another name")
    _add_root(tag)
    tag.add_argument("source", metavar="SOURCE")
    tag.add_argument("target", metavar="TARGET")

    remove = actions.add_parser("rm", help="untag images, deleting those left with no name")
    _add_root(remove)
    remove.add_argument(
        "-f", "--force", action="store_true", help="remove an id with several names"
    )
    remove.add_argument("references", nargs="+", metavar="IMAGE")

    inspect = actions.add_parser("inspect", help="an image's details as JSON")
    _add_root(inspect)
    inspect.add_argument("references", nargs="+", metavar="IMAGE")

    info = commands.add_parser(
        "info", help="the store, the snapshotter and the drivers this machine gets (docker info)"
    )
    _add_root(info)

    pull = commands.add_parser("pull", help="pull an image from a registry (like docker pull)")
    _add_root(pull)
    _add_registry_options(pull)
    pull.add_argument("reference", metavar="NAME[:TAG|@DIGEST]")

    push = commands.add_parser("push", help="push an image to a registry (like docker push)")
    _add_root(push)
    _add_registry_options(push)
    push.add_argument("source", metavar="IMAGE")
    push.add_argument("target", nargs="?", metavar="TARGET", help="where to (default: IMAGE)")


def _add_registry_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--insecure", action="store_true", help="speak HTTP, not HTTPS, to the registry"
    )
    parser.add_argument(
        "--creds",
        metavar="USER:PASSWORD",
        help="registry credentials (as skopeo's --creds); default: $LIFECYCLE_REGISTRY_CREDS",
    )


def _credentials(arguments: argparse.Namespace) -> tuple[str, str] | None:
    text = arguments.creds or os.environ.get("LIFECYCLE_REGISTRY_CREDS")
    if not text:
        return None
    user, separator, password = text.partition(":")
    if not user or not separator:
        raise argparse.ArgumentTypeError("--creds takes USER:PASSWORD")
    return user, password


def _add_root(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--root", type=Path, help="the image store (default: $LIFECYCLE_ROOT or per user)"
    )


def _progress(what: str, done: int, total: int | None) -> None:
    shown = what if len(what) <= 40 else "..." + what[-37:]
    of = f"/{human_size(total)}" if total else ""
    print(f"\r{shown}: {human_size(done)}{of}   ", end="", file=sys.stderr, flush=True)


def _inspect(image: Image) -> dict[str, Any]:
    config = image.config
    return {
        "Id": image.id,
        "RepoTags": [reference.familiar for reference in image.references if reference.tag],
        "RepoDigests": [],
        "Created": None if image.created is None else image.created.isoformat(),
        "Size": image.size,
        "Architecture": image.architecture,
        "Os": image.os,
        "Config": {
            "Entrypoint": None if config.entrypoint is None else list(config.entrypoint),
            "Cmd": None if config.cmd is None else list(config.cmd),
            "Env": [f"{key}={value}" for key, value in config.env.items()],
            "WorkingDir": config.working_dir or "",
            "User": config.user or "",
            "StopSignal": config.stop_signal,
            "Labels": dict(config.labels),
            "Healthcheck": None if config.healthcheck is None else dict(config.healthcheck),
        },
        "RootFS": {"Type": "layers", "Layers": [layer.diff_id for layer in image.layers]},
        "Layers": [
            {
                "Digest": layer.digest,
                "DiffID": layer.diff_id,
                "ChainID": layer.chain_id,
                "Size": layer.size,
            }
            for layer in image.layers
        ],
        "ManifestDigest": image.manifest_digest,
    }


def _list(store: ImageStore, no_trunc: bool, shared: bool) -> None:
    now = datetime.now(UTC)
    header = ("REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE")
    rows = [(*header, "SHARED SIZE") if shared else header]
    for image in store.images():
        shown_id = image.id if no_trunc else image.short_id
        age = None if image.created is None else (now - image.created).total_seconds()
        created = "N/A" if age is None else human_duration(age) + " ago"
        extra = (human_size(store.shared_size(image)),) if shared else ()
        for reference in image.references:
            tag = reference.tag or "<none>"
            size = human_size(image.size)
            rows.append((reference.repository, tag, shown_id, created, size, *extra))
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]) - 1)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        print("   ".join([*cells, row[-1]]))


async def _import(store: ImageStore, arguments: argparse.Namespace, progress: Any) -> None:
    image = await store.import_rootfs(
        arguments.path,
        arguments.reference,
        cmd=_words(arguments.cmd),
        entrypoint=_words(arguments.entrypoint),
        env=_env_pairs(arguments.env),
        working_dir=arguments.workdir,
        progress=progress,
    )
    print(image.id)


async def _load(store: ImageStore, arguments: argparse.Namespace, progress: Any) -> None:
    path: Path = arguments.input
    if await anyio.Path(path).is_dir():
        images = await store.import_oci_layout(
            path, repository=arguments.repository, progress=progress
        )
    else:
        images = await store.import_archive(
            path, repository=arguments.repository, progress=progress
        )
    for image in images:
        for reference in image.references:
            print(f"Loaded image: {reference.familiar}")


async def _save(store: ImageStore, arguments: argparse.Namespace, progress: Any) -> None:
    await store.save(arguments.references, arguments.output, progress=progress)


async def _tag(store: ImageStore, arguments: argparse.Namespace, progress: Any) -> None:
    store.tag(arguments.source, arguments.target)


async def _remove(store: ImageStore, arguments: argparse.Namespace, progress: Any) -> None:
    for reference in arguments.references:
        for line in await store.remove(reference, force=arguments.force):
            print(line)


async def _inspect_all(store: ImageStore, arguments: argparse.Namespace, progress: Any) -> None:
    documents = [_inspect(store.get(reference)) for reference in arguments.references]
    print(json.dumps(documents, indent=4))


async def _images(store: ImageStore, arguments: argparse.Namespace, progress: Any) -> None:
    _list(store, arguments.no_trunc, arguments.shared_size)


async def _info(store: ImageStore, arguments: argparse.Namespace, progress: Any) -> None:
    from lifecycle.engine import Engine  # noqa: PLC0415 -- only `info` needs an engine

    images = store.images()
    engine = Engine(store=store)
    statistics = engine.statistics()
    print(f"Root: {store.root}")
    print(f"Images: {len(images)} ({human_size(sum(image.size for image in images))})")
    print(f"Snapshotter: {statistics.snapshotter}")
    print(f"Runtimes: {', '.join(BUILTIN_DRIVERS)} (default: native)")
    print(f"Running as root: {'yes' if os.geteuid() == 0 else 'no (no image containers)'}")


async def _pull(store: ImageStore, arguments: argparse.Namespace, progress: Any) -> None:
    image = await store.pull(
        arguments.reference,
        insecure=arguments.insecure,
        credentials=_credentials(arguments),
        progress=progress,
    )
    print(f"Digest: {image.manifest_digest}")
    print(f"Status: Downloaded {', '.join(r.familiar for r in image.references)}")


async def _push(store: ImageStore, arguments: argparse.Namespace, progress: Any) -> None:
    digest = await store.push(
        arguments.source,
        arguments.target,
        insecure=arguments.insecure,
        credentials=_credentials(arguments),
        progress=progress,
    )
    print(f"{arguments.target or arguments.source}: digest: {digest}")


_HANDLERS: Final = {
    "images": _images,
    "import": _import,
    "load": _load,
    "save": _save,
    "tag": _tag,
    "rm": _remove,
    "inspect": _inspect_all,
    "info": _info,
    "pull": _pull,
    "push": _push,
}


async def _run(arguments: argparse.Namespace) -> None:
    store = ImageStore(arguments.root or default_root())
    progress = _progress if sys.stderr.isatty() else None
    command = arguments.subcommand
    if command == "image":
        command = arguments.image_command
    await _HANDLERS[command](store, arguments, progress)
    if progress is not None and command in {"import", "load", "save", "pull", "push"}:
        print(file=sys.stderr)


def run_image_command(arguments: argparse.Namespace) -> None:
    """Run ``images`` / ``image ...``; errors propagate (LifecycleError, OSError, ValueError)."""
    anyio.run(_run, arguments, backend=arguments.backend)
