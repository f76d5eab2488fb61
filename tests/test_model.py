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
from contextlib import ExitStack
from pathlib import Path

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
from lifecycle._states import NO_OPS

from .oshelpers import (
    children_of_this_process,
    eventually,
    group_alive,
    group_states,
    proc_state,
)

SOAK = bool(os.environ.get("LIFECYCLE_SOAK"))
LIVE = {State.RUNNING, State.PAUSED}
# Exit codes the test can predict: sh blocked reading a fifo handles no signal.
EXIT_BY_SIGNAL = {signal.SIGKILL: 137, signal.SIGTERM: 143, signal.SIGHUP: 129}
ACTION_TO_TRIGGER = {"destroy": Trigger.REMOVE}


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
            self.portal.wrap_async_context_manager(Engine())
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

    # -- helpers ---------------------------------------------------------------------

    def call(self, function: object, *args: object) -> object:
        return self.portal.call(function, *args)  # type: ignore[arg-type]

    def state_of(self, container: Container) -> State:
        """The state as read on the event loop's thread, where a read first looks at /proc."""
        return self.call(lambda: container.state)  # type: ignore[return-value]

    def remember_group(self, container: Container) -> None:
        if container.pid is not None:
            self.groups.setdefault(container.id, set()).add(container.pid)

    def attempt(self, container: Container, trigger: Trigger, operation: object) -> bool:
        """Run an operation; it must succeed exactly when the table (or a no-op) allows it."""
        before = self.state_of(container)
        legal = trigger in TRANSITIONS[before] or trigger in NO_OPS.get(before, ())
        try:
            self.call(operation)
        except InvalidTransitionError:
            assert not legal, f"{trigger} refused from {before}"
            assert before == self.state_of(container)
            return False
        assert legal or trigger is Trigger.REMOVE, f"{trigger} accepted from {before}"
        self.remember_group(container)
        return True

    async def _wait_exit(self, container: Container) -> None:
        with anyio.fail_after(10):
            await container.wait()

    # -- rules -----------------------------------------------------------------------------

    @rule(target=containers, forks=st.booleans())
    def create(self, forks: bool) -> Container:
        """A shell that echoes a line from its fifo and exits 4; with ``forks`` it has a
        second member in its group (a background sleep) that must be stopped with it,
        paused with it and gone with it."""
        fifo = self.scratch / f"fifo{len(self.all)}"
        os.mkfifo(fifo)
        background = "sleep 600 & " if forks else ""
        container: Container = self.call(
            self.engine.create,
            ["sh", "-c", f'{background}read line < {fifo}; echo "got $line"; exit 4'],
        )  # type: ignore[assignment]
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
        live = self.state_of(container) in LIVE
        if self.attempt(container, Trigger.STOP, lambda: container.stop(timeout=0.5)) and live:
            assert 143 == container.exit_code

    @rule(container=containers, sig=st.sampled_from(sorted(EXIT_BY_SIGNAL)))
    def kill(self, container: Container, sig: signal.Signals) -> None:
        if self.attempt(container, Trigger.KILL, lambda: container.kill(sig)):
            self.call(self._wait_exit, container)
            assert EXIT_BY_SIGNAL[sig] == container.exit_code

    @rule(container=containers)
    def restart(self, container: Container) -> None:
        self.attempt(container, Trigger.RESTART, lambda: container.restart(timeout=0.5))

    @rule(container=containers, force=st.booleans())
    def remove(self, container: Container, force: bool) -> None:
        before = self.state_of(container)
        try:
            self.call(lambda: container.remove(force=force))
        except InvalidTransitionError:
            assert before is State.DELETED or (before in LIVE and not force)
            return
        assert before is not State.DELETED
        assert State.DELETED == self.state_of(container)

    # What a rule draws must not depend on the containers' states: with two
    # operations racing (the `concurrent` rule) a replayed example can end in
    # another state, and Hypothesis needs its draws to replay identically.
    # Rules that need a state check it and do nothing otherwise.

    @rule(container=containers)
    def exits_by_itself(self, container: Container) -> None:
        if self.state_of(container) is not State.RUNNING:
            return
        token = f"go-{container.pid}"
        with self.fifos[container.id].open("w") as fifo:  # the child echoes it and exits 4
            fifo.write(f"{token}\n")
        self.call(self._wait_exit, container)
        assert (State.STOPPED, 4) == (self.state_of(container), container.exit_code)
        # Written just before the exit, captured before the die was announced.
        lines = self.call(container.logs)
        assert f"got {token}" in [line.text for line in lines], lines  # type: ignore[attr-defined]

    @rule(container=containers)
    def killed_from_outside(self, container: Container) -> None:
        if self.state_of(container) not in LIVE:
            return
        assert container.pid is not None
        os.kill(container.pid, signal.SIGKILL)
        self.call(self._wait_exit, container)
        assert (State.STOPPED, 137) == (self.state_of(container), container.exit_code)

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
        self.call(eventually, lambda: set(group_states(pid).values()) == {"T"})
        assert State.PAUSED == self.state_of(container)

    @rule(container=containers)
    def continued_from_outside(self, container: Container) -> None:
        """SIGCONT from outside to a paused group (paused by anyone): it reads running."""
        if self.state_of(container) is not State.PAUSED:
            return
        assert container.pid is not None
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

    @invariant()
    def the_os_agrees(self) -> None:
        self.call(anyio.wait_all_tasks_blocked)
        for container in self.all:
            state = self.state_of(container)
            if state is State.RUNNING:
                assert container.pid is not None
                assert proc_state(container.pid) in {"R", "S", "D"}, container
            elif state is State.PAUSED:
                assert container.pid is not None
                states = group_states(container.pid)
                assert states
                assert {"T"} == set(states.values()), (container, states)
            else:
                assert container.pid is None
                for group in self.groups.get(container.id, ()):
                    if state is not State.RUNNING:
                        assert [] == group_alive(group), (container, group)
        zombies = {pid: s for pid, s in children_of_this_process().items() if s == "Z"}
        assert {} == zombies

    @invariant()
    def events_walk_the_table(self) -> None:
        # Read the states first: a read may commit a stop seen in /proc, with its event.
        states = {container.id: self.state_of(container) for container in self.all}
        while True:
            try:
                event = self.events.receive_nowait()
            except anyio.WouldBlock:
                break
            self.walks.setdefault(event.container_id, []).append(event)
        rows = {
            (source, trigger, dest)
            for source, row in TRANSITIONS.items()
            for trigger, dest in row.items()
        }
        for container in self.all:
            state: State | None = None
            for event in self.walks.get(container.id, []):
                assert event.dropped == 0
                if event.to_state is None:
                    continue
                trigger = ACTION_TO_TRIGGER.get(event.action) or Trigger(event.action)
                assert (state, trigger, event.to_state) in rows, (state, event)
                state = event.to_state
                if event.action == "die":
                    assert event.attributes["exitCode"].isdigit()
            assert states[container.id] == state, (container, self.walks.get(container.id))


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
