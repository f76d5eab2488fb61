"""Restart policies on real processes: Docker's backoff, retries, manual stops, resets."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from lifecycle import Engine, Event, InvalidArgumentError, RestartPolicy, State

from ..helpers import run_cli

pytestmark = pytest.mark.anyio

# Upper tolerance on each measured delay. A delay is an anyio.sleep (about
# 1 ms of timer granularity) plus the spawn (about 1 ms) plus the die
# detection that starts the clock (a few ms); on a loaded 2-core CI machine
# scheduling adds tens of ms. 100 ms covers that and still tells 50 ms
# from 100 ms from 200 ms apart where it matters (the ratios are checked too).
TOLERANCE = 0.1

CRASH = ["sh", "-c", "exit 1"]


def fast(name: str, **changes: object) -> RestartPolicy:
    """A policy with shortened delays (the shape of Docker's, scaled down)."""
    options: dict[str, object] = {"initial_delay": 0.05, "max_delay": 0.4, "reset_after": 0.3}
    options.update(changes)
    return RestartPolicy(name, **options)  # type: ignore[arg-type]


def restart_delays(events: list[Event]) -> list[float]:
    """Seconds from each die to the start that follows it."""
    delays = []
    last_die: int | None = None
    for event in events:
        if event.action == "die":
            last_die = event.time_ns
        elif event.action == "start" and last_die is not None:
            delays.append((event.time_ns - last_die) / 1e9)
            last_die = None
    return delays


async def test_instant_crasher_backs_off_exponentially_to_the_cap() -> None:
    """Delays double from the first delay and stop at the cap; no restart storm."""
    received: list[Event] = []
    with anyio.fail_after(30):
        async with Engine() as engine:
            async with engine.subscribe(actions={"die", "start"}) as events:
                container = await engine.create(CRASH, restart=fast("always"))
                await container.start()
                async for event in events:
                    received.append(event)
                    if sum(e.action == "start" for e in received) == 7:
                        break
            await container.stop()
            assert not container.restarting
    delays = restart_delays(received)
    expected = [0.05, 0.1, 0.2, 0.4, 0.4, 0.4]
    assert len(expected) == len(delays)
    for want, got in zip(expected, delays, strict=True):
        assert want <= got <= want + TOLERANCE, (want, got, delays)
    assert 6 == container.restart_count


async def test_between_crash_and_restart_it_is_stopped_and_restarting() -> None:
    """An instant crasher is not labelled running while it waits: stopped, restarting."""
    with anyio.fail_after(10):
        async with Engine() as engine:
            container = await engine.create(CRASH, restart=fast("always", initial_delay=5.0))
            async with engine.subscribe(actions={"die"}) as events:
                await container.start()
                await events.__anext__()
            assert (State.STOPPED, True, 1) == (
                container.state,
                container.restarting,
                container.exit_code,
            )
            with anyio.move_on_after(0.2) as waited:
                await container.wait()  # not-running: still pending, so it blocks
            assert waited.cancelled_caught
            # A manual stop cancels the pending restart and prevents further ones.
            await container.stop()
            assert (State.STOPPED, False, 0) == (
                container.state,
                container.restarting,
                container.restart_count,
            )
            assert 1 == await container.wait()


async def test_on_failure_honours_max_retries_and_ignores_success() -> None:
    """on-failure:3 restarts a failing program exactly 3 times; a clean exit is not restarted."""
    with anyio.fail_after(20):
        async with Engine() as engine:
            async with engine.subscribe(actions={"start"}) as starts:
                failing = await engine.create(
                    ["sh", "-c", "exit 2"], restart=fast("on-failure", max_retries=3)
                )
                await failing.start()
                assert 2 == await failing.wait()
                assert (State.STOPPED, False, 3) == (
                    failing.state,
                    failing.restarting,
                    failing.restart_count,
                )
                clean = await engine.create(["true"], restart=fast("on-failure"))
                await clean.start()
                assert 0 == await clean.wait()
                assert 0 == clean.restart_count
                started = []
                while True:
                    try:
                        started.append(starts.receive_nowait().name)
                    except anyio.WouldBlock:
                        break
            assert [failing.name] * 4 + [clean.name] == started


async def test_the_backoff_resets_after_a_long_run(tmp_path: Path) -> None:
    """After a run longer than reset_after, the next delay is the first delay again."""
    counter = tmp_path / "runs"
    script = (
        f"n=$(cat {counter} 2>/dev/null || echo 0); n=$((n+1)); echo $n > {counter}; "
        "if [ $n -eq 3 ]; then sleep 0.5; fi; exit 1"
    )
    received: list[Event] = []
    with anyio.fail_after(30):
        async with Engine() as engine:
            async with engine.subscribe(actions={"die", "start"}) as events:
                container = await engine.create(["sh", "-c", script], restart=fast("always"))
                await container.start()
                async for event in events:
                    received.append(event)
                    if sum(e.action == "start" for e in received) == 5:
                        break
            await container.stop()
    delays = restart_delays(received)
    # runs 1, 2 crash at once: 0.05, 0.1; run 3 lasts 0.5 s >= 0.3: back to 0.05; then 0.1.
    for want, got in zip([0.05, 0.1, 0.05, 0.1], delays, strict=True):
        assert want <= got <= want + TOLERANCE, delays


async def test_policy_restarts_publish_die_then_start_without_restart() -> None:
    """A policy restart is `die ... start`, no `restart` event; wait('next-exit') fires on die."""
    with anyio.fail_after(10):
        async with Engine() as engine:
            container = await engine.create(CRASH, restart=fast("on-failure", max_retries=1))
            async with engine.subscribe() as events:
                await container.start()
                assert 1 == await container.wait("next-exit")
                assert 1 == await container.wait()
                actions = [e.action for e in _drain(events)]
    assert ["start", "die", "start", "die"] == actions


def _drain(subscription: object) -> list[Event]:
    found = []
    while True:
        try:
            found.append(subscription.receive_nowait())  # type: ignore[attr-defined]
        except (anyio.WouldBlock, anyio.EndOfStream):
            return found


async def test_manual_start_resets_the_count_and_remove_cancels() -> None:
    """A manual start resets restart_count; remove() cancels a pending restart."""
    with anyio.fail_after(10):
        async with Engine() as engine:
            container = await engine.create(CRASH, restart=fast("on-failure", max_retries=2))
            await container.start()
            await container.wait()
            assert 2 == container.restart_count
            await container.start()
            assert 0 == container.restart_count
            slow = await engine.create(CRASH, restart=fast("always", initial_delay=5.0))
            await slow.start()
            await slow.wait("next-exit")
            assert slow.restarting
            await slow.remove()
            assert (State.DELETED, False) == (slow.state, slow.restarting)


async def test_engine_exit_cancels_pending_restarts() -> None:
    """Leaving the engine with a restart pending neither waits for it nor runs it."""
    with anyio.fail_after(10):
        async with Engine() as engine:
            container = await engine.create(CRASH, restart=fast("always", initial_delay=30.0))
            await container.start()
            await container.wait("next-exit")
            assert container.restarting
    assert (State.STOPPED, False, 0) == (
        container.state,
        container.restarting,
        container.restart_count,
    )


@pytest.mark.parametrize(
    "bad",
    ["sometimes", "on-failure:", "on-failure:-1", "always:3", "ON-FAILURE", "", 3],
)
def test_malformed_policies_name_the_accepted_forms(bad: object) -> None:
    """A malformed policy raises a ValueError-family error naming every accepted form."""
    with pytest.raises(InvalidArgumentError) as caught:
        RestartPolicy.parse(bad)  # type: ignore[arg-type]
    assert isinstance(caught.value, ValueError)
    assert "no, on-failure, on-failure:N (N >= 0), always, unless-stopped" in str(caught.value)


@pytest.mark.parametrize(
    ("text", "name", "retries"),
    [
        ("no", "no", None),
        ("on-failure", "on-failure", None),
        ("on-failure:5", "on-failure", 5),
        ("always", "always", None),
        ("unless-stopped", "unless-stopped", None),
    ],
)
def test_policy_strings_parse(text: str, name: str, retries: int | None) -> None:
    """Docker's policy strings parse, and print back the same."""
    policy = RestartPolicy.parse(text)
    assert (name, retries, text) == (policy.name, policy.max_retries, str(policy))
    assert (0.1, 60.0, 10.0) == (policy.initial_delay, policy.max_delay, policy.reset_after)


def test_docker_backoff_numbers() -> None:
    """The default backoff: 100 ms doubling to a 60 s cap; reset after 10 s of running."""
    policy = RestartPolicy("always")
    delays = []
    delay = 0.0
    for _ in range(12):
        delay = policy.next_delay(delay, ran_for=0.5)
        delays.append(delay)
    assert [0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 12.8, 25.6, 51.2, 60.0, 60.0] == pytest.approx(
        delays
    )
    assert 0.1 == policy.next_delay(60.0, ran_for=11.0)


async def test_cli_run_restart_policy(tmp_path: Path) -> None:
    """`run --restart on-failure:2` runs a failing command 3 times and exits with its code."""
    counter = tmp_path / "runs"
    script = f"echo x >> {counter}; exit 3"
    result = await anyio.to_thread.run_sync(
        lambda: run_cli("run", "--restart", "on-failure:2", "--", "sh", "-c", script, cwd=tmp_path)
    )
    assert 3 == result.returncode, result.stderr.decode()
    assert 3 == len(counter.read_text().splitlines())
