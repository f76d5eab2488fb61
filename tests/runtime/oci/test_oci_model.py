"""The model-based test of tests/engine/test_model.py on a real PID 1 under runc: the same
random operations, outside stops and kills, policy restarts and invariants (/proc, the
freezer, exit codes, event walks), with a busybox image container.

PID 1 has no default action for TERM or HUP, so the shell traps them (exit 143, 129), and
it waits for a background reader, so a trap runs at once; its fifo is made in the
container's root filesystem, which the host sees at ``container.rootfs``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from lifecycle import Container, Engine, ImageStore

from ...engine.test_model import SOAK, LifecycleAgainstTheOS
from ...images.tools import busybox_system_rootfs, require
from ...oshelpers import children_of_this_process
from .test_oci_driver import require_oci_root

ZOMBIE_GRACE = 5.0
COMMAND = (
    "trap 'exit 143' TERM; trap 'exit 129' HUP; {background}"
    '(read line < /fifo; echo "got $line") & wait $!; exit 4'
)


class OciLifecycleAgainstTheOS(LifecycleAgainstTheOS):
    """The same machine; containers are busybox images under runc."""

    def make_engine(self) -> Engine:
        store = ImageStore(self.scratch / "store")
        rootfs = busybox_system_rootfs(self.scratch / "rootfs")
        self.call(lambda: store.import_rootfs(rootfs, "busybox", cmd=["sh"]))
        return Engine(store=store, runtime="runc")

    def new_container(self, forks: bool, policy: str) -> tuple[Container, Path]:
        command = ["sh", "-c", COMMAND.format(background="sleep 600 & " if forks else "")]
        container: Container = self.call(
            lambda: self.engine.create(image="busybox", command=command, restart=policy)
        )
        assert container.rootfs is not None
        fifo = Path(container.rootfs) / "fifo"
        os.mkfifo(fifo)
        return container, fifo

    def assert_no_zombies(self) -> None:
        """The runtime's commands (a `runc delete` after an exit) run in worker threads and
        are reaped there a moment after they exit: a zombie may be seen in passing, never
        one that stays."""
        deadline = time.monotonic() + ZOMBIE_GRACE
        while True:
            zombies = {pid: s for pid, s in children_of_this_process().items() if s == "Z"}
            if not zombies or time.monotonic() > deadline:
                break
            time.sleep(0.01)  # polling a condition with a deadline
        assert {} == zombies


def _require() -> None:
    require_oci_root()
    require("runc")


PROFILE = settings(
    max_examples=100 if SOAK else 20,
    stateful_step_count=60 if SOAK else 40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


class AsyncioOciModel(OciLifecycleAgainstTheOS):
    backend = "asyncio"


class TrioOciModel(OciLifecycleAgainstTheOS):
    backend = "trio"


@pytest.fixture(autouse=True)
def _needs_runc() -> None:
    _require()


TestOciModelAsyncio = pytest.mark.timeout(0 if SOAK else 300)(AsyncioOciModel.TestCase)
TestOciModelAsyncio.settings = PROFILE
TestOciModelTrio = pytest.mark.timeout(0 if SOAK else 300)(TrioOciModel.TestCase)
TestOciModelTrio.settings = PROFILE
