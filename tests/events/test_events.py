"""Events: the exact sequence of every operation, filters, bounded buffers, callbacks, shutdown."""

from __future__ import annotations

import os
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio
import anyio.lowlevel
import pytest
from structlog.testing import capture_logs

from lifecycle import (
    Container,
    Engine,
    EngineStatistics,
    Event,
    InvalidArgumentError,
    State,
    Subscription,
)

from ..oshelpers import term_ignoring, wait_for_file

pytestmark = pytest.mark.anyio

C, R, P, S, D = State.CREATED, State.RUNNING, State.PAUSED, State.STOPPED, State.DELETED


def drain(subscription: Subscription) -> list[Event]:
    """Every event buffered so far, without waiting."""
    events: list[Event] = []
    while True:
        try:
            events.append(subscription.receive_nowait())
        except (anyio.WouldBlock, anyio.EndOfStream):
            return events


def summary(events: list[Event]) -> list[tuple[object, ...]]:
    """(action, from, to, attributes except name) for each event."""
    return [
        (e.action, e.from_state, e.to_state, {k: v for k, v in e.attributes.items() if k != "name"})
        for e in events
    ]


async def in_state(container: Container, state: State) -> None:
    if state in (R, P, S):
        await container.start()
    if state is P:
        await container.pause()
    if state is S:
        await container.stop()


Operation = Callable[[Container], Awaitable[object]]

SEQUENCES: list[tuple[str, State, Operation, list[tuple[object, ...]]]] = [
    ("start", C, lambda c: c.start(), [("start", C, R, {})]),
    ("start from stopped", S, lambda c: c.start(), [("start", S, R, {})]),
    ("pause", R, lambda c: c.pause(), [("pause", R, P, {})]),
    ("unpause", P, lambda c: c.unpause(), [("unpause", P, R, {})]),
    (
        "stop",
        R,
        lambda c: c.stop(),
        [
            ("kill", R, None, {"signal": "15"}),
            ("die", R, S, {"exitCode": "143"}),
            ("stop", S, None, {}),
        ],
    ),
    (
        "stop paused",
        P,
        lambda c: c.stop(),
        [
            ("kill", P, None, {"signal": "15"}),
            ("die", P, S, {"exitCode": "143"}),
            ("stop", S, None, {}),
        ],
    ),
    (
        "kill",
        R,
        lambda c: c.kill(),
        [("kill", R, None, {"signal": "9"}), ("die", R, S, {"exitCode": "137"})],
    ),
    (
        "kill paused",
        P,
        lambda c: c.kill(),
        [("kill", P, None, {"signal": "9"}), ("die", P, S, {"exitCode": "137"})],
    ),
    (
        "restart",
        R,
        lambda c: c.restart(),
        [
            ("kill", R, None, {"signal": "15"}),
            ("die", R, S, {"exitCode": "143"}),
            ("stop", S, None, {}),
            ("start", S, R, {}),
            ("restart", R, None, {}),
        ],
    ),
    ("restart created", C, lambda c: c.restart(), [("start", C, R, {}), ("restart", R, None, {})]),
    ("restart stopped", S, lambda c: c.restart(), [("start", S, R, {}), ("restart", R, None, {})]),
    ("remove", C, lambda c: c.remove(), [("destroy", C, D, {})]),
    ("remove stopped", S, lambda c: c.remove(), [("destroy", S, D, {})]),
    (
        "remove force",
        R,
        lambda c: c.remove(force=True),
        [
            ("kill", R, None, {"signal": "9"}),
            ("die", R, S, {"exitCode": "137"}),
            ("destroy", S, D, {}),
        ],
    ),
    (
        "kill fatal",
        R,
        lambda c: c.kill("SIGTERM"),
        [("kill", R, None, {"signal": "15"}), ("die", R, S, {"exitCode": "143"})],
    ),
]


@pytest.mark.parametrize(
    ("label", "state", "operation", "expected"), SEQUENCES, ids=[s[0] for s in SEQUENCES]
)
async def test_exact_event_sequence_of_each_operation(
    label: str, state: State, operation: Operation, expected: list[tuple[object, ...]]
) -> None:
    """Each operation publishes exactly DESIGN.md's events, in order, with states and attributes."""
    with anyio.fail_after(10):
        async with Engine() as engine:
            container = await engine.create(["sleep", "60"], name="web")
            await in_state(container, state)
            async with engine.subscribe() as events:
                await operation(container)
                if label == "kill fatal":  # the die comes from the watcher
                    await container.wait()
                assert expected == summary(drain(events))


