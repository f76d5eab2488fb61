"""The engine's own descriptor limit: raised at start so a fleet is not capped at ~340.

Each running container with its output captured holds three descriptors in the
engine (a pidfd and two pipe ends; as root under cgroups, none more), so a soft
``RLIMIT_NOFILE`` of 1,024 -- the default of most shells and of systemd services --
caps an engine at about 336 running containers, far below what the machine can run.
Precedent: Go (1.19 and later) raises the soft limit to the hard one when any Go
program starts, dockerd and containerd included; nginx's ``worker_rlimit_nofile``
and systemd's ``LimitNOFILE=`` do the same by configuration.

Only the soft limit moves (the hard one needs CAP_SYS_RESOURCE), once per process,
and never down. Children inherit the raised soft limit, as dockerd's containers
inherited its limit before Docker 25.
"""

from __future__ import annotations

import dataclasses
import resource
import threading
from typing import Final, final

__all__ = ["DESCRIPTORS_PER_CONTAINER", "OpenFilesLimit", "raise_open_files_limit"]

# What a running container with captured output holds in the engine: a pidfd, the
# read ends of its stdout and stderr pipes (README, "Scale").
DESCRIPTORS_PER_CONTAINER: Final = 3

_lock = threading.Lock()


@final
@dataclasses.dataclass(frozen=True, slots=True)
class OpenFilesLimit:
    """``RLIMIT_NOFILE`` before and after ``raise_open_files_limit``."""

    before: int
    soft: int
    hard: int

    @property
    def raised(self) -> bool:
        return self.soft > self.before


def _as_int(value: int) -> int:
    """RLIM_INFINITY as the largest int the kernel takes for it (``nr_open`` caps it)."""
    return value if value != resource.RLIM_INFINITY else 2**63 - 1


def raise_open_files_limit() -> OpenFilesLimit:
    """Raise this process's soft ``RLIMIT_NOFILE`` to its hard limit (never lower it).

    A hard limit of infinity is taken as ``/proc/sys/fs/nr_open`` (what the kernel
    allows a process). Never raises: a refusal leaves the limit as it was.
    """
    with _lock:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        target = hard
        if hard == resource.RLIM_INFINITY:
            try:
                with open("/proc/sys/fs/nr_open", encoding="ascii") as nr_open:
                    target = int(nr_open.read().strip())
            except (OSError, ValueError):
                target = soft
        if soft != resource.RLIM_INFINITY and target > soft:
            try:
                resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            except (OSError, ValueError):
                target = soft
        else:
            target = soft
        return OpenFilesLimit(before=_as_int(soft), soft=_as_int(target), hard=_as_int(hard))
