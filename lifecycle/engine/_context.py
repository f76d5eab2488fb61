"""What the containers of one engine share: the one object an ``Engine`` hands its containers.

A container never sees its ``Engine``. It gets this context instead: whether
the engine is open, its task group (for restarts by policy), its runtime
drivers, the environment to start processes with, where events go, and the
fleet counters. The engine owns it and is the only one that moves its
lifecycle (``enter``, ``begin_closing``, ``close``), so the dependencies
point one way: engine -> container -> context.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Coroutine, Mapping
from typing import Any, final

from anyio.abc import TaskGroup

from lifecycle._errors import EngineClosedError
from lifecycle.engine._fleet import FleetCounters
from lifecycle.events import EventBus, make_event
from lifecycle.images import ImageStore
from lifecycle.journal import Journal
from lifecycle.model import ContainerSpec, State, Transition
from lifecycle.rootfs import Snapshotter
from lifecycle.runtime import RuntimeDriver, check_driver_name, create_driver

__all__ = ["EngineContext"]


@final
class EngineContext:
    """The engine-wide services a container uses; no container state lives here."""

    __slots__ = (
        "_drivers",
        "_environ",
        "_forget",
        "_loop_thread",
        "_task_group",
        "bus",
        "closed",
        "closing",
        "default_runtime",
        "fleet",
        "journal",
        "live_restore",
        "runtimes",
        "snapshotter",
        "store",
    )

    def __init__(
        self,
        *,
        environ: Mapping[str, str] | None,
        runtimes: tuple[str, ...],
        default_runtime: str,
        drivers: Mapping[str, RuntimeDriver],
        forget: Callable[[str], None],
        store: ImageStore | None = None,
        snapshotter: Snapshotter | None = None,
        journal: Journal | None = None,
        live_restore: bool = False,
    ) -> None:
        self._environ = environ
        # Every runtime name a container may choose; the built-in drivers are
        # made on first use (runtime._registry), the given ones are ready.
        self.runtimes = runtimes
        self.default_runtime = default_runtime
        self._drivers = dict(drivers)
        self._forget = forget
        self._task_group: TaskGroup | None = None
        self._loop_thread: int | None = None
        self.bus = EventBus()
        self.fleet = FleetCounters()
        self.closing = False
        self.closed = False
        # Images and their copy-on-write root filesystems (None: argv-only containers).
        self.store = store
        self.snapshotter = snapshotter
        # Each container's record on disk (Engine(root=...)); None: the engine forgets.
        self.journal = journal
        # Engine(live_restore=True): live containers outlive the engine where the driver can.
        self.live_restore = live_restore

    # -- the engine's lifecycle (the engine calls these) -------------------

    def enter(self, task_group: TaskGroup) -> None:
        """The engine's block began: open the drivers made so far in ``task_group``."""
        self._task_group = task_group
        self._loop_thread = threading.get_ident()
        for driver in self._drivers.values():
            driver.open(task_group, live_restore=self.live_restore)

    @property
    def entered(self) -> bool:
        return self._task_group is not None

    def opened_drivers(self) -> list[RuntimeDriver]:
        """The drivers in use (to close at shutdown)."""
        return list(self._drivers.values())

    # -- what containers ask for ----------------------------------------------

    def check_open(self) -> None:
        """``EngineClosedError`` unless the engine's block runs and is not shutting down."""
        if self._task_group is None or self.closing:
            state = "has not been entered" if self._task_group is None else "has shut down"
            raise EngineClosedError(
                f"the engine {state}; use it inside `async with Engine() as engine:`"
            )

    def on_event_loop_thread(self) -> bool:
        return threading.get_ident() == self._loop_thread and not self.closed

    def check_runtime(self, name: str | None) -> str:
        """The runtime a container asked for (None: the engine's default), if it exists."""
        return self.default_runtime if name is None else check_driver_name(name, self.runtimes)

    def driver(self, name: str) -> RuntimeDriver:
        """The driver called ``name`` (one of ``runtimes``), made and opened on first use."""
        driver = self._drivers.get(name)
        if driver is None:
            driver = self._drivers[name] = create_driver(name)
            if self._task_group is not None:
                driver.open(self._task_group, live_restore=self.live_restore)
        return driver

    def environment(self, spec: ContainerSpec) -> dict[str, str] | None:
        """The child's environment; None means exactly ours (no copy: the common case)."""
        if not spec.inherit_env:
            return dict(spec.env)
        if self._environ is None and not spec.env:
            return None
        base = os.environ if self._environ is None else self._environ
        return {**base, **spec.env}

    def spawn(self, function: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Run ``function()`` in the engine's task group (health monitors), unless closing."""
        if self._task_group is not None and not self.closing:
            self._task_group.start_soon(function)

    def schedule(
        self, function: Callable[[float], Coroutine[Any, Any, None]], delay: float
    ) -> None:
        """Run ``function(delay)`` in the engine's task group (policy restarts), unless closing."""
        if self._task_group is not None and not self.closing:
            self._task_group.start_soon(function, delay)

    def publish(  # noqa: PLR0917 -- the event's fields, in Event's order
        self,
        container_id: str,
        name: str,
        action: str,
        from_state: State | None,
        to_state: State | None,
        attributes: dict[str, str] | None = None,
    ) -> None:
        """Publish one event (built only when somebody listens)."""
        bus = self.bus
        bus.count()
        if bus.active:
            bus.publish(
                make_event(
                    action,
                    container_id=container_id,
                    name=name,
                    from_state=from_state,
                    to_state=to_state,
                    attributes=attributes,
                )
            )

    def record(self, transition: Transition) -> None:
        """A committed transition, for the fleet graph."""
        self.fleet.record(transition)

    def forget(self, container_id: str) -> None:
        """A container was removed: the engine no longer finds it; the fleet counts it."""
        self.fleet.note_removed()
        self._forget(container_id)
