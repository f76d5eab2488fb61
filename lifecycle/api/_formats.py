"""Docker's JSON for containers, images and events, from the engine's public objects.

Field names, zero values and texts are moby's (``api/types``,
``container/state.go``, ``go-units``), because clients parse them: the CLI
prints ``Status`` as it is, the SDK reads ``State.Status``, testcontainers
filters ``/containers/json`` by id.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final, final

from lifecycle.engine import Container
from lifecycle.events import Event
from lifecycle.images import Image
from lifecycle.model import State

__all__ = [
    "ZERO_TIME",
    "ContainerRecord",
    "container_inspect",
    "container_summary",
    "docker_state",
    "event_message",
    "human_duration",
    "image_inspect",
    "image_summary",
    "rfc3339",
    "status_text",
]

# Go's zero time.Time as moby marshals it (StartedAt of a container never started).
ZERO_TIME: Final = "0001-01-01T00:00:00Z"


@final
@dataclasses.dataclass(slots=True)
class ContainerRecord:
    """What the API keeps beside a container: the Docker fields the engine has no word for."""

    image: str  # as the client wrote it (Config.Image, the ps IMAGE column)
    created: datetime
    labels: Mapping[str, str]
    auto_remove: bool
    entrypoint: tuple[str, ...] | None
    cmd: tuple[str, ...]
    env: tuple[str, ...]
    network_mode: str


def rfc3339(moment: datetime | None) -> str:
    """RFC 3339 with nanoseconds in UTC, as Go's time.RFC3339Nano (zero time for None)."""
    if moment is None:
        return ZERO_TIME
    moment = moment.astimezone(UTC)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if moment.microsecond:
        text += f".{moment.microsecond:06d}".rstrip("0")
    return text + "Z"


