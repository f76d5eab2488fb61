"""The health model against moby's daemon/health.go rules (pure: times are passed in)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lifecycle import InvalidArgumentError
from lifecycle.model._health import (
    MAX_LOG_ENTRIES,
    Healthcheck,
    HealthTracker,
    Probe,
    check_health_on_failure,
    cut_output,
)

_MOMENT = datetime(2026, 12, 2, tzinfo=UTC)


def _probe(exit_code: int, output: str = "") -> Probe:
    return Probe(start=_MOMENT, end=_MOMENT, exit_code=exit_code, output=output)


def test_defaults_are_dockers() -> None:
    check = Healthcheck(("CMD", "true"))
    assert (30.0, 30.0, 0.0, 5.0, 3) == (
        check.interval, check.timeout, check.start_period, check.start_interval, check.retries
    )  # fmt: skip
    assert ("true",) == check.argv()
    assert ("/bin/sh", "-c", "exit 1") == Healthcheck(("CMD-SHELL", "exit 1")).argv()
    assert Healthcheck(("NONE",)).disabled


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ({"test": "true"}, "list of strings"),
        ({"test": ()}, "list of strings"),
        ({"test": ("RUN", "x")}, "CMD, CMD-SHELL or NONE"),
        ({"test": ("CMD",)}, "needs a command"),
        ({"test": ("CMD-SHELL", "a", "b")}, "one command line"),
        ({"test": ("NONE", "x")}, "no arguments"),
        ({"test": ("CMD", "true"), "interval": 0}, "interval must be more than zero"),
        ({"test": ("CMD", "true"), "timeout": -1}, "timeout must be more than zero"),
        ({"test": ("CMD", "true"), "start_period": float("nan")}, "start_period must be a finite"),
        ({"test": ("CMD", "true"), "start_interval": True}, "start_interval must be a finite"),
        ({"test": ("CMD", "true"), "retries": 0}, "retries must be a whole number >= 1"),
    ],
)
def test_bad_checks_are_refused_naming_the_field(
    arguments: dict[str, object], expected: str
) -> None:
    with pytest.raises(InvalidArgumentError, match=expected):
        Healthcheck(**arguments)  # type: ignore[arg-type]


def test_docker_json_round_trips_and_merges_over_the_image() -> None:
    image = Healthcheck(("CMD", "probe"), interval=10, retries=5)
    merged = Healthcheck.from_docker({"Timeout": 2_000_000_000}, base=image)
    assert (("CMD", "probe"), 10.0, 2.0, 5) == (
        merged.test, merged.interval, merged.timeout, merged.retries
    )  # fmt: skip
    assert merged == Healthcheck.from_docker(merged.to_docker())
    with pytest.raises(InvalidArgumentError, match="Interval must be nanoseconds"):
        Healthcheck.from_docker({"Test": ["CMD", "x"], "Interval": "1s"})
    assert Healthcheck.from_docker({"Test": ["NONE"]}, base=image).disabled


def test_health_on_failure_is_podmans_four() -> None:
    assert "restart" == check_health_on_failure("restart")
    with pytest.raises(InvalidArgumentError, match="expected one of: none, kill, restart, stop"):
        check_health_on_failure("explode")


def test_a_success_is_healthy_and_retries_failures_are_unhealthy() -> None:
    tracker = HealthTracker(Healthcheck(("CMD", "x"), retries=3))
    tracker.started(now=0)
    assert "starting" == tracker.snapshot().status
    assert "healthy" == tracker.record(_probe(0), now=1)
    assert tracker.record(_probe(1), now=2) is None
    assert tracker.record(_probe(1), now=3) is None
    assert "unhealthy" == tracker.record(_probe(-1, "Health check exceeded timeout (1s)"), now=4)
    assert 3 == tracker.snapshot().failing_streak
    assert tracker.record(_probe(1), now=5) is None  # still unhealthy: no new transition
    assert "healthy" == tracker.record(_probe(0), now=6)
    assert 0 == tracker.snapshot().failing_streak


def test_failures_in_the_start_period_do_not_count_while_starting() -> None:
    check = Healthcheck(("CMD", "x"), interval=30, start_period=10, start_interval=2, retries=1)
    tracker = HealthTracker(check)
    tracker.started(now=100)
    assert 2 == tracker.next_delay(now=101)  # starting, in the start period
    assert tracker.record(_probe(1), now=105) is None
    assert (0, "starting") == (tracker.snapshot().failing_streak, tracker.snapshot().status)
    assert 30 == tracker.next_delay(now=111)  # the start period is over
    assert "unhealthy" == tracker.record(_probe(1), now=111)
    # healthy inside a new start period: failures count again (only "starting" is spared)
    tracker.started(now=200)
    assert "healthy" == tracker.record(_probe(0), now=201)
    assert 30 == tracker.next_delay(now=201)
    assert "unhealthy" == tracker.record(_probe(1), now=202)


def test_a_restart_resets_status_and_streak_but_keeps_the_log() -> None:
    tracker = HealthTracker(Healthcheck(("CMD", "x"), retries=1))
    tracker.started(now=0)
    tracker.record(_probe(1, "bad"), now=1)
    tracker.started(now=2)
    health = tracker.snapshot()
    assert ("starting", 0, ["bad"]) == (
        health.status,
        health.failing_streak,
        [p.output for p in health.log],
    )


@given(st.lists(st.integers(min_value=-1, max_value=3), max_size=40))
def test_the_log_keeps_the_last_five(codes: list[int]) -> None:
    tracker = HealthTracker(Healthcheck(("CMD", "x")))
    tracker.started(now=0)
    for number, code in enumerate(codes):
        tracker.record(_probe(code, str(number)), now=number + 1)
    kept = [probe.output for probe in tracker.snapshot().log]
    assert [str(n) for n in range(len(codes))][-MAX_LOG_ENTRIES:] == kept


@given(st.lists(st.booleans(), max_size=40), st.integers(min_value=1, max_value=5))
def test_status_follows_the_streak(results: list[bool], retries: int) -> None:
    """Outside a start period: healthy after a success; unhealthy once `retries` failures
    follow the last success; the streak counts failures since the last success."""
    tracker = HealthTracker(Healthcheck(("CMD", "x"), retries=retries))
    tracker.started(now=0)
    streak, status = 0, "starting"
    for number, passed in enumerate(results):
        tracker.record(_probe(0 if passed else 1), now=number + 1)
        streak = 0 if passed else streak + 1
        if passed:
            status = "healthy"
        elif streak >= retries:
            status = "unhealthy"
        assert (status, streak) == (tracker.snapshot().status, tracker.snapshot().failing_streak)


def test_output_is_cut_at_4096_bytes() -> None:
    assert 4096 == len(cut_output(b"x" * 10_000))
    assert "caf\ufffd" == cut_output(b"caf\xe9")