async def test_create_stop_escalation_and_die_by_itself(tmp_path: Path) -> None:
    """An early subscriber sees create; escalation adds kill 9; an exit by itself is one die."""
    ready = tmp_path / "ready"
    with anyio.fail_after(10):
        async with Engine() as engine, engine.subscribe() as events:
            stubborn = await engine.create(term_ignoring(ready), name="stubborn", stop_timeout=0.2)
            await stubborn.start()
            await wait_for_file(ready)
            await stubborn.stop()
            job = await engine.create(["sh", "-c", "exit 3"], name="job")
            await job.start()
            await job.wait()
            received = drain(events)
    assert [
        ("create", None, C, {}),
        ("start", C, R, {}),
        ("kill", R, None, {"signal": "15"}),
        ("kill", R, None, {"signal": "9"}),
        ("die", R, S, {"exitCode": "137"}),
        ("stop", S, None, {}),
        ("create", None, C, {}),
        ("start", C, R, {}),
        ("die", R, S, {"exitCode": "3"}),
    ] == summary(received)
    assert all(event.attributes["name"] == event.name for event in received)
    assert [stubborn.id] * 6 + [job.id] * 3 == [event.container_id for event in received]
    times = [event.time_ns for event in received]
    assert sorted(times) == times


async def test_kill_of_a_paused_survivor_publishes_kill_then_unpause(tmp_path: Path) -> None:
    """kill(SIGUSR1) on a paused container that handles it: kill, then unpause."""
    ready = tmp_path / "ready"
    with anyio.fail_after(10):
        async with Engine() as engine:
            handles_usr1 = f"trap 'echo usr1' USR1; echo ready > {ready}; while :; do sleep 1; done"
            container = await engine.create(["sh", "-c", handles_usr1])
            await container.start()
            await wait_for_file(ready)
            await container.pause()
            async with engine.subscribe() as events:
                await container.kill(signal.SIGUSR1)
                assert [("kill", P, None, {"signal": "10"}), ("unpause", P, R, {})] == summary(
                    drain(events)
                )


async def test_external_kill_publishes_one_die() -> None:
    """A process killed from outside publishes exactly one die with 137."""
    with anyio.fail_after(10):
        async with Engine() as engine:
            container = await engine.create(["sleep", "60"])
            await container.start()
            async with engine.subscribe() as events:
                assert container.pid is not None
                os.kill(container.pid, signal.SIGKILL)
                await container.wait()
                await anyio.wait_all_tasks_blocked()
                assert [("die", R, S, {"exitCode": "137"})] == summary(drain(events))


async def test_two_subscribers_with_different_filters() -> None:
    """Each subscriber gets exactly the events its filters select, in order."""
    with anyio.fail_after(10):
        async with Engine() as engine:
            async with (
                engine.subscribe(container="web", actions={"start", "die"}) as web_events,
                engine.subscribe(actions=["create"]) as creations,
            ):
                web = await engine.create(["sleep", "60"], name="web")
                other = await engine.create(["sleep", "60"], name="other")
                for container in (web, other):
                    await container.start()
                    await container.kill()
                assert [("start", "web"), ("die", "web")] == [
                    (e.action, e.name) for e in drain(web_events)
                ]
                assert [("create", "web"), ("create", "other")] == [
                    (e.action, e.name) for e in drain(creations)
                ]
            async with engine.subscribe(container=other.short_id) as by_prefix:
                await other.remove()
                assert ["destroy"] == [e.action for e in drain(by_prefix)]


async def test_a_stalled_subscriber_loses_the_oldest_and_is_told_how_many() -> None:
    """10,000 events pass a subscriber that never reads: the engine goes on, drops are counted.

    A lossless subscriber that also never reads gets all 10,000 afterwards.
    """
    pairs = 5_000
    with anyio.fail_after(60):
        async with Engine() as engine:
            container = await engine.create(["sleep", "60"])
            await container.start()
            async with (
                engine.subscribe(max_buffer=100) as bounded,
                engine.subscribe(lossless=True) as lossless,
            ):
                published_before = engine.statistics().events_published
                for _ in range(pairs):
                    await container.pause()
                    await container.unpause()
                published = engine.statistics().events_published - published_before
                assert 2 * pairs == published
                kept = drain(bounded)
                everything = drain(lossless)
                statistics = engine.statistics()
    assert 100 == len(kept)
    assert 2 * pairs - 100 == kept[0].dropped == bounded.dropped
    assert [0] * 99 == [event.dropped for event in kept[1:]]
    assert 2 * pairs == len(everything)
    assert 0 == lossless.dropped
    assert ["pause", "unpause"] * pairs == [event.action for event in everything]
    assert [event.time_ns for event in everything[-100:]] == [event.time_ns for event in kept]
    assert 2 * pairs - 100 == statistics.events_dropped
    assert isinstance(statistics, EngineStatistics)


