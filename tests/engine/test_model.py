"""Model-based test against the real OS: random operations on several containers, and after
every step the engine's claims are checked against /proc, the exit codes against what the
signals imply, and each container's events against the transition table.

Hypothesis drives a RuleBasedStateMachine; the engine runs in an anyio blocking portal (one
per backend). CI runs a bounded profile; `make soak` (LIFECYCLE_SOAK=1) runs many more steps.
"""

from __future__ import annotations

import contextlib
import os
import signal
import tempfile
from collections.abc import Awaitable, Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any, NamedTuple, TypeVar, overload

import anyio
import anyio.from_thread
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, invariant, rule

from lifecycle import (
    TRANSITIONS,
    Container,
    Engine,
    Event,
    InvalidTransitionError,
    State,
    Subscription,
    Trigger,
)
from lifecycle.model import NO_OPS

from ..oshelpers import (
    children_of_this_process,
    eventually,
    group_alive,
    paused_states,
    proc_state,
    whole_group_paused,
    whole_group_stopped,
    write_freezer,
)

SOAK = bool(os.environ.get("LIFECYCLE_SOAK"))
LIVE = {State.RUNNING, State.PAUSED}
# Exit codes the test can predict: sh blocked reading a fifo handles no signal.
EXIT_BY_SIGNAL = {signal.SIGKILL: 137, signal.SIGTERM: 143, signal.SIGHUP: 129}
T = TypeVar("T")
ACTION_TO_TRIGGER = {"destroy": Trigger.REMOVE}


class Before(NamedTuple):
    """What held just before an operation began."""

    state: State
    restarting: bool
    pid: int | None


