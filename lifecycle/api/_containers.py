"""The ``/containers`` routes: create, list, inspect, the lifecycle operations, logs, attach.

Each answers as moby's ``api/server/router/container`` does: 201 with the id
for create, 204 for an operation done, 304 when it was already so (start a
running container, stop a stopped one), 409 when the state forbids it,
404 for an unknown container.
"""

from __future__ import annotations

import re
import struct
import time
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime
from typing import Any, Final

import anyio
import anyio.abc

from lifecycle._errors import LifecycleError, SpawnError
from lifecycle.api._formats import (
    ContainerRecord,
    container_inspect,
    container_summary,
    docker_state,
)
from lifecycle.api._http import (
    HttpError,
    JsonResponse,
    Request,
    Response,
    StreamResponse,
    UpgradeResponse,
    json_line,
)
from lifecycle.api._params import (
    flag,
    integer,
    json_body,
    label_matches,
    parse_filters,
    text,
    timestamp_ns,
)
from lifecycle.api._state import ApiState
from lifecycle.engine import Container
from lifecycle.logs import LogLine, rfc3339_nano
from lifecycle.model import Healthcheck, RestartPolicy, State, parse_signal

__all__ = [
    "attach",
    "create",
    "delete",
    "inspect",
    "kill",
    "list_containers",
    "logs",
    "pause",
    "restart",
    "start",
    "stop",
    "unpause",
    "wait",
]

MULTIPLEXED: Final = "application/vnd.docker.multiplexed-stream"
_STREAM_IDS: Final = {"stdout": 1, "stderr": 2}
_LIST_FILTERS: Final = frozenset(
    {"status", "id", "name", "label", "ancestor", "exited", "health", "before", "since"}
)
_STATUSES: Final = frozenset(
    {"created", "restarting", "running", "removing", "paused", "exited", "dead"}
)
# HostConfig fields whose meaning we cannot honour: refused rather than silently dropped
# (a client that asked for a published port or a bind mount would get a container without
# it). Every other unknown field is ignored, as moby ignores fields it does not know.
_UNSUPPORTED_HOST_CONFIG: Final = (
    "PortBindings", "Binds", "Mounts", "Tmpfs", "VolumesFrom", "Devices", "Links",
    "CapAdd", "CapDrop", "ExtraHosts", "Dns", "DnsSearch", "SecurityOpt", "Ulimits",
    "Sysctls", "Init", "IpcMode", "PidMode", "UTSMode", "UsernsMode",
)  # fmt: skip
_UNSUPPORTED_TRUE: Final = ("Privileged", "PublishAllPorts", "ReadonlyRootfs")
_NETWORK_MODES: Final = {"": None, "default": None, "bridge": None, "none": "none", "host": "host"}


def frame(stream: str, data: bytes) -> bytes:
    """moby's stdcopy framing: stream id (1 stdout, 2 stderr), 3 zero bytes, big-endian size."""
    return struct.pack(">BxxxL", _STREAM_IDS[stream], len(data)) + data


# -- create ---------------------------------------------------------------------


def _strings(body: Mapping[str, Any], key: str) -> tuple[str, ...] | None:
    """A strslice: null, a string (one item, as moby's StrSlice reads it) or a list of strings."""
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return tuple(value)
    raise HttpError(400, f"invalid {key}: expected a list of strings")


def _typed(body: Mapping[str, Any], key: str, kind: type | tuple[type, ...]) -> Any:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) and kind in (int, float):
        raise HttpError(400, f"invalid {key}: expected a number, not {value!r}")
    if not isinstance(value, kind):
        names = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise HttpError(400, f"invalid {key}: expected {names}, not {type(value).__name__}")
    return value


def _labels(body: Mapping[str, Any]) -> dict[str, str]:
    labels = _typed(body, "Labels", dict) or {}
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in labels.items()):
        raise HttpError(400, "invalid Labels: expected an object of strings")
    return dict(labels)


def _env(body: Mapping[str, Any]) -> dict[str, str]:
    items = _strings(body, "Env") or ()
    env: dict[str, str] = {}
    for item in items:
        key, separator, value = item.partition("=")
        if not key:
            raise HttpError(400, f"invalid Env entry {item!r}: the name is empty")
        if separator:
            env[key] = value
    return env