def human_duration(seconds: float) -> str:  # noqa: PLR0911 -- one return per go-units case
    """go-units ``HumanDuration``: the words ``docker ps`` puts in STATUS."""
    whole = int(seconds)
    if whole < 1:
        return "Less than a second"
    if whole == 1:
        return "1 second"
    if whole < 60:
        return f"{whole} seconds"
    minutes = int(seconds / 60)
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = round(seconds / 3600)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{int(seconds / 3600) // 24 // 365} years"


def docker_state(container: Container) -> str:
    """moby's ``State.StateString``: created, running, paused, restarting, exited, dead."""
    state = container.state
    if state is State.PAUSED:
        return "paused"
    if state is State.RUNNING:
        return "running"
    if container.restarting:
        return "restarting"
    if state is State.CREATED:
        return "created"
    if state is State.DELETED:
        return "removing"
    return "exited"


def status_text(container: Container, now: datetime) -> str:  # noqa: PLR0911 -- moby's cases
    """moby's ``State.String``: ``Up 2 seconds (Paused)``, ``Exited (3) 1 second ago``..."""
    state = container.state
    if state in (State.RUNNING, State.PAUSED) and container.started_at is not None:
        up = human_duration((now - container.started_at).total_seconds())
        if state is State.PAUSED:
            return f"Up {up} (Paused)"
        health = container.health.status
        if health is not None:  # moby's Health.String(): "health: starting", "healthy"...
            return f"Up {up} ({'health: starting' if health == 'starting' else health})"
        return f"Up {up}"
    if state is State.DELETED:
        return "Removal In Progress"
    if container.finished_at is None:
        return "Created"
    ago = human_duration((now - container.finished_at).total_seconds())
    code = container.exit_code or 0
    if container.restarting:
        return f"Restarting ({code}) {ago} ago"
    return f"Exited ({code}) {ago} ago"


def _host_config(container: Container, record: ContainerRecord) -> dict[str, Any]:
    spec = container.spec
    policy = spec.restart_policy
    return {
        "NetworkMode": record.network_mode,
        "RestartPolicy": {"Name": policy.name, "MaximumRetryCount": policy.max_retries or 0},
        "AutoRemove": record.auto_remove,
        "Memory": spec.memory or 0,
        "PidsLimit": spec.pids_limit,
        "CpuShares": spec.cpu_shares or 0,
        "NanoCpus": round((spec.cpus or 0) * 1e9),
        "Binds": None,
        "PortBindings": {},
        "Privileged": False,
        "LogConfig": {"Type": "json-file", "Config": {}},
        "Runtime": container.driver,
    }


def _image_id(container: Container) -> str:
    image = container.image
    return "" if image is None else image.id


def container_summary(
    container: Container, record: ContainerRecord, now: datetime
) -> dict[str, Any]:
    """One row of ``GET /containers/json`` (moby ``container.Summary``)."""
    return {
        "Id": container.id,
        "Names": [f"/{container.name}"],
        "Image": record.image,
        "ImageID": _image_id(container),
        "Command": " ".join(container.command),
        "Created": int(record.created.timestamp()),
        "Ports": [],
        "Labels": dict(record.labels),
        "State": docker_state(container),
        "Status": status_text(container, now),
        "HostConfig": {"NetworkMode": record.network_mode},
        "NetworkSettings": {"Networks": {}},
        "Mounts": [],
    }


def container_inspect(container: Container, record: ContainerRecord) -> dict[str, Any]:
    """``GET /containers/{id}/json`` (moby ``container.InspectResponse``)."""
    spec = container.spec
    state = container.state
    pid = container.pid
    status = docker_state(container)
    command = container.command
    return {
        "Id": container.id,
        "Created": rfc3339(record.created),
        "Path": command[0] if command else "",
        "Args": list(command[1:]),
        "State": {
            "Status": status,
            "Running": state in (State.RUNNING, State.PAUSED) or container.restarting,
            "Paused": state is State.PAUSED,
            "Restarting": container.restarting,
            "OOMKilled": container.oom_killed,
            "Dead": False,
            "Pid": pid or 0,
            "ExitCode": container.exit_code or 0,
            "Error": container.error or "",
            "StartedAt": rfc3339(container.started_at),
            "FinishedAt": rfc3339(container.finished_at),
            **_health_state(container),
        },
        "Image": _image_id(container),
        "ResolvConfPath": "",
        "HostnamePath": "",
        "HostsPath": "",
        "LogPath": spec.log_file or "",
        "Name": f"/{container.name}",
        "RestartCount": container.restart_count,
        "Driver": "overlay2" if spec.rootfs else "",
        "Platform": "linux",
        "MountLabel": "",
        "ProcessLabel": "",
        "AppArmorProfile": "",
        "ExecIDs": None,
        "HostConfig": _host_config(container, record),
        "GraphDriver": {"Name": "overlay2" if spec.rootfs else "", "Data": None},
        "Mounts": [],
        "Config": {
            "Hostname": spec.hostname or container.short_id,
            "Domainname": "",
            "User": spec.user or "",
            "AttachStdin": False,
            "AttachStdout": True,
            "AttachStderr": True,
            "Tty": False,
            "OpenStdin": spec.interactive,
            "StdinOnce": False,
            "Env": list(record.env),
            "Cmd": list(record.cmd),
            "Image": record.image,
            "Volumes": None,
            "WorkingDir": spec.cwd or "",
            "Entrypoint": None if record.entrypoint is None else list(record.entrypoint),
            "OnBuild": None,
            "Labels": dict(record.labels),
            "StopSignal": spec.stop_signal.name,
            "StopTimeout": round(spec.stop_timeout),
            **({} if spec.healthcheck is None else {"Healthcheck": spec.healthcheck.to_docker()}),
        },
        "NetworkSettings": {"Networks": {}, "Ports": {}},
    }


def _health_state(container: Container) -> dict[str, Any]:
    """State.Health, present only when the container has a health check (as moby)."""
    health = container.health
    if health.status is None:
        return {}
    log = [
        {
            "Start": rfc3339(probe.start),
            "End": rfc3339(probe.end),
            "ExitCode": probe.exit_code,
            "Output": probe.output,
        }
        for probe in health.log
    ]
    return {"Health": {"Status": health.status, "FailingStreak": health.failing_streak, "Log": log}}


def _names(image: Image) -> list[str]:
    return [reference.familiar for reference in image.references if reference.tag]


def _digests(image: Image) -> list[str]:
    return [
        f"{reference.repository}@{image.manifest_digest}"
        for reference in image.references
        if reference.tag
    ]


def image_summary(image: Image, containers: int) -> dict[str, Any]:
    """One row of ``GET /images/json`` (moby ``image.Summary``)."""
    return {
        "Id": image.id,
        "ParentId": "",
        "RepoTags": _names(image),
        "RepoDigests": sorted(set(_digests(image))),
        "Created": 0 if image.created is None else int(image.created.timestamp()),
        "Size": image.size,
        "SharedSize": -1,
        "VirtualSize": image.size,
        "Labels": dict(image.config.labels) or None,
        "Containers": containers,
    }


def image_inspect(image: Image) -> dict[str, Any]:
    """``GET /images/{name}/json`` (moby ``image.InspectResponse``)."""
    config = image.config
    return {
        "Id": image.id,
        "RepoTags": _names(image),
        "RepoDigests": sorted(set(_digests(image))),
        "Parent": "",
        "Comment": "",
        "Created": rfc3339(image.created) if image.created is not None else "",
        "DockerVersion": "",
        "Author": "",
        "Config": {
            "Env": [f"{key}={value}" for key, value in config.env.items()],
            "Cmd": None if config.cmd is None else list(config.cmd),
            "Entrypoint": None if config.entrypoint is None else list(config.entrypoint),
            "WorkingDir": config.working_dir or "",
            "User": config.user or "",
            "Labels": dict(config.labels) or None,
            "StopSignal": config.stop_signal or "",
            "Healthcheck": None if config.healthcheck is None else dict(config.healthcheck),
        },
        "Architecture": image.architecture or "",
        "Os": image.os or "linux",
        "Size": image.size,
        "VirtualSize": image.size,
        "RootFS": {"Type": "layers", "Layers": [layer.diff_id for layer in image.layers]},
        "Metadata": {"LastTagTime": ZERO_TIME},
    }


def event_message(event: Event, record: ContainerRecord | None) -> dict[str, Any]:
    """A container event as moby's ``events.Message`` (and the pre-1.22 fields, still read)."""
    attributes: dict[str, str] = {}
    if record is not None:
        attributes.update(record.labels)
        attributes["image"] = record.image
    attributes.update(event.attributes)
    seconds, _ = divmod(event.time_ns, 1_000_000_000)
    return {
        "status": event.action,
        "id": event.container_id,
        "from": "" if record is None else record.image,
        "Type": "container",
        "Action": event.action,
        "Actor": {"ID": event.container_id, "Attributes": attributes},
        "scope": "local",
        "time": seconds,
        "timeNano": event.time_ns,
    }
