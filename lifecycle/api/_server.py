"""``lifecycle serve``: one engine behind the Docker API on a unix socket.

The socket is owner-only before anyone can connect: it is bound with a
umask that leaves only the owner's bits, chmod'ed to 0600, and only then
listened on (a connect to a bound socket that does not listen is refused),
the order of moby's ``pkg/sockets.NewUnixSocket``. A path that is a live
socket of another server is refused; a stale one (nobody listening) is
replaced, as dockerd does.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import socket
import stat
from collections.abc import Iterable
from pathlib import Path
from typing import Final

import anyio
import anyio.abc

from lifecycle._errors import InvalidArgumentError
from lifecycle._logging import get_logger
from lifecycle.api._http import serve_connection
from lifecycle.api._service import API_VERSION, SERVER, DockerApi
from lifecycle.api._state import ApiState
from lifecycle.engine import Engine
from lifecycle.images import ImageStore

__all__ = ["ServerError", "default_socket_path", "prepare_socket", "serve"]

_SHUTDOWN_SIGNALS: Final = (signal.SIGTERM, signal.SIGINT)


class ServerError(Exception):
    """The server cannot start as asked (the message says why)."""


def default_socket_path() -> Path:
    """``/run/lifecycle.sock`` as root, ``$XDG_RUNTIME_DIR/lifecycle.sock`` otherwise."""
    if os.geteuid() == 0:
        return Path("/run/lifecycle.sock")
    runtime_dir = os.environ.get("XDG_RUNTIME_DIR")
    if not runtime_dir:
        raise ServerError("XDG_RUNTIME_DIR is not set: give the socket's path (--socket PATH)")
    return Path(runtime_dir) / "lifecycle.sock"


def _check_existing(path: Path) -> None:
    try:
        status = path.lstat()
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(status.st_mode):
        raise ServerError(f"{path} exists and is not a socket: not replacing it")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(str(path))
    except OSError as error:
        if error.errno not in (errno.ECONNREFUSED, errno.ENOENT):
            raise ServerError(f"cannot tell whether {path} is in use: {error.strerror}") from None
    else:
        raise ServerError(f"{path} is the socket of a running server: not taking it over")
    finally:
        probe.close()
    path.unlink(missing_ok=True)  # stale: its server is gone


def prepare_socket(path: Path) -> socket.socket:
    """A listening unix socket at ``path``, mode 0600 from the moment it can be connected to."""
    if not path.parent.is_dir():
        raise ServerError(f"cannot create {path}: {path.parent} is not a directory")
    _check_existing(path)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        previous = os.umask(0o177)
        try:
            listener.bind(str(path))
        finally:
            os.umask(previous)
        os.chmod(path, 0o600)
        listener.listen(128)
    except OSError as error:
        listener.close()
        raise ServerError(f"cannot listen on {path}: {error.strerror}") from None
    listener.setblocking(False)
    return listener


async def serve(
    *,
    socket_path: Path,
    root: Path,
    runtime: str,
    insecure_registries: Iterable[str] = (),
    ready: anyio.Event | None = None,
    live_restore: bool = False,
) -> None:
    """Serve the API on ``socket_path`` until SIGTERM or SIGINT; then stop every container.

    The engine's shutdown stops each container with its own stop signal and
    timeout, as ``dockerd`` does on SIGTERM; with ``live_restore`` (dockerd's
    ``--live-restore``) an OCI runtime's containers are left running for the next
    server on ``root`` to adopt. The socket file is removed on the way out.
    Cancellation: the same shutdown, then the cancellation propagates.
    """
    try:
        store = ImageStore(root)
    except InvalidArgumentError as error:
        raise ServerError(f"cannot use {root} as the image store: {error}") from None
    raw = prepare_socket(socket_path)
    log = get_logger()
    try:
        listener = await anyio.abc.SocketListener.from_socket(raw)
        with anyio.open_signal_receiver(*_SHUTDOWN_SIGNALS) as signals:
            # The engine outlives the connections: leaving it stops every container.
            # root: the journal too -- containers come back when the server does (dockerd).
            async with Engine(  # noqa: SIM117
                store=store, root=root, runtime=runtime, live_restore=live_restore
            ) as engine:
                async with anyio.create_task_group() as connections:
                    state = ApiState(
                        engine=engine,
                        store=store,
                        task_group=connections,
                        default_runtime=runtime,
                        insecure_registries=frozenset(insecure_registries),
                    )
                    api = DockerApi(state)
                    connections.start_soon(api.events.record_forever, state)

                    async def handle(stream: anyio.abc.ByteStream) -> None:
                        await serve_connection(
                            stream,
                            api.handle,
                            server=SERVER,
                            api_version=f"{API_VERSION[0]}.{API_VERSION[1]}",
                        )

                    async def accept() -> None:
                        async with listener:
                            await listener.serve(handle, task_group=connections)

                    connections.start_soon(accept)
                    log.info("serving the Docker API", socket=str(socket_path), root=str(root))
                    if ready is not None:
                        ready.set()
                    async for received in signals:
                        log.info("shutting down", signal=signal.Signals(received).name)
                        break
                    connections.cancel_scope.cancel()
    finally:
        with contextlib.suppress(OSError):
            raw.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(socket_path)
