"""The engine drives any RuntimeDriver: pure engine logic checked on a fake one (no processes).

What the engine must do with a driver, whatever the driver is: hand it the
frozen spec, send the stop signal through the handle, take the exit code the
driver reports, pause through freeze/thaw, open it at entry and close it at
exit. Claims about the OS are tested on the native driver, never here.
"""

from __future__ import annotations

import dataclasses
import signal
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import anyio
import anyio.lowlevel
import pytest
from anyio.abc import TaskGroup

from lifecycle import Engine, InvalidArgumentError, PauseTimeoutError, SpawnError, State
from lifecycle.journal import Journal, JournalRecord
from lifecycle.model import ContainerSpec
from lifecycle.runtime import OutputSink, RuntimeDriver, RuntimeHandle, SpawnFailure

pytestmark = pytest.mark.anyio


class FakeHandle:
    """A 'process' that exits when told to, or of a signal its driver calls fatal."""

    def __init__(self, driver: FakeDriver, pid: int, on_exit: Callable[[], None]) -> None:
        self.driver = driver
        self.pid = pid
        self.start_time: int | None = 5_000 + pid
        self.exit_code: int | None = None
        self.oom_killed = False
        self.signals: list[signal.Signals] = []
        self.frozen = False
        self.closed = False
        self._on_exit = on_exit
        self._exited = anyio.Event()

    @property
    def exited(self) -> bool:
        return self._exited.is_set()

    async def wait(self) -> int:
        await self._exited.wait()
        assert self.exit_code is not None
        return self.exit_code

    def signal(self, sig: signal.Signals) -> bool:
        self.signals.append(sig)
        if sig in self.driver.fatal and not self.frozen:
            self.driver.exit_later(self, 128 + sig)
        return True

    def has_exited_now(self) -> bool:
        return self.exited

    def stopped_now(self) -> bool:
        return self.frozen

    def frozen_now(self) -> bool | None:
        return None if self.exited else self.frozen

    async def freeze(self, timeout: float) -> bool | None:
        await anyio.lowlevel.checkpoint()
        self.frozen = self.driver.can_freeze
        return self.frozen

    async def thaw(self) -> None:
        self.frozen = False
        self.signals.append(signal.SIGCONT)

    def close(self) -> None:
        self.closed = True

    def exit(self, code: int) -> None:
        """The driver learned of the exit: report it, as a driver must, exactly once."""
        assert not self.exited
        self.exit_code = code
        self._exited.set()
        self.close()
        self._on_exit()