def _restart_policy(host: Mapping[str, Any]) -> RestartPolicy | None:
    policy = _typed(host, "RestartPolicy", dict)
    if not policy:
        return None
    name = _typed(policy, "Name", str) or "no"
    retries = _typed(policy, "MaximumRetryCount", int) or 0
    if name != "on-failure" and retries:
        raise HttpError(
            400, f"invalid restart policy: maximum retry count cannot be used with {name}"
        )
    if retries < 0:
        raise HttpError(400, "invalid restart policy: maximum retry count cannot be negative")
    try:
        return RestartPolicy(name, retries or None) if name == "on-failure" else RestartPolicy(name)  # type: ignore[arg-type]
    except LifecycleError as error:
        raise HttpError(400, f"invalid restart policy: {error}") from None


def _healthcheck(
    body: Mapping[str, Any], image_check: Mapping[str, Any] | None
) -> Healthcheck | None:
    """Config.Healthcheck merged over the image's, field by field (moby daemon/create.go);
    None: the image's own applies (the engine takes it)."""
    given = _typed(body, "Healthcheck", dict)
    if given is None:
        return None
    try:
        base = None if image_check is None else Healthcheck.from_docker(image_check)
        return Healthcheck.from_docker(given, base=base)
    except LifecycleError as error:
        raise HttpError(400, f"invalid Healthcheck: {error}") from None


def _refuse_unsupported(body: Mapping[str, Any], host: Mapping[str, Any]) -> None:
    for key in _UNSUPPORTED_HOST_CONFIG:
        if host.get(key):
            raise HttpError(400, f"HostConfig.{key} is not supported by lifecycle")
    for key in _UNSUPPORTED_TRUE:
        if host.get(key) is True:
            raise HttpError(400, f"HostConfig.{key} is not supported by lifecycle")
    if body.get("Tty") is True:
        raise HttpError(
            400, "Tty is not supported by lifecycle: output is captured, not a terminal"
        )
    if body.get("OpenStdin") is True or body.get("AttachStdin") is True:
        raise HttpError(400, "stdin (OpenStdin, AttachStdin) is not supported by lifecycle")
    if body.get("Volumes"):
        raise HttpError(400, "Volumes are not supported by lifecycle")
    networking = body.get("NetworkingConfig")
    endpoints = networking.get("EndpointsConfig") if isinstance(networking, dict) else None
    # The CLI always names its network mode here ("default"); another network is not ours.
    for network in endpoints or {}:
        if network not in _NETWORK_MODES:
            raise HttpError(400, f"network {network!r} not found: lifecycle has none and host")


async def create(state: ApiState, request: Request) -> Response:
    """``POST /containers/create?name=``: 201 ``{"Id", "Warnings"}``."""
    body = await json_body(request)
    host = _typed(body, "HostConfig", dict) or {}
    _refuse_unsupported(body, host)
    image_name = _typed(body, "Image", str)
    if not image_name:
        raise HttpError(400, "config error: an image is required (Image)")
    store = state.require_store()
    try:
        image = store.get(image_name)
    except LifecycleError:
        raise HttpError(404, f"No such image: {image_name}") from None
    entrypoint = _strings(body, "Entrypoint")
    cmd = _strings(body, "Cmd")
    # moby daemon/create.go merge: a non-empty Entrypoint replaces the image's and drops
    # its Cmd; otherwise an empty Cmd takes the image's Cmd and the image's Entrypoint stays.
    if entrypoint:
        effective_entrypoint = tuple(item for item in entrypoint if item) or None
        effective_cmd = cmd or ()
    else:
        effective_entrypoint = image.config.entrypoint
        effective_cmd = cmd if cmd else (image.config.cmd or ())
    command = (*(effective_entrypoint or ()), *effective_cmd)
    if not command:
        raise HttpError(400, "No command specified")
    network_value = _typed(host, "NetworkMode", str) or ""
    if network_value not in _NETWORK_MODES:
        raise HttpError(400, f"network mode {network_value!r} is not supported (none, host)")
    network = _NETWORK_MODES[network_value]
    stop_timeout = _typed(body, "StopTimeout", int)
    memory = _typed(host, "Memory", int) or None
    pids_limit = _typed(host, "PidsLimit", int)
    nano_cpus = _typed(host, "NanoCpus", int) or None
    cpu_shares = _typed(host, "CpuShares", int) or None
    auto_remove = bool(_typed(host, "AutoRemove", bool))
    policy = _restart_policy(host)
    if auto_remove and policy is not None and policy.name != "no":
        raise HttpError(400, "can't create 'AutoRemove' container with restart policy")
    runtime = _typed(host, "Runtime", str) or None
    healthcheck = _healthcheck(body, image.config.healthcheck)
    env = _env(body)
    name = (text(request, "name") or "").removeprefix("/") or None
    engine = state.engine
    container = await engine.create(
        list(command),
        image=image.id,
        name=name,
        env=env,
        cwd=_typed(body, "WorkingDir", str) or None,
        user=_typed(body, "User", str) or None,
        stop_signal=_typed(body, "StopSignal", str) or image.config.stop_signal or "SIGTERM",
        stop_timeout=10 if stop_timeout is None else stop_timeout,
        restart=policy,
        runtime=runtime,
        network=network,
        memory=memory,
        pids_limit=pids_limit if pids_limit and pids_limit > 0 else None,
        cpu_shares=cpu_shares,
        cpus=None if nano_cpus is None else nano_cpus / 1e9,
        healthcheck=healthcheck,
        labels=_labels(body),
    )
    state.records[container.id] = ContainerRecord(
        image=image_name,
        created=container.created_at,
        labels=container.labels,
        auto_remove=auto_remove,
        entrypoint=effective_entrypoint,
        cmd=tuple(effective_cmd),
        env=tuple(f"{key}={value}" for key, value in container.spec.env.items()),
        network_mode=network or container.spec.network or "none",
    )
    if auto_remove:
        state.task_group.start_soon(_remove_after_exit, container)
    return JsonResponse(201, {"Id": container.id, "Warnings": []})