async def test_callbacks_sync_and_async_and_one_that_raises() -> None:
    """Callbacks get events in order; one that raises is logged and keeps receiving."""
    seen_sync: list[str] = []
    seen_async: list[str] = []
    seen_by_failing: list[str] = []

    def failing(event: Event) -> None:
        seen_by_failing.append(event.action)
        if event.action == "start":
            raise RuntimeError("callback bug")

    async def slow_async(event: Event) -> None:
        await anyio.lowlevel.checkpoint()
        seen_async.append(event.action)

    with anyio.fail_after(10), capture_logs() as logs:
        async with Engine() as engine:
            engine.add_callback(lambda event: seen_sync.append(event.action))
            engine.add_callback(slow_async, actions={"start", "die"})
            engine.add_callback(failing)
            assert 3 == engine.statistics().subscribers
            container = await engine.create(["sleep", "60"])
            await container.start()
            await container.stop()
    assert ["create", "start", "kill", "die", "stop"] == seen_sync == seen_by_failing
    assert ["start", "die"] == seen_async
    failures = [entry for entry in logs if entry["event"] == "event callback failed"]
    assert 1 == len(failures)
    assert "error" == failures[0]["log_level"]
    assert "start" == failures[0]["action"]
    assert "failing" in failures[0]["callback"]
    assert isinstance(failures[0]["exc_info"], RuntimeError)


async def test_removing_a_callback_stops_delivery() -> None:
    """The function add_callback returns unsubscribes."""
    seen: list[str] = []
    with anyio.fail_after(10):
        async with Engine() as engine:
            remove = engine.add_callback(lambda event: seen.append(event.action), lossless=True)
            container = await engine.create(["true"])
            await anyio.wait_all_tasks_blocked()
            remove()
            await container.start()
            await container.wait()
    assert ["create"] == seen


async def test_engine_exit_ends_subscriptions_after_the_last_events() -> None:
    """An open `async for` finishes when the engine exits, after the shutdown's own events."""
    received: list[str] = []
    finished = anyio.Event()

    async def listen(engine: Engine) -> None:
        async with engine.subscribe() as events:
            async for event in events:
                received.append(event.action)
        finished.set()

    with anyio.fail_after(10):
        async with anyio.create_task_group() as outer, Engine() as engine:
            outer.start_soon(listen, engine)
            await anyio.wait_all_tasks_blocked()
            container = await engine.create(["sleep", "60"])
            await container.start()
            # The engine block is left here, with the container still running.
    assert finished.is_set()
    assert ["create", "start", "kill", "die", "stop"] == received


async def test_subscription_input_is_checked() -> None:
    """Unknown actions and a buffer below one are refused, naming the problem."""
    with anyio.fail_after(10):
        async with Engine() as engine:
            with pytest.raises(InvalidArgumentError, match="unknown event action"):
                async with engine.subscribe(actions={"start", "explode"}):
                    pass
            with pytest.raises(InvalidArgumentError, match="max_buffer must be a whole number"):
                async with engine.subscribe(max_buffer=0):
                    pass
            with pytest.raises(InvalidArgumentError, match="callback must be callable"):
                engine.add_callback("print")  # type: ignore[arg-type]
            assert 0 == engine.statistics().subscribers


async def test_events_are_frozen_records() -> None:
    """Event is frozen and slotted; its attributes cannot be changed."""
    with anyio.fail_after(10):
        async with Engine() as engine, engine.subscribe() as events:
            await engine.create(["true"], name="web")
            (event,) = drain(events)
    with pytest.raises(AttributeError):
        event.action = "start"  # type: ignore[misc]
    with pytest.raises(TypeError):
        event.attributes["name"] = "x"  # type: ignore[index]
    assert not hasattr(event, "__dict__")
    assert "<Event create web" in repr(event)