class FakeDriver:
    """Records what the engine asks of it."""

    def __init__(self, name: str = "fake") -> None:
        self._name = name
        self.task_group: TaskGroup | None = None
        self.spawned: list[tuple[ContainerSpec, Mapping[str, str] | None, FakeHandle]] = []
        self.closed_with: float | None = None
        self.fatal = {signal.SIGTERM, signal.SIGKILL}
        self.can_freeze = True
        self.fail_with: SpawnFailure | None = None
        self.starting_now = 0
        self.most_starting = 0
        self.probes: list[tuple[str, ...]] = []
        self.probe_results: list[tuple[int, bytes]] = []
        self.released: list[tuple[str, int | None, int | None]] = []
        self.live_restore = False
        self.can_outlive = True  # detach lets go of a live container (live_restore)
        self.detached: list[FakeHandle] = []
        self.adopted: list[FakeHandle] = []
        # adopt's answers by container id: a running pid (a handle is made) or an exit code.
        self.to_adopt: dict[str, tuple[str, int]] = {}

    @property
    def name(self) -> str:
        return self._name

    @property
    def containment(self) -> str:
        return "none (a fake)"

    def open(self, task_group: TaskGroup, *, live_restore: bool = False) -> None:
        self.task_group = task_group
        self.live_restore = live_restore

    def check_spec(self, spec: ContainerSpec) -> None:
        """Any spec will do: nothing here touches the OS."""

    @contextmanager
    def starting(self) -> Iterator[None]:
        self.starting_now += 1
        self.most_starting = max(self.most_starting, self.starting_now)
        try:
            yield
        finally:
            self.starting_now -= 1

    async def spawn(
        self,
        spec: ContainerSpec,
        *,
        environment: Mapping[str, str] | None,
        output: OutputSink,
        on_exit: Callable[[], None],
    ) -> FakeHandle:
        await anyio.lowlevel.checkpoint()
        if self.fail_with is not None:
            raise self.fail_with
        handle = FakeHandle(self, 10_000 + len(self.spawned), on_exit)
        output.feed("stdout", f"spawned {spec.command[0]}\n".encode())
        self.spawned.append((spec, environment, handle))
        return handle

    def exit_later(self, handle: FakeHandle, code: int) -> None:
        """Exits arrive from the driver's own task, as they do from a real one."""
        assert self.task_group is not None

        async def report() -> None:
            await anyio.lowlevel.checkpoint()
            if not handle.exited:
                handle.exit(code)

        self.task_group.start_soon(report)

    async def probe(
        self,
        handle: RuntimeHandle,
        spec: ContainerSpec,
        argv: Sequence[str],
        *,
        environment: Mapping[str, str] | None,
        timeout: float,
    ) -> tuple[int, bytes]:
        """Health probes answer from ``probe_results`` (then 0), as a real one would."""
        await anyio.lowlevel.checkpoint()
        self.probes.append(tuple(argv))
        return self.probe_results.pop(0) if self.probe_results else (0, b"ok\n")

    async def release_leftovers(
        self, container_id: str, *, pid: int | None, start_time: int | None
    ) -> None:
        await anyio.lowlevel.checkpoint()
        self.released.append((container_id, pid, start_time))

    def detach(self, handle: RuntimeHandle) -> bool:
        if not (self.live_restore and self.can_outlive and isinstance(handle, FakeHandle)):
            return False
        handle.close()
        self.detached.append(handle)
        return True

    async def adopt(
        self,
        container_id: str,
        *,
        pid: int,
        start_time: int | None,
        capture_output: bool,
        output: OutputSink,
        on_exit: Callable[[], None],
    ) -> RuntimeHandle | int | None:
        await anyio.lowlevel.checkpoint()
        answer = self.to_adopt.pop(container_id, None)
        if answer is None:
            return None
        kind, value = answer
        if kind == "exited":
            return value
        handle = FakeHandle(self, value, on_exit)
        if handle.pid != pid or handle.start_time != start_time:
            return None  # not the process the journal knew
        self.adopted.append(handle)
        return handle

    async def aclose(self, grace: float) -> None:
        self.closed_with = grace


def test_a_fake_driver_satisfies_the_protocols() -> None:
    """The fake is a RuntimeDriver and its handles are RuntimeHandles (runtime_checkable)."""
    driver = FakeDriver()
    assert isinstance(driver, RuntimeDriver)
    assert isinstance(FakeHandle(driver, 1, lambda: None), RuntimeHandle)


async def test_the_engine_runs_a_container_on_the_driver_it_names() -> None:
    """create(runtime=) picks the driver; it gets the frozen spec and the environment; the
    stop signal goes through the handle; the exit code is the one the driver reports."""
    driver = FakeDriver()
    with anyio.fail_after(10):
        async with Engine(drivers=[driver], environ={"A": "1"}) as engine:
            assert driver.task_group is not None  # opened at entry
            container = await engine.create(["server", "--port", "80"], runtime="fake")
            assert "fake" == container.driver
            await container.start()
            spec, environment, handle = driver.spawned[0]
            assert ("server", "--port", "80") == spec.command
            assert "fake" == spec.runtime
            assert {"A": "1"} == environment
            assert (State.RUNNING, handle.pid) == (container.state, container.pid)
            assert ["spawned server"] == [line.text for line in container.logs()]
            await container.stop()
            assert [signal.SIGTERM] == handle.signals
            assert (State.STOPPED, 143) == (container.state, container.exit_code)
    assert driver.closed_with is not None  # closed at exit, with a grace period


async def test_the_default_runtime_is_the_engines() -> None:
    """Engine(runtime="fake") makes every create use it unless create says otherwise."""
    driver = FakeDriver()
    with anyio.fail_after(10):
        async with Engine(drivers=[driver], runtime="fake") as engine:
            container = await engine.create(["job"])
            native = await engine.create(["true"], runtime="native")
            assert ("fake", "native") == (container.driver, native.driver)