async def _remove_after_exit(container: Container) -> None:
    """HostConfig.AutoRemove: the container is removed once its process has exited (moby's
    daemon removes it in its exit handler; `docker run --rm` waits for that)."""
    try:
        while True:
            await container.wait("next-exit")
            # A restart's exit leaves it running: the exit that counts is a later one.
            if container.state is State.STOPPED and not container.restarting:
                await container.remove()
                return
    except LifecycleError:
        return  # removed by someone else meanwhile, or started again at once: nothing to do


# -- reading -----------------------------------------------------------------


def _passes(state: ApiState, container: Container, key: str, value: str) -> bool:  # noqa: PLR0911
    """One value of one ``/containers/json`` filter (moby ``daemon/list.go``)."""
    status = docker_state(container)
    if key == "status":
        return status == value
    if key == "id":
        return container.id.startswith(value)
    if key == "name":
        return _name_matches(value, container.name)
    if key == "label":
        return label_matches(value, state.record(container).labels)
    if key == "ancestor":
        return _ancestor_matches(state, value, container)
    if key == "exited":
        return status == "exited" and str(container.exit_code or 0) == value
    if key == "health":
        return (container.health.status or "none") == value
    return True  # before/since: accepted, not applied


def _matches(state: ApiState, container: Container, filters: dict[str, set[str]]) -> bool:
    """Values of one filter are alternatives, except labels: every label must match."""
    for key, values in filters.items():
        if not values:
            continue
        passed = [_passes(state, container, key, value) for value in values]
        if not (all(passed) if key == "label" else any(passed)):
            return False
    return True


def _name_matches(pattern: str, name: str) -> bool:
    try:
        return re.search(pattern, f"/{name}") is not None
    except re.error:
        raise HttpError(
            400, f"invalid filter 'name': {pattern!r} is not a regular expression"
        ) from None


def _ancestor_matches(state: ApiState, reference: str, container: Container) -> bool:
    image = container.image
    if image is None or state.store is None:
        return False
    try:
        return state.store.get(reference).id == image.id
    except LifecycleError:
        return False


async def list_containers(state: ApiState, request: Request) -> Response:
    """``GET /containers/json?all=&limit=&filters=``: newest first, as moby lists them."""
    filters = parse_filters(request, _LIST_FILTERS)
    for status in filters.get("status", ()):
        if status not in _STATUSES:
            raise HttpError(400, f"invalid filter 'status={status}'")
    for code in filters.get("exited", ()):
        if not code.lstrip("-").isdigit():
            raise HttpError(400, f"invalid filter 'exited={code}'")
    limit = integer(request, "limit", -1)
    show_all = flag(request, "all") or (limit is not None and limit > 0) or "status" in filters
    now = datetime.now(UTC)
    rows = []
    for container in reversed(state.engine.containers()):
        if not show_all and docker_state(container) not in ("running", "paused", "restarting"):
            continue
        if not _matches(state, container, filters):
            continue
        rows.append(container_summary(container, state.record(container), now))
        if limit is not None and limit > 0 and len(rows) >= limit:
            break
    return JsonResponse(200, rows)


