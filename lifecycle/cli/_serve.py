"""``lifecycle serve``: the Docker Engine API on a unix socket (see ``lifecycle.api``)."""

from __future__ import annotations

import argparse
import os
import shutil
from pathlib import Path
from typing import Any

import anyio

from lifecycle.api import ServerError, default_socket_path, serve
from lifecycle.cli._images import default_root

__all__ = ["ServerError", "add_serve_command", "run_serve"]


def default_runtime() -> str:
    """runc where it can run (root and the binary), the native driver otherwise."""
    if os.geteuid() == 0 and shutil.which("runc") is not None:
        return "runc"
    return "native"


def add_serve_command(commands: Any) -> argparse.ArgumentParser:  # _SubParsersAction is private
    serve_parser: argparse.ArgumentParser = commands.add_parser(
        "serve",
        help="serve the Docker Engine API on a unix socket (docker CLI, Docker SDK)",
        description="Run one engine behind a Docker-compatible HTTP API on a unix socket, "
        "until SIGTERM or SIGINT; then stop every container with its stop timeout and exit 0. "
        "Point clients at it with DOCKER_HOST=unix://PATH.",
    )
    serve_parser.add_argument(
        "--socket",
        type=Path,
        help="the socket (default: /run/lifecycle.sock as root, "
        "else $XDG_RUNTIME_DIR/lifecycle.sock)",
    )
    serve_parser.add_argument(
        "--root", type=Path, help="the image store (default: $LIFECYCLE_ROOT or per user)"
    )
    serve_parser.add_argument(
        "--runtime",
        help="the default driver of containers "
        "(default: runc as root where it is installed, else native)",
    )
    serve_parser.add_argument(
        "--live-restore",
        action="store_true",
        help="leave OCI runtime containers running when the server stops; the next "
        "server on the same root adopts them (dockerd's --live-restore)",
    )
    serve_parser.add_argument(
        "--insecure-registry",
        action="append",
        default=[],
        metavar="HOST[:PORT]",
        help="a registry to pull from over plain HTTP (repeatable; loopback always is)",
    )
    return serve_parser


def run_serve(arguments: argparse.Namespace) -> None:
    """Serve until a shutdown signal. ``ServerError`` if the socket or store cannot be used."""
    socket_path = arguments.socket or default_socket_path()
    anyio.run(
        _serve,
        socket_path,
        arguments.root or default_root(),
        arguments.runtime or default_runtime(),
        tuple(arguments.insecure_registry),
        arguments.live_restore,
        backend=arguments.backend,
    )


async def _serve(
    socket_path: Path, root: Path, runtime: str, insecure: tuple[str, ...], live_restore: bool
) -> None:
    await serve(
        socket_path=socket_path,
        root=root,
        runtime=runtime,
        insecure_registries=insecure,
        live_restore=live_restore,
    )
