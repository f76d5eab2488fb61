"""The OCI bundle of one container: ``config.json`` from its spec, as Docker writes it.

runtime-spec 1.0 (``config.json``): the process (argv, env, cwd, user, no
terminal, Docker's default capabilities), the root (the container's overlay
rootfs, prepared by the engine), the hostname (the short id), the mounts
and the namespaces. Every default here is moby's ``oci/defaults.go``
(``DefaultLinuxSpec``) and ``oci/caps/defaults.go``, named where it is set.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from lifecycle._errors import InvalidArgumentError
from lifecycle.model import ContainerSpec

__all__ = ["DEFAULT_CAPABILITIES", "bundle_config", "resolve_user", "write_bundle"]

OCI_VERSION: Final = "1.0.2"
# moby oci/caps/defaults.go DefaultCapabilities.
DEFAULT_CAPABILITIES: Final = (
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
)
# moby oci/defaults.go: paths masked (bind-mounted over with /dev/null or an empty
# read-only tmpfs) and made read-only in every container.
MASKED_PATHS: Final = (
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
)
READONLY_PATHS: Final = (
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
)
# moby oci/defaults.go DefaultLinuxSpec().Mounts; /sys read-only as with no --privileged.
DEFAULT_MOUNTS: Final[tuple[dict[str, Any], ...]] = (
    {"destination": "/proc", "type": "proc", "source": "proc",
     "options": ["nosuid", "noexec", "nodev"]},
    {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
     "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
    {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
     "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
    {"destination": "/sys", "type": "sysfs", "source": "sysfs",
     "options": ["nosuid", "noexec", "nodev", "ro"]},
    {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
     "options": ["ro", "nosuid", "noexec", "nodev"]},
    {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
     "options": ["nosuid", "noexec", "nodev"]},
    {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",  # noqa: S108 -- its own
     "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
)  # fmt: skip


def _lookup(path: Path, name: str) -> tuple[int, int] | None:
    """(field 3, field 4) of ``name``'s line in an /etc/passwd or /etc/group file."""
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return None
    for line in lines:
        fields = line.split(":")
        if len(fields) >= 4 and fields[0] == name:
            try:
                return int(fields[2]), int(fields[3] or 0)
            except ValueError:
                return None
    return None


def resolve_user(user: str | None, rootfs: str) -> tuple[int, int]:
    """The image's ``User`` (``name``, ``uid``, ``name:group``, ``uid:gid``) as (uid, gid).

    Names are looked up in the image's own ``/etc/passwd`` and ``/etc/group``
    (never the host's), as Docker does; files that are links are not
    followed out of the image (the lookup reads them below ``rootfs`` only
    when they are regular files). ``InvalidArgumentError`` names a user or
    group the image does not know.
    """
    if not user:
        return 0, 0
    name, _, group = user.partition(":")
    etc = Path(rootfs) / "etc"

    def regular(path: Path) -> Path:
        return path if path.is_file() and not path.is_symlink() else Path("/nonexistent")

    if name.isdigit():
        uid, gid = int(name), 0
        found = None
    else:
        found = _lookup(regular(etc / "passwd"), name)
        if found is None:
            raise InvalidArgumentError(f"user {name!r} is not in the image's /etc/passwd")
        uid, gid = found
    if group:
        if group.isdigit():
            gid = int(group)
        else:
            entry = _lookup(regular(etc / "group"), group)
            if entry is None:
                raise InvalidArgumentError(f"group {group!r} is not in the image's /etc/group")
            gid = entry[0]
    return uid, gid


def bundle_config(
    spec: ContainerSpec,
    environment: Mapping[str, str],
    *,
    cgroups_path: str,
    user: tuple[int, int] = (0, 0),
) -> dict[str, Any]:
    """The ``config.json`` document for ``spec`` (whose ``rootfs`` is the prepared root)."""
    if spec.rootfs is None:
        raise InvalidArgumentError("an OCI runtime runs containers made from an image")
    namespaces = [{"type": kind} for kind in ("pid", "mount", "ipc", "uts")]
    if spec.network != "host":
        # A new network namespace holds only a loopback device: Docker's --network none.
        namespaces.append({"type": "network"})
    capabilities = list(DEFAULT_CAPABILITIES)
    uid, gid = user
    resources: dict[str, Any] = {"devices": [{"allow": False, "access": "rwm"}]}
    if spec.memory is not None:
        resources["memory"] = {"limit": spec.memory}
    if spec.pids_limit is not None:
        resources["pids"] = {"limit": spec.pids_limit}
    if spec.cpu_shares is not None or spec.cpus is not None:
        cpu: dict[str, int] = {}
        if spec.cpu_shares is not None:
            cpu["shares"] = spec.cpu_shares
        if spec.cpus is not None:  # Docker's --cpus: a quota per 100 ms period
            cpu["period"] = 100_000
            cpu["quota"] = round(spec.cpus * 100_000)
        resources["cpu"] = cpu
    return {
        "ociVersion": OCI_VERSION,
        "process": {
            "terminal": False,
            "user": {"uid": uid, "gid": gid},
            "args": list(spec.command),
            "env": [f"{key}={value}" for key, value in environment.items()],
            "cwd": spec.cwd or "/",
            "capabilities": {
                "bounding": capabilities,
                "effective": capabilities,
                "permitted": capabilities,
            },
            "noNewPrivileges": False,
        },
        "root": {"path": spec.rootfs, "readonly": False},
        "hostname": spec.hostname or "",
        "mounts": [dict(mount) for mount in DEFAULT_MOUNTS],
        "linux": {
            "namespaces": namespaces,
            "cgroupsPath": cgroups_path,
            "resources": resources,
            "maskedPaths": list(MASKED_PATHS),
            "readonlyPaths": list(READONLY_PATHS),
        },
    }


def write_bundle(directory: Path, config: Mapping[str, Any]) -> None:
    """Make the bundle directory (0700: it names the container's root) with its config.json.

    No fsync: a bundle is scratch for one run (made anew at each start, deleted after the
    exit), and an fsync on the disk under /run cost milliseconds per start.
    """
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(
        directory / "config.json", os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600
    )
    with os.fdopen(fd, "wb") as file:
        file.write(json.dumps(config).encode())
