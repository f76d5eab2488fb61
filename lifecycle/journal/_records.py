"""What the journal keeps of one container, and the JSON it is kept as.

moby keeps ``config.v2.json`` and ``hostconfig.json`` per container
(daemon/container.go ``ToDisk``); we keep one document: the checked spec,
the identity, and the state an engine needs to restore the container (its
state, exit code, times, restart count, whether it was stopped by hand,
its health status). Every field is checked when read back: a record that
does not decode is an error naming its file, never a half-restored
container.
"""

from __future__ import annotations

import dataclasses
import math
import signal
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final, final

from lifecycle._errors import InvalidArgumentError, LifecycleError
from lifecycle.model import ContainerSpec, Healthcheck, RestartPolicy, State

__all__ = ["FORMAT_VERSION", "JournalError", "JournalRecord", "decode_record", "encode_record"]

FORMAT_VERSION: Final = 1


class JournalError(LifecycleError):
    """A journal file that cannot be written or read back (the message names the file)."""

    def __init__(self, path: str, problem: str) -> None:
        self.path = path
        self.problem = problem
        super().__init__(f"journal {path}: {problem}")


@final
@dataclasses.dataclass(frozen=True, slots=True)
class JournalRecord:
    """One container as the journal keeps it."""

    id: str
    name: str
    spec: ContainerSpec
    state: State
    created: datetime
    exit_code: int | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    restart_count: int = 0
    # Docker's HasBeenManuallyStopped: `unless-stopped` does not restart it on restore.
    manually_stopped: bool = False
    health: str | None = None
    # The main process while running or paused (pid and its start time name it for good):
    # what a restore kills, never a process that took the pid since.
    pid: int | None = None
    pid_start_time: int | None = None


def _number(value: float) -> float | str:
    # JSON has no infinity: a stop timeout of math.inf ("wait for ever") is written as text.
    return "inf" if math.isinf(value) else value


def _spec_document(spec: ContainerSpec) -> dict[str, Any]:
    policy = spec.restart_policy
    return {
        "command": list(spec.command),
        "env": dict(spec.env),
        "inherit_env": spec.inherit_env,
        "interactive": spec.interactive,
        "cwd": spec.cwd,
        "stop_signal": spec.stop_signal.name,
        "stop_timeout": _number(spec.stop_timeout),
        "restart_policy": {
            "name": policy.name,
            "max_retries": policy.max_retries,
            "initial_delay": policy.initial_delay,
            "max_delay": policy.max_delay,
            "reset_after": policy.reset_after,
            "multiplier": policy.multiplier,
        },
        "capture_output": spec.capture_output,
        "log_bytes": spec.log_bytes,
        "log_file": spec.log_file,
        "runtime": spec.runtime,
        "image": spec.image,
        "rootfs": spec.rootfs,
        "hostname": spec.hostname,
        "user": spec.user,
        "network": spec.network,
        "memory": spec.memory,
        "pids_limit": spec.pids_limit,
        "cpu_shares": spec.cpu_shares,
        "cpus": spec.cpus,
        "healthcheck": None if spec.healthcheck is None else spec.healthcheck.to_docker(),
        "health_on_failure": spec.health_on_failure,
        "labels": dict(spec.labels),
    }


def encode_record(record: JournalRecord) -> dict[str, Any]:
    """The record as a JSON-ready document."""
    return {
        "version": FORMAT_VERSION,
        "id": record.id,
        "name": record.name,
        "state": record.state.value,
        "created": record.created.isoformat(),
        "exit_code": record.exit_code,
        "started_at": None if record.started_at is None else record.started_at.isoformat(),
        "finished_at": None if record.finished_at is None else record.finished_at.isoformat(),
        "restart_count": record.restart_count,
        "manually_stopped": record.manually_stopped,
        "health": record.health,
        "pid": record.pid,
        "pid_start_time": record.pid_start_time,
        "spec": _spec_document(record.spec),
    }


def _time(value: object, what: str) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"{what} must be a time, not {value!r}")
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        raise ValueError(f"{what} has no time zone")
    return moment


def _spec(document: Mapping[str, Any]) -> ContainerSpec:
    policy_document = document["restart_policy"]
    policy = RestartPolicy(**policy_document)
    timeout = document["stop_timeout"]
    health = document.get("healthcheck")
    spec = ContainerSpec.build(
        document["command"],
        env=document["env"],
        inherit_env=document["inherit_env"],
        interactive=document["interactive"],
        cwd=document["cwd"],
        stop_signal=signal.Signals[document["stop_signal"]],
        stop_timeout=math.inf if timeout == "inf" else timeout,
        restart=policy,
        capture_output=document["capture_output"],
        log_bytes=document["log_bytes"],
        log_file=document["log_file"],
        runtime=document["runtime"],
        image=document["image"],
        rootfs=document["rootfs"],
        user=document["user"],
        network=document["network"],
        memory=document["memory"],
        pids_limit=document["pids_limit"],
        cpu_shares=document["cpu_shares"],
        cpus=document["cpus"],
        healthcheck=None if health is None else Healthcheck.from_docker(health),
        health_on_failure=document["health_on_failure"],
        labels=document.get("labels"),
    )
    hostname = document.get("hostname")
    if hostname is not None and not isinstance(hostname, str):
        raise ValueError(f"hostname must be text, not {hostname!r}")
    return dataclasses.replace(spec, hostname=hostname)


def decode_record(document: object, path: str) -> JournalRecord:
    """A record from its JSON document; ``JournalError`` naming ``path`` and the problem."""
    try:
        if not isinstance(document, dict):
            raise ValueError("not a JSON object")
        if document.get("version") != FORMAT_VERSION:
            raise ValueError(
                f"format version {document.get('version')!r} (expected {FORMAT_VERSION})"
            )
        created = _time(document["created"], "created")
        if created is None:
            raise ValueError("created is missing")
        exit_code = document["exit_code"]
        for key in ("exit_code", "pid", "pid_start_time"):
            number = document.get(key)
            if number is not None and (isinstance(number, bool) or not isinstance(number, int)):
                raise ValueError(f"{key} must be a number, not {number!r}")
        if not isinstance(document["manually_stopped"], bool):
            raise ValueError("manually_stopped must be true or false")
        count = document["restart_count"]
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise ValueError(f"restart_count must be a count, not {count!r}")
        for key in ("id", "name"):
            if not isinstance(document[key], str) or not document[key]:
                raise ValueError(f"{key} must be text")
        health = document["health"]
        if health not in (None, "starting", "healthy", "unhealthy"):
            raise ValueError(f"health {health!r} is not a health status")
        return JournalRecord(
            id=document["id"],
            name=document["name"],
            spec=_spec(document["spec"]),
            state=State(document["state"]),
            created=created,
            exit_code=exit_code,
            started_at=_time(document["started_at"], "started_at"),
            finished_at=_time(document["finished_at"], "finished_at"),
            restart_count=count,
            manually_stopped=document["manually_stopped"],
            health=health,
            pid=document.get("pid"),
            pid_start_time=document.get("pid_start_time"),
        )
    except (KeyError, TypeError, ValueError, InvalidArgumentError) as error:
        detail = f"missing field {error}" if isinstance(error, KeyError) else str(error)
        raise JournalError(path, f"not a container record: {detail}") from None
