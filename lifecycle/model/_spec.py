"""``ContainerSpec``: a container's checked configuration, built once by ``Engine.create``.

Everything a caller may get wrong is checked here, before anything exists
(DESIGN.md: bad input changes nothing); what comes out is frozen, so the
engine, the restart policy and the runtime driver all read one definition
that cannot change under them. It is the analogue of moby's
``container.Config`` + ``HostConfig`` and of the OCI runtime spec that a
driver derives from it.
"""

from __future__ import annotations

import dataclasses
import os
import signal
from collections.abc import Mapping
from types import MappingProxyType
from typing import Final, final

from lifecycle._errors import InvalidArgumentError
from lifecycle.model._checks import (
    DEFAULT_STOP_TIMEOUT,
    check_command,
    check_cwd,
    check_env,
    check_labels,
    check_limits,
    check_network,
    check_path,
    check_timeout,
    check_user,
    check_whole_number,
)
from lifecycle.model._health import Healthcheck, HealthOnFailure, check_health_on_failure
from lifecycle.model._restart import RestartPolicy
from lifecycle.model._signals import SignalLike, parse_signal

__all__ = [
    "DEFAULT_LOG_BYTES",
    "DEFAULT_PATH",
    "DEFAULT_RUNTIME",
    "DEFAULT_STOP_SIGNAL",
    "ContainerSpec",
]

# Docker, Podman, systemd's KillSignal and supervisord's stopsignal all default to SIGTERM.
DEFAULT_STOP_SIGNAL: Final = signal.SIGTERM
# Docker keeps unbounded json-file logs by default; we bound memory instead.
DEFAULT_LOG_BYTES: Final = 1024 * 1024
# Docker's PATH for a container whose image sets none (moby oci/defaults.go).
DEFAULT_PATH: Final = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# The driver that runs a plain argv as a supervised process group (runtime/native).
DEFAULT_RUNTIME: Final = "native"
# Most containers add no variables: they share one empty mapping (one object less each).
_NO_ENV: Final[Mapping[str, str]] = MappingProxyType({})


@final
@dataclasses.dataclass(frozen=True, slots=True)
class ContainerSpec:
    """What to run and how: checked, normalised, immutable.

    ``image`` and ``rootfs`` are reserved for the image store and the
    copy-on-write root filesystem (None: run ``command`` on the host's
    filesystem, as the native driver does).
    """

    command: tuple[str, ...]
    env: Mapping[str, str]
    inherit_env: bool
    interactive: bool
    cwd: str | None
    stop_signal: signal.Signals
    stop_timeout: float
    restart_policy: RestartPolicy
    capture_output: bool
    log_bytes: int
    log_file: str | None
    runtime: str = DEFAULT_RUNTIME
    image: str | None = None
    rootfs: str | None = None
    # Set by the engine once the id exists: the short id, as Docker's default Config.Hostname.
    hostname: str | None = None
    # Docker's Config.User (None: the image's, else root) and HostConfig.NetworkMode
    # (None: the driver's default; an OCI runtime's is "none", a loopback only).
    user: str | None = None
    network: str | None = None
    # Docker's HostConfig limits: Memory (bytes), PidsLimit, CpuShares, NanoCpus as CPUs.
    memory: int | None = None
    pids_limit: int | None = None
    cpu_shares: int | None = None
    cpus: float | None = None
    # Docker's health check (None: none; the image's applies unless overridden), and what
    # to do when it turns unhealthy (Podman's --health-on-failure).
    healthcheck: Healthcheck | None = None
    health_on_failure: HealthOnFailure = "none"
    # Docker's Config.Labels: the user's key/value metadata (filters, tools); never read here.
    labels: Mapping[str, str] = dataclasses.field(default_factory=lambda: _NO_ENV)

    @classmethod
    def build(
        cls,
        command: object,
        *,
        env: Mapping[str, str] | None = None,
        inherit_env: bool = True,
        interactive: bool = False,
        cwd: str | os.PathLike[str] | None = None,
        stop_signal: SignalLike = DEFAULT_STOP_SIGNAL,
        stop_timeout: float = DEFAULT_STOP_TIMEOUT,
        restart: str | RestartPolicy | None = None,
        capture_output: bool = True,
        log_bytes: int = DEFAULT_LOG_BYTES,
        log_file: str | os.PathLike[str] | None = None,
        runtime: str = DEFAULT_RUNTIME,
        image: str | None = None,
        rootfs: str | None = None,
        user: str | None = None,
        network: str | None = None,
        memory: int | None = None,
        pids_limit: int | None = None,
        cpu_shares: int | None = None,
        cpus: float | None = None,
        healthcheck: Healthcheck | None = None,
        health_on_failure: str = "none",
        labels: Mapping[str, str] | None = None,
    ) -> ContainerSpec:
        """Check every option (``InvalidArgumentError`` naming the first bad one); freeze them."""
        checked_memory, checked_pids, checked_shares, checked_cpus = check_limits(
            memory, pids_limit, cpu_shares, cpus
        )
        return cls(
            command=check_command(command),
            env=MappingProxyType(checked_env) if (checked_env := check_env(env)) else _NO_ENV,
            inherit_env=bool(inherit_env),
            interactive=bool(interactive),
            cwd=check_cwd(cwd),
            stop_signal=parse_signal(stop_signal),
            stop_timeout=check_timeout(stop_timeout, "stop_timeout"),
            restart_policy=RestartPolicy.parse(restart),
            capture_output=bool(capture_output),
            log_file=None if log_file is None else check_path(log_file, "log_file"),
            log_bytes=check_whole_number(log_bytes, "log_bytes", minimum=1),
            runtime=runtime,
            image=image,
            rootfs=rootfs,
            user=check_user(user),
            network=check_network(network),
            memory=checked_memory,
            pids_limit=checked_pids,
            cpu_shares=checked_shares,
            cpus=checked_cpus,
            healthcheck=_check_healthcheck(healthcheck),
            health_on_failure=check_health_on_failure(health_on_failure),
            labels=MappingProxyType(checked) if (checked := check_labels(labels)) else _NO_ENV,
        )


def _check_healthcheck(healthcheck: object) -> Healthcheck | None:
    """A ``Healthcheck`` (``["NONE"]`` is kept: it overrides the image's), or None."""
    if healthcheck is None or isinstance(healthcheck, Healthcheck):
        return healthcheck
    raise InvalidArgumentError(f"healthcheck must be a Healthcheck, not {healthcheck!r}")