async def inspect(state: ApiState, request: Request, reference: str) -> Response:
    """``GET /containers/{id}/json``."""
    container = state.container(reference)
    return JsonResponse(200, container_inspect(container, state.record(container)))


# -- operations -------------------------------------------------------------------


_NO_CONTENT: Final = Response(204)
_NOT_MODIFIED: Final = Response(304)


def _conflict(container: Container, what: str) -> HttpError:
    return HttpError(409, f"Container {container.id} {what}")


async def start(state: ApiState, request: Request, reference: str) -> Response:
    """``POST /containers/{id}/start``: 304 if it already runs."""
    container = state.container(reference)
    if container.state in (State.RUNNING, State.PAUSED):
        return _NOT_MODIFIED
    try:
        await container.start()
    except SpawnError:
        # moby's containerStart removes an AutoRemove container whose start failed, and
        # `docker run --rm` waits for that removal before it reports the error.
        if state.record(container).auto_remove:
            with anyio.CancelScope(shield=True):
                await container.remove()
        raise
    return _NO_CONTENT


def _timeout(request: Request) -> float | None:
    seconds = integer(request, "t")
    if seconds is None:
        return None
    # moby: a negative timeout waits for ever; lifecycle's stop has no "for ever", so the
    # longest wait it takes stands in (a day).
    return 86400.0 if seconds < 0 else float(seconds)


async def stop(state: ApiState, request: Request, reference: str) -> Response:
    """``POST /containers/{id}/stop?t=&signal=``: 304 if it is not running."""
    container = state.container(reference)
    timeout = _timeout(request)
    sig = text(request, "signal")
    if container.state not in (State.RUNNING, State.PAUSED) and not container.restarting:
        return _NOT_MODIFIED
    if sig and parse_signal(sig) is not container.stop_signal:
        # moby's stop?signal= replaces the stop signal for this stop: send it, give it the
        # grace period, then stop(0): marked stopped by hand, SIGKILL if still there.
        await container.kill(sig)
        grace = container.stop_timeout if timeout is None else timeout
        with anyio.move_on_after(grace):
            await container.wait("not-running")
        await container.stop(0)
    else:
        await container.stop(timeout)
    return _NO_CONTENT


async def restart(state: ApiState, request: Request, reference: str) -> Response:
    """``POST /containers/{id}/restart?t=``."""
    container = state.container(reference)
    await container.restart(_timeout(request))
    return _NO_CONTENT


async def kill(state: ApiState, request: Request, reference: str) -> Response:
    """``POST /containers/{id}/kill?signal=`` (default SIGKILL); 409 if it is not running."""
    container = state.container(reference)
    if container.state not in (State.RUNNING, State.PAUSED):
        raise _conflict(container, "is not running")
    await container.kill(text(request, "signal") or "SIGKILL")
    return _NO_CONTENT


async def pause(state: ApiState, request: Request, reference: str) -> Response:
    """``POST /containers/{id}/pause``: 409 unless it runs."""
    container = state.container(reference)
    if container.state is State.PAUSED:
        raise _conflict(container, "is already paused")
    if container.state is not State.RUNNING:
        raise _conflict(container, "is not running")
    await container.pause()
    return _NO_CONTENT


async def unpause(state: ApiState, request: Request, reference: str) -> Response:
    """``POST /containers/{id}/unpause``: 409 unless it is paused."""
    container = state.container(reference)
    if container.state is not State.PAUSED:
        raise _conflict(container, "is not paused")
    await container.unpause()
    return _NO_CONTENT


async def delete(state: ApiState, request: Request, reference: str) -> Response:
    """``DELETE /containers/{id}?force=``: 409 for a running container without force."""
    container = state.container(reference)
    force = flag(request, "force")
    if container.state in (State.RUNNING, State.PAUSED) and not force:
        raise HttpError(
            409,
            f'cannot remove container "/{container.name}": container is {docker_state(container)}: '
            "stop the container before removing or force remove",
        )
    await container.remove(force=force)
    return _NO_CONTENT


