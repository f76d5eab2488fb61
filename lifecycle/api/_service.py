"""The router: moby's paths, version negotiation, and the engine's errors as Docker's statuses.

Every route answers unversioned and under ``/v1.<n>/`` for n from
``MIN_API_VERSION`` to ``API_VERSION``, and outside that range with moby's
400 ("client version 1.99 is too new..."). Clients negotiate with
``/_ping``'s ``Api-Version`` header and then use the lower of the two.
"""

from __future__ import annotations

import os
import platform
import re
import socket
from collections.abc import Awaitable, Callable
from typing import Final, final

from lifecycle._errors import (
    ContainerNotFoundError,
    EngineClosedError,
    ImageConflictError,
    ImageContentError,
    ImageNotFoundError,
    InvalidArgumentError,
    InvalidTransitionError,
    LifecycleError,
    NameConflictError,
    SpawnError,
)
from lifecycle._logging import get_logger
from lifecycle._version import __version__
from lifecycle.api import _containers, _images
from lifecycle.api._events import EventLog, events
from lifecycle.api._http import Answer, HttpError, JsonResponse, Request, Response
from lifecycle.api._state import ApiState
from lifecycle.model import State

__all__ = ["API_VERSION", "MIN_API_VERSION", "SERVER", "DockerApi"]

# Docker 28.2's API, the version of the CLI this was tested with; 1.24 is moby's minimum.
API_VERSION: Final = (1, 50)
MIN_API_VERSION: Final = (1, 24)
SERVER: Final = f"lifecycle/{__version__} (linux)"

_VERSIONED_RE: Final = re.compile(r"^/v(\d+)\.(\d+)(/.*)$")

Route = Callable[..., Awaitable[Answer]]


def _version_text(version: tuple[int, int]) -> str:
    return f"{version[0]}.{version[1]}"