async def test_an_exit_the_driver_reports_is_a_die_and_the_policy_restarts() -> None:
    """An exit nobody asked for comes from the driver (on_exit): die with its code, and the
    restart policy starts a new process through the same driver."""
    driver = FakeDriver()
    with anyio.fail_after(10):
        async with Engine(drivers=[driver]) as engine:
            container = await engine.create(["job"], runtime="fake", restart="on-failure:1")
            async with engine.subscribe(actions={"die", "start"}) as events:
                await container.start()
                driver.spawned[0][2].exit(3)
                seen = [await events.__anext__() for _ in range(3)]
            assert ["start", "die", "start"] == [event.action for event in seen]
            assert "3" == seen[1].attributes["exitCode"]
            assert (State.RUNNING, 1, 2) == (
                container.state,
                container.restart_count,
                len(driver.spawned),
            )
            assert driver.most_starting >= 1  # every spawn was announced as a start
            await container.kill()


async def test_pause_goes_through_freeze_and_a_failed_freeze_is_a_timeout() -> None:
    """pause() commits only when the driver confirms the freeze; unpause thaws; a freeze the
    driver cannot confirm is PauseTimeoutError with the container still running."""
    driver = FakeDriver()
    with anyio.fail_after(10):
        async with Engine(drivers=[driver], observe_interval=None) as engine:
            container = await engine.create(["job"], runtime="fake")
            await container.start()
            handle = driver.spawned[0][2]
            await container.pause()
            assert (State.PAUSED, True) == (container.state, handle.frozen)
            await container.unpause()
            assert (State.RUNNING, False) == (container.state, handle.frozen)
            driver.can_freeze = False
            with pytest.raises(PauseTimeoutError):
                await container.pause()
            assert State.RUNNING == container.state
            await container.kill()


async def test_a_spawn_failure_of_the_driver_is_a_spawn_error() -> None:
    """SpawnFailure from a driver becomes SpawnError with its exit code; nothing changes."""
    driver = FakeDriver()
    driver.fail_with = SpawnFailure("image has no such binary", 127)
    with anyio.fail_after(10):
        async with Engine(drivers=[driver]) as engine:
            container = await engine.create(["nothing"], runtime="fake")
            with pytest.raises(SpawnError, match="image has no such binary") as raised:
                await container.start()
            assert 127 == raised.value.exit_code
            assert (State.CREATED, 127) == (container.state, container.exit_code)


async def test_an_unknown_runtime_is_refused_and_nothing_is_created() -> None:
    """A runtime name no driver has: InvalidArgumentError naming the ones there are."""
    with anyio.fail_after(10):
        async with Engine() as engine:
            with pytest.raises(InvalidArgumentError, match=r"'kata'.*crun, native, runc"):
                await engine.create(["true"], runtime="kata")
            assert [] == engine.containers()
    with pytest.raises(InvalidArgumentError, match="unknown runtime"):
        Engine(runtime="nope")
    with pytest.raises(InvalidArgumentError, match="two drivers"):
        Engine(drivers=[FakeDriver(), FakeDriver()])
    with pytest.raises(InvalidArgumentError, match="must be RuntimeDrivers"):
        Engine(drivers=[object()])  # type: ignore[list-item]


async def test_restore_asks_the_driver_to_release_what_a_dead_engine_left(
    tmp_path: Path,
) -> None:
    """Pure engine logic of restore, on records a crash left: each container's driver gets
    release_leftovers with the pid and start time its record names (None for one that was
    not running); a running one comes back stopped with 255; a record of a runtime this
    engine does not have is left on disk, not restored, not deleted."""
    journal = Journal(tmp_path)
    now = datetime.now(UTC)
    running, idle, ghost = (f"{digit}" * 64 for digit in "abc")
    journal.write(
        JournalRecord(
            id=running, name="web", spec=ContainerSpec.build(["server"], runtime="fake"),
            state=State.RUNNING, created=now, started_at=now, pid=10_000, pid_start_time=15_000,
        )
    )  # fmt: skip
    journal.write(
        JournalRecord(
            id=idle, name="idle", spec=ContainerSpec.build(["job"], runtime="fake"),
            state=State.CREATED, created=now,
        )
    )  # fmt: skip
    journal.write(
        JournalRecord(
            id=ghost, name="ghost", spec=ContainerSpec.build(["job"], runtime="ghost"),
            state=State.CREATED, created=now,
        )
    )  # fmt: skip
    driver = FakeDriver()
    with anyio.fail_after(10):
        async with Engine(root=tmp_path, drivers=[driver]) as engine:
            assert sorted([(running, 10_000, 15_000), (idle, None, None)]) == sorted(
                driver.released
            )
            web = engine.get("web")
            assert (State.STOPPED, 255, None) == (web.state, web.exit_code, web.pid)
            assert State.CREATED is engine.get("idle").state
            assert ["web", "idle"] == sorted((c.name for c in engine.containers()), reverse=True)
            assert (State.STOPPED, 255) == (
                journal.read(running).state,
                journal.read(running).exit_code,
            )
            await web.start()  # the driver runs it again
            assert web.pid == driver.spawned[0][2].pid
    assert journal.read(ghost).name == "ghost"


