"""The containment layer: what keeps a container's processes together on this host.

A cgroup per container (``find_cgroup_root``, ``Cgroup``), the engine as a
child subreaper (``SubreaperLease``, ``reap_exited``), the engine's descriptor limit
(``raise_open_files_limit``), and what ``/proc``
says about processes (``procfs``: state, group, children). Runtime drivers use
it; it imports only the base modules.
"""

from __future__ import annotations

from lifecycle.containment import _procfs as procfs
from lifecycle.containment._cgroup import Cgroup, CgroupRoot, find_cgroup_root
from lifecycle.containment._limits import (
    DESCRIPTORS_PER_CONTAINER,
    OpenFilesLimit,
    raise_open_files_limit,
)
from lifecycle.containment._reaper import (
    UNKNOWN_EXIT_CODE,
    SubreaperLease,
    is_subreaper,
    pidfd_exited,
    readable_within,
    reap,
    reap_exited,
)

__all__ = [
    "DESCRIPTORS_PER_CONTAINER",
    "UNKNOWN_EXIT_CODE",
    "Cgroup",
    "CgroupRoot",
    "OpenFilesLimit",
    "SubreaperLease",
    "find_cgroup_root",
    "is_subreaper",
    "pidfd_exited",
    "procfs",
    "raise_open_files_limit",
    "readable_within",
    "reap",
    "reap_exited",
]