class LifecycleAgainstTheOS(RuleBasedStateMachine):
    """Random lifecycles of a few containers; the OS is the oracle."""

    backend = "asyncio"
    containers = Bundle("containers")

    def __init__(self) -> None:
        super().__init__()
        self.stack = ExitStack()
        self.scratch = Path(self.stack.enter_context(tempfile.TemporaryDirectory()))
        self.portal = self.stack.enter_context(
            anyio.from_thread.start_blocking_portal(self.backend)
        )
        self.engine: Engine = self.stack.enter_context(
            self.portal.wrap_async_context_manager(self.make_engine())
        )
        self.events: Subscription = self.stack.enter_context(
            self.portal.wrap_async_context_manager(self.engine.subscribe(lossless=True))
        )
        self.all: list[Container] = []
        self.fifos: dict[str, Path] = {}
        self.groups: dict[str, set[int]] = {}
        self.walks: dict[str, list[Event]] = {}

    def teardown(self) -> None:
        self.stack.close()
        leftovers = dict(children_of_this_process())
        assert {} == leftovers, leftovers

    # -- what a subclass for another driver changes (tests/runtime/oci/test_oci_model.py) --

    def make_engine(self) -> Engine:
        return Engine()

    def new_container(self, forks: bool, policy: str) -> tuple[Container, Path]:
        """A shell that echoes a line from its fifo and exits 4 (with ``forks``, beside a
        background sleep); returns it and the fifo's path on this host."""
        fifo = self.scratch / f"fifo{len(self.all)}"
        os.mkfifo(fifo)
        background = "sleep 600 & " if forks else ""
        command = ["sh", "-c", f'{background}read line < {fifo}; echo "got $line"; exit 4']
        container: Container = self.call(lambda: self.engine.create(command, restart=policy))
        return container, fifo

    def assert_no_zombies(self) -> None:
        """No child of this process is a zombie: every exit was reaped when committed."""
        zombies = {pid: s for pid, s in children_of_this_process().items() if s == "Z"}
        assert {} == zombies, {pid: _comm(pid) for pid in zombies}

    # -- helpers ---------------------------------------------------------------------

    @overload
    def call(self, function: Callable[..., Awaitable[T]], *args: object) -> T: ...

    @overload
    def call(self, function: Callable[..., T], *args: object) -> T: ...

    def call(self, function: Callable[..., Any], *args: object) -> Any:
        return self.portal.call(function, *args)

    def state_of(self, container: Container) -> State:
        """The state as read on the event loop's thread, where a read first looks at /proc."""
        return self.call(lambda: container.state)

    def remember_group(self, container: Container) -> None:
        if container.pid is not None:
            self.groups.setdefault(container.id, set()).add(container.pid)

    def attempt(
        self,
        container: Container,
        trigger: Trigger,
        operation: Callable[[], Awaitable[object]],
        *,
        cancels_a_restart: bool = False,
        forced: bool = False,
    ) -> Before | None:
        """Run an operation; it must succeed exactly when the table (or a no-op) allows it.

        The state is read and the operation begun in one go on the event loop, once no
        policy restart is under way (one can move a container at any await), and so is
        the read after a refusal. ``cancels_a_restart``: the operation is also accepted on
        a stopped container with a restart pending, which it cancels (moby counts a
        restarting container as running for stop, kill and rm). ``forced``: a remove
        with ``force=True``, also accepted on a running or paused container (killed
        first: moby daemon/delete.go). Returns what held before if the operation was
        accepted, else None.
        """

        async def begin() -> tuple[Before, State | None]:
            await anyio.wait_all_tasks_blocked()
            # A policy restart may hold the lock (forking in a thread): wait it out. No
            # checkpoint between the last look and the operation taking the lock.
            await eventually(lambda: not container._lock.locked())
            before = Before(container.state, container.restarting, container.pid)
            try:
                await operation()
            except InvalidTransitionError:
                return before, container.state
            return before, None

        before, after_refusal = self.call(begin)
        legal = trigger in TRANSITIONS[before.state] or trigger in NO_OPS.get(before.state, ())
        legal = legal or (cancels_a_restart and before.restarting)
        legal = legal or (forced and before.state in {State.RUNNING, State.PAUSED})
        if after_refusal is not None:
            assert not legal, f"{trigger} refused from {before}"
            assert before.state == after_refusal
            return None
        assert legal, f"{trigger} accepted from {before}"
        self.remember_group(container)
        return before

    async def _wait_exit(self, container: Container) -> None:
        with anyio.fail_after(10):
            await container.wait()

    async def _wait_gone(self, container: Container, pid: int) -> None:
        """Until the exit of process ``pid`` is committed (a policy may start a new one)."""
        await eventually(lambda: container.pid != pid)

    def ended_unasked(self, container: Container, pid: int, exit_code: int) -> None:
        """After an exit nobody asked the engine for: committed with its code; the restart
        policy may bring the container back."""
        self.call(self._wait_gone, container, pid)
        state = self.state_of(container)
        if container.restart_policy.name == "no":
            assert State.STOPPED == state
        else:
            assert state in {State.STOPPED, State.RUNNING}
        assert exit_code == container.exit_code

    # -- rules -----------------------------------------------------------------------------

    @rule(
        target=containers,
        forks=st.booleans(),
        policy=st.sampled_from(["no", "no", "on-failure:2", "always"]),
    )
    def create(self, forks: bool, policy: str) -> Container:
        """A shell that echoes a line from its fifo and exits 4; with ``forks`` it has a
        second member in its group (a background sleep) that must be stopped with it,
        paused with it and gone with it. A restart policy brings it back after an exit
        nobody asked for (100 ms later, then 200 ms...), racing the next rules."""
        container, fifo = self.new_container(forks, policy)
        self.fifos[container.id] = fifo
        self.all.append(container)
        return container

    @rule(container=containers)
    def start(self, container: Container) -> None:
        self.attempt(container, Trigger.START, container.start)

    @rule(container=containers)
    def pause(self, container: Container) -> None:
        self.attempt(container, Trigger.PAUSE, container.pause)

    @rule(container=containers)
    def unpause(self, container: Container) -> None:
        self.attempt(container, Trigger.UNPAUSE, container.unpause)

    @rule(container=containers)
    def stop(self, container: Container) -> None:
        before = self.attempt(container, Trigger.STOP, lambda: container.stop(timeout=0.5))
        if before is not None:  # live: stopped; else a no-op that cancels any restart
            assert not container.restarting
            if before.state in LIVE:
                assert (State.STOPPED, 143) == (self.state_of(container), container.exit_code)
            else:
                assert before.state == self.state_of(container)

    @rule(container=containers, sig=st.sampled_from(sorted(EXIT_BY_SIGNAL)))
    def kill(self, container: Container, sig: signal.Signals) -> None:
        # SIGKILL and the stop signal mean "stop it": the policy must not undo that, and
        # on a container waiting to restart they cancel the restart. Other signals leave
        # the policy alone: the process dies of SIGHUP and the policy may restart it.
        stopping = sig in (signal.SIGKILL, signal.SIGTERM)
        before = self.attempt(
            container, Trigger.KILL, lambda: container.kill(sig), cancels_a_restart=stopping
        )
        if before is None:
            return
        if before.state is State.STOPPED:  # it cancelled a pending restart
            assert (State.STOPPED, False) == (self.state_of(container), container.restarting)
        elif stopping:
            self.call(self._wait_exit, container)
            assert (State.STOPPED, EXIT_BY_SIGNAL[sig]) == (
                self.state_of(container),
                container.exit_code,
            )
        else:
            assert before.pid is not None
            self.ended_unasked(container, before.pid, EXIT_BY_SIGNAL[sig])

    @rule(container=containers)
    def restart(self, container: Container) -> None:
        self.attempt(container, Trigger.RESTART, lambda: container.restart(timeout=0.5))

    @rule(container=containers, force=st.booleans())
    def remove(self, container: Container, force: bool) -> None:
        if self.attempt(
            container, Trigger.REMOVE, lambda: container.remove(force=force), forced=force
        ):
            assert State.DELETED == self.state_of(container)

    # What a rule draws must not depend on the containers' states: with two
    # operations racing (the `concurrent` rule) a replayed example can end in
    # another state, and Hypothesis needs its draws to replay identically.
    # Rules that need a state check it and do nothing otherwise.

    @rule(container=containers)
    def exits_by_itself(self, container: Container) -> None:
        if self.state_of(container) is not State.RUNNING:
            return
        pid = container.pid
        assert pid is not None
        token = f"go-{pid}"
        with self.fifos[container.id].open("w") as fifo:  # the child echoes it and exits 4
            fifo.write(f"{token}\n")
        self.ended_unasked(container, pid, 4)
        # Written just before the exit, captured before the die was announced.
        lines = self.call(container.logs)
        assert f"got {token}" in [line.text for line in lines], lines

    @rule(container=containers)
    def killed_from_outside(self, container: Container) -> None:
        if self.state_of(container) not in LIVE:
            return
        pid = container.pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        # Frozen by a cgroup v1 freezer, it dies only once thawed (the kernel's rule).
        write_freezer(pid, "THAWED")
        self.ended_unasked(container, pid, 137)

    @rule(container=containers)
    def stopped_and_continued_from_outside(self, container: Container) -> None:
        if self.state_of(container) is not State.RUNNING:
            return
        assert container.pid is not None
        os.killpg(container.pid, signal.SIGSTOP)
        os.killpg(container.pid, signal.SIGCONT)

    @rule(container=containers)
    def stopped_from_outside(self, container: Container) -> None:
        """SIGSTOP from outside, left in place: once the group shows T it reads paused."""
        if self.state_of(container) is not State.RUNNING:
            return
        pid = container.pid
        assert pid is not None
        os.killpg(pid, signal.SIGSTOP)
        self.call(eventually, lambda: whole_group_stopped(pid))
        assert State.PAUSED == self.state_of(container)

    @rule(container=containers)
    def continued_from_outside(self, container: Container) -> None:
        """Resumed from outside (SIGCONT, and its freezer thawed if it has one): it reads
        running, whoever paused it."""
        if self.state_of(container) is not State.PAUSED:
            return
        assert container.pid is not None
        write_freezer(container.pid, "THAWED")
        os.killpg(container.pid, signal.SIGCONT)
        assert State.RUNNING == self.state_of(container)

    @rule(
        container=containers,
        first=st.sampled_from(["start", "pause", "unpause", "stop", "restart"]),
        second=st.sampled_from(["start", "pause", "unpause", "stop", "restart"]),
    )
    def concurrent(self, container: Container, first: str, second: str) -> None:
        async def both() -> None:
            async def one(name: str) -> None:
                operation = getattr(container, name)
                with contextlib.suppress(InvalidTransitionError):
                    await (operation(timeout=0.5) if name in ("stop", "restart") else operation())

            async with anyio.create_task_group() as group:
                group.start_soon(one, first)
                group.start_soon(one, second)

        self.call(both)
        self.remember_group(container)

    # -- invariants -------------------------------------------------------------------------

    def snapshot(self) -> dict[str, tuple[State, int | None]]:
        """Each container's state and pid, and the events so far, read in one go on the event
        loop once no policy restart is under way: a consistent cut of states and walks."""

        async def take() -> dict[str, tuple[State, int | None]]:
            await anyio.wait_all_tasks_blocked()
            await eventually(lambda: not any(c._lock.locked() for c in self.all))
            seen = {container.id: (container.state, container.pid) for container in self.all}
            while True:
                try:
                    event = self.events.receive_nowait()
                except anyio.WouldBlock:
                    return seen
                self.walks.setdefault(event.container_id, []).append(event)

        seen: dict[str, tuple[State, int | None]] = self.call(take)
        for container_id, (_, pid) in seen.items():
            if pid is not None:
                self.groups.setdefault(container_id, set()).add(pid)
        return seen

    @invariant()
    def the_os_and_the_table_agree(self) -> None:
        seen = self.snapshot()
        for container in self.all:
            state, pid = seen[container.id]
            if state is State.RUNNING:
                assert pid is not None
                assert proc_state(pid) in {"R", "S", "D"}, container
            elif state is State.PAUSED:
                assert pid is not None
                assert whole_group_paused(pid), (container, paused_states(pid))
            else:
                # Stopped (perhaps with a policy restart pending: a new process would
                # have a new group), created or deleted: nothing of any old group is left.
                assert pid is None
                for group in self.groups.get(container.id, ()):
                    assert [] == group_alive(group), (container, group)
        self.assert_no_zombies()
        rows = {
            (source, trigger, dest)
            for source, row in TRANSITIONS.items()
            for trigger, dest in row.items()
        }
        for container in self.all:
            walked: State | None = None
            for event in self.walks.get(container.id, []):
                assert event.dropped == 0
                if event.to_state is None:
                    continue
                trigger = ACTION_TO_TRIGGER.get(event.action) or Trigger(event.action)
                assert (walked, trigger, event.to_state) in rows, (walked, event)
                walked = event.to_state
                if event.action == "die":
                    assert event.attributes["exitCode"].isdigit()
            assert seen[container.id][0] == walked, (container, self.walks.get(container.id))


def _comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8", errors="replace") as file:
            return file.read(80)
    except OSError:
        return "gone"


PROFILE = settings(
    max_examples=500 if SOAK else 80,
    stateful_step_count=100 if SOAK else 50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


class AsyncioModel(LifecycleAgainstTheOS):
    backend = "asyncio"


class TrioModel(LifecycleAgainstTheOS):
    backend = "trio"


TestModelAsyncio = pytest.mark.timeout(0 if SOAK else 300)(AsyncioModel.TestCase)
TestModelAsyncio.settings = PROFILE
TestModelTrio = pytest.mark.timeout(0 if SOAK else 300)(TrioModel.TestCase)
TestModelTrio.settings = PROFILE