@final
class DockerApi:
    """Docker Engine API requests answered by one engine (``handle`` is the HTTP handler)."""

    def __init__(self, state: ApiState) -> None:
        self.state = state
        self.events = EventLog()
        c, i = _containers, _images
        container = r"/containers/(?P<reference>[^/]+)"
        image = r"/images/(?P<reference>.+?)"
        table: list[tuple[str, str, Route]] = [
            ("GET", r"/_ping", self._ping),
            ("HEAD", r"/_ping", self._ping),
            ("GET", r"/version", self._version),
            ("GET", r"/info", self._info),
            ("GET", r"/events", self._events),
            ("GET", r"/containers/json", c.list_containers),
            ("POST", r"/containers/create", c.create),
            ("GET", container + r"/json", c.inspect),
            ("POST", container + r"/start", c.start),
            ("POST", container + r"/stop", c.stop),
            ("POST", container + r"/restart", c.restart),
            ("POST", container + r"/kill", c.kill),
            ("POST", container + r"/pause", c.pause),
            ("POST", container + r"/unpause", c.unpause),
            ("POST", container + r"/wait", c.wait),
            ("GET", container + r"/logs", c.logs),
            ("POST", container + r"/attach", c.attach),
            ("DELETE", container, c.delete),
            ("GET", r"/images/json", i.list_images),
            ("POST", r"/images/create", i.pull),
            ("POST", r"/images/load", i.load),
            ("GET", r"/images/get", self._save_many),
            ("GET", image + r"/json", i.inspect_image),
            ("GET", image + r"/get", i.get_image),
            ("POST", image + r"/tag", i.tag),
            ("DELETE", image, i.remove_image),
        ]
        self._routes = [
            (method, re.compile(f"^{pattern}$"), handler) for method, pattern, handler in table
        ]

    async def handle(self, request: Request) -> Answer:
        """Route ``request``; every failure becomes Docker's ``{"message"}`` with its status."""
        path = request.path
        versioned = _VERSIONED_RE.match(path)
        if versioned is not None:
            asked = (int(versioned.group(1)), int(versioned.group(2)))
            if asked > API_VERSION:
                raise HttpError(
                    400,
                    f"client version {_version_text(asked)} is too new. Maximum supported API "
                    f"version is {_version_text(API_VERSION)}",
                )
            if asked < MIN_API_VERSION:
                raise HttpError(
                    400,
                    f"client version {_version_text(asked)} is too old. Minimum supported API "
                    f"version is {_version_text(MIN_API_VERSION)}, please upgrade your client "
                    "to a newer version",
                )
            path = versioned.group(3)
        allowed = False
        for method, pattern, handler in self._routes:
            match = pattern.match(path)
            if match is None:
                continue
            allowed = True
            if method != request.method:
                continue
            try:
                return await handler(self.state, request, *match.groups())
            except LifecycleError as error:
                raise _as_http(error) from None
        if allowed:
            raise HttpError(405, f"method {request.method} not allowed for {path}")
        raise HttpError(404, f"page not found: {request.method} {path}")

    # -- the system routes: they take the state argument the router passes to every route --

    async def _ping(self, state: ApiState, request: Request) -> Response:
        # moby answers "OK" with no caching; HEAD gets the headers only.
        headers = (("Cache-Control", "no-cache, no-store, must-revalidate"), ("Pragma", "no-cache"))
        body = b"" if request.method == "HEAD" else b"OK"
        return Response(200, body, "text/plain; charset=utf-8", headers)

    async def _version(self, state: ApiState, request: Request) -> Response:
        uname = platform.uname()
        version = {
            "Platform": {"Name": "lifecycle"},
            "Components": [
                {
                    "Name": "Engine",
                    "Version": __version__,
                    "Details": {
                        "ApiVersion": _version_text(API_VERSION),
                        "MinAPIVersion": _version_text(MIN_API_VERSION),
                        "Os": "linux",
                        "Arch": _architecture(),
                        "KernelVersion": uname.release,
                    },
                }
            ],
            "Version": __version__,
            "ApiVersion": _version_text(API_VERSION),
            "MinAPIVersion": _version_text(MIN_API_VERSION),
            "GitCommit": "",
            "GoVersion": f"python{platform.python_version()}",
            "Os": "linux",
            "Arch": _architecture(),
            "KernelVersion": uname.release,
        }
        return JsonResponse(200, version)

    async def _info(self, state: ApiState, request: Request) -> Response:
        containers = state.engine.containers()
        states = [container.state for container in containers]
        statistics = state.engine.statistics()
        store = state.store
        info = {
            "ID": "",
            "Containers": len(containers),
            "ContainersRunning": states.count(State.RUNNING),
            "ContainersPaused": states.count(State.PAUSED),
            "ContainersStopped": len(states)
            - states.count(State.RUNNING)
            - states.count(State.PAUSED),
            "Images": 0 if store is None else len(store.images()),
            "Driver": statistics.snapshotter or "",
            "DockerRootDir": "" if store is None else str(store.root),
            "OperatingSystem": "lifecycle",
            "OSType": "linux",
            "Architecture": platform.machine(),
            "KernelVersion": platform.release(),
            "NCPU": os.cpu_count() or 1,
            "MemTotal": _memory_total(),
            "Name": socket.gethostname(),
            "ServerVersion": __version__,
            "CgroupDriver": "cgroupfs",
            "CgroupVersion": "1",
            "DefaultRuntime": state.default_runtime,
            "Runtimes": {state.default_runtime: {"path": state.default_runtime}},
            "Labels": [],
            "Warnings": None,
        }
        return JsonResponse(200, info)

    async def _events(self, state: ApiState, request: Request) -> Answer:
        return await events(state, self.events, request)

    async def _save_many(self, state: ApiState, request: Request) -> Answer:
        return await _images.get_image(state, request, None)


def _architecture() -> str:
    machine = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)


def _memory_total() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):  # pragma: no cover -- Linux has both
        return 0


def _as_http(error: LifecycleError) -> HttpError:  # noqa: PLR0911 -- one per errdefs kind
    """The engine's exception as moby's status (``errdefs``): 404, 409, 400, 500."""
    if isinstance(error, ContainerNotFoundError):
        detail = f" ({error.reason})" if error.reason else ""  # an ambiguous prefix says so
        return HttpError(404, f"No such container: {error.reference}{detail}")
    if isinstance(error, ImageNotFoundError):
        return HttpError(404, f"No such image: {error.reference}")
    if isinstance(error, NameConflictError):
        return HttpError(
            409,
            f'Conflict. The container name "/{error.name}" is already in use by container '
            f'"{error.container_id}". You have to remove (or rename) that container to be able '
            "to reuse that name.",
        )
    if isinstance(error, InvalidTransitionError | ImageConflictError):
        return HttpError(409, str(error))
    if isinstance(error, SpawnError):
        # The CLI turns these words into docker run's 127/126 (cli/command/container/run.go).
        words = (
            "executable file not found in $PATH" if error.exit_code == 127 else "permission denied"
        )
        return HttpError(400, f"failed to create task for container: {error.reason}: {words}")
    if isinstance(error, InvalidArgumentError | ImageContentError):
        return HttpError(400, str(error))
    if isinstance(error, EngineClosedError):
        return HttpError(503, str(error))
    get_logger().warning("API request failed", error=str(error))
    return HttpError(500, str(error))