async def wait(state: ApiState, request: Request, reference: str) -> StreamResponse:
    """``POST /containers/{id}/wait?condition=``: headers at once, the exit code when it comes."""
    container = state.container(reference)
    condition = text(request, "condition") or "not-running"
    if condition not in ("not-running", "next-exit", "removed"):
        raise HttpError(400, f"invalid condition: {condition!r} (not-running, next-exit, removed)")

    async def result() -> AsyncIterator[bytes]:
        try:
            code = await container.wait(condition)  # type: ignore[arg-type]
        except LifecycleError as error:
            yield json_line({"StatusCode": -1, "Error": {"Message": str(error)}})
            return
        yield json_line({"StatusCode": code, "Error": None})

    return StreamResponse(200, result(), "application/json")


# -- output -----------------------------------------------------------------------


def _line_bytes(line: LogLine, timestamps: bool) -> bytes:
    if not timestamps:
        return line.data
    return f"{rfc3339_nano(line.time_ns)} ".encode() + line.data


async def logs(state: ApiState, request: Request, reference: str) -> StreamResponse:
    """``GET /containers/{id}/logs``: moby's multiplexed frames, one per line."""
    container = state.container(reference)
    stdout, stderr = flag(request, "stdout"), flag(request, "stderr")
    if not (stdout or stderr):
        raise HttpError(400, "Bad parameters: you must choose at least one stream")
    tail_text = text(request, "tail") or "all"
    if tail_text == "all":
        tail = None
    elif tail_text.isdigit():
        tail = int(tail_text)
    else:
        raise HttpError(400, f"invalid value for tail: {tail_text!r} (a number or all)")
    since_ns = timestamp_ns(request, "since")
    until_ns = timestamp_ns(request, "until")
    follow = flag(request, "follow")
    timestamps = flag(request, "timestamps")
    since = None if not since_ns else since_ns / 1e9

    async def frames() -> AsyncIterator[bytes]:
        if follow:
            lines: AsyncIterator[LogLine] = container.logs(
                stdout=stdout, stderr=stderr, tail=tail, since=since, follow=True
            )
        else:
            lines = _iterate(container.logs(stdout=stdout, stderr=stderr, tail=tail, since=since))
        async for line in lines:
            if until_ns is not None and line.time_ns > until_ns:
                return
            yield frame(line.stream, _line_bytes(line, timestamps))

    return StreamResponse(200, frames(), MULTIPLEXED)


async def _iterate(lines: list[LogLine]) -> AsyncIterator[LogLine]:
    for line in lines:
        yield line


async def attach(state: ApiState, request: Request, reference: str) -> UpgradeResponse:
    """``POST /containers/{id}/attach?stream=&stdout=&stderr=&logs=``: the raw connection.

    What ``docker run`` without ``-d`` uses: attached before the start, it
    gets the output of the run that follows (with ``logs=1`` what was kept
    before too), and the connection closes when the container has stopped
    for good. Stdin is not attached (no ``-i``).
    """
    container = state.container(reference)
    stdout, stderr = flag(request, "stdout"), flag(request, "stderr")
    replay = flag(request, "logs")
    if not (flag(request, "stream") or replay):
        raise HttpError(400, "Bad parameters: you must choose at least one of stream or logs")
    if flag(request, "stdin"):
        raise HttpError(400, "attaching stdin is not supported by lifecycle")
    since = None if replay else time.time()
    # Subscribed before the 101 goes out, so a start right after it is not missed.
    starts = state.engine.subscribe(container=container.id, actions=["start", "destroy"])
    subscription = await starts.__aenter__()
    closed = False

    async def unsubscribe() -> None:
        nonlocal closed
        if not closed:
            closed = True
            with anyio.CancelScope(shield=True):
                await starts.__aexit__(None, None, None)

    async def run(stream: anyio.abc.ByteStream) -> None:
        try:
            if container.state is State.CREATED:  # attached before the start: wait for it
                async for event in subscription:
                    if event.action == "destroy" or container.state is not State.CREATED:
                        break
            await unsubscribe()
            if not (stdout or stderr):
                return
            async for line in container.logs(
                stdout=stdout, stderr=stderr, since=since, follow=True
            ):
                await stream.send(frame(line.stream, line.data))
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            return
        finally:
            await unsubscribe()

    return UpgradeResponse(MULTIPLEXED, run, unsubscribe)