async def test_live_restore_leaves_what_the_driver_can_keep_and_adopts_it_again(
    tmp_path: Path,
) -> None:
    """Pure engine logic of live_restore: at shutdown each live container its driver can
    detach is left running (no signal sent, its record still says running, with its pid);
    the next engine adopts what its driver finds (running, same pid, no release_leftovers),
    and that run's exit is then committed as any exit is (die, exit code). One the
    driver finds nothing of is released and comes back stopped with 255."""
    first = FakeDriver()
    with anyio.fail_after(10):
        async with Engine(root=tmp_path, drivers=[first], live_restore=True) as engine:
            kept = await engine.create(["server"], runtime="fake", name="kept")
            lost = await engine.create(["server"], runtime="fake", name="lost")
            await kept.start()
            await lost.start()
            kept_handle, lost_handle = (handle for _, _, handle in first.spawned)
    assert [kept_handle, lost_handle] == first.detached
    assert ([], []) == (kept_handle.signals, lost_handle.signals)
    journal = Journal(tmp_path)
    assert (State.RUNNING, kept_handle.pid) == (
        journal.read(kept.id).state,
        journal.read(kept.id).pid,
    )

    second = FakeDriver()
    second.to_adopt[kept.id] = ("running", kept_handle.pid)
    with anyio.fail_after(10):
        async with Engine(root=tmp_path, drivers=[second], live_restore=True) as engine:
            back = engine.get("kept")
            assert (State.RUNNING, kept_handle.pid) == (back.state, back.pid)
            assert [lost.id] == [released for released, _, _ in second.released]
            assert (State.STOPPED, 255) == (engine.get("lost").state, engine.get("lost").exit_code)
            (adopted,) = second.adopted
            async with engine.subscribe(container="kept") as events:
                adopted.exit(4)
                event = await events.__anext__()
            assert ("die", "4") == (event.action, event.attributes["exitCode"])
            assert (State.STOPPED, 4) == (back.state, back.exit_code)


async def test_live_restore_stops_what_the_driver_cannot_keep_and_takes_a_kept_exit_code(
    tmp_path: Path,
) -> None:
    """A driver that cannot keep a container (native's): the shutdown stops it. A run
    that ended while no engine ran, whose exit code the driver kept, comes back stopped
    with that code, and the restart policy judges that code (moby with --live-restore:
    on-failure starts a run that failed, not one that succeeded)."""
    first = FakeDriver()
    first.can_outlive = False
    with anyio.fail_after(10):
        async with Engine(root=tmp_path, drivers=[first], live_restore=True) as engine:
            failed = await engine.create(["job"], runtime="fake", restart="on-failure")
            succeeded = await engine.create(["job"], runtime="fake", restart="on-failure")
            await failed.start()
            handle = first.spawned[0][2]
    assert [] == first.detached
    assert [signal.SIGTERM] == handle.signals
    # As a crash leaves them: running, with the pid of a run whose exit the driver kept.
    journal = Journal(tmp_path)
    for container in (failed, succeeded):
        record = journal.read(container.id)
        journal.write(
            dataclasses.replace(
                record, state=State.RUNNING, started_at=record.created, pid=77, pid_start_time=1
            )
        )
    second = FakeDriver()
    second.to_adopt[failed.id] = ("exited", 9)
    second.to_adopt[succeeded.id] = ("exited", 0)
    with anyio.fail_after(10):
        async with Engine(root=tmp_path, drivers=[second], live_restore=True) as engine:
            assert (State.STOPPED, 0) == (
                engine.get(succeeded.id).state,
                engine.get(succeeded.id).exit_code,
            )
            assert State.RUNNING is engine.get(failed.id).state  # on-failure: started again
            assert 1 == len(second.spawned)


def test_live_restore_needs_a_root_and_a_bool() -> None:
    with pytest.raises(InvalidArgumentError, match="live_restore needs root"):
        Engine(live_restore=True)
    with pytest.raises(InvalidArgumentError, match="live_restore must be True or False"):
        Engine(live_restore="yes")  # type: ignore[arg-type]
