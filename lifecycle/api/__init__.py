"""The Docker Engine API on a unix socket (``lifecycle serve``): a compatible subset.

Above the engine, below the CLI; it uses the engine's public API only.
``DockerApi`` answers requests (routes, version negotiation, Docker's
statuses), ``serve`` runs it on a socket until SIGTERM/SIGINT. See the
README for what is and is not supported.
"""

from __future__ import annotations

from lifecycle.api._formats import human_duration
from lifecycle.api._server import ServerError, default_socket_path, prepare_socket, serve
from lifecycle.api._service import API_VERSION, MIN_API_VERSION, DockerApi

__all__ = [
    "API_VERSION",
    "MIN_API_VERSION",
    "DockerApi",
    "ServerError",
    "default_socket_path",
    "human_duration",
    "prepare_socket",
    "serve",
]
