"""Health checks on real probes (native driver), on both backends: Docker's rules, Podman's
on-failure actions, and no probe process ever left behind.

Time is driven by small intervals and waits on events or conditions, never by
fixed sleeps; "no probe while paused" is measured against a second
container's probes, a clock that only counts probes.
"""

from __future__ import annotations

import time
from pathlib import Path

import anyio
import pytest

from lifecycle import Engine, InvalidArgumentError
from lifecycle.model import Healthcheck

from ..oshelpers import eventually, proc_state

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]


def fast(test: tuple[str, ...], retries: int = 3) -> Healthcheck:
    """A check that probes every 50 ms (its timeout 5 s)."""
    return Healthcheck(test, interval=0.05, timeout=5.0, start_interval=0.05, retries=retries)


# A probe that fails until its third run: it counts its runs in a file of the cwd.
THIRD_TIME_LUCKY = (
    'n=$(cat runs 2>/dev/null || echo 0); n=$((n+1)); echo $n > runs; echo run $n; [ "$n" -ge 3 ]'
)


async def _events(engine: Engine, container_id: str, count: int) -> list[str]:
    seen: list[str] = []
    async with engine.subscribe(container=container_id, lossless=True) as events:
        async for event in events:
            seen.append(event.action)
            if len(seen) == count:
                break
    return seen


async def test_a_probe_that_passes_on_its_third_run_makes_it_healthy(tmp_path: Path) -> None:
    check = fast(("CMD-SHELL", THIRD_TIME_LUCKY), retries=5)
    with anyio.fail_after(20):
        async with Engine() as engine:
            container = await engine.create(["sleep", "60"], cwd=tmp_path, healthcheck=check)
            assert "starting" == container.health.status
            async with engine.subscribe(container=container.id, lossless=True) as events:
                await container.start()
                await container.wait_healthy(timeout=10)
                actions = []
                async for event in events:
                    actions.append(event.action)
                    if event.action.startswith("health_status"):
                        break
            assert ["start", "health_status: healthy"] == actions
            health = container.health
            assert ("healthy", 0) == (health.status, health.failing_streak)
            assert [1, 1, 0] == [probe.exit_code for probe in health.log]
            assert ["run 1\n", "run 2\n", "run 3\n"] == [probe.output for probe in health.log]
            assert all(probe.start <= probe.end for probe in health.log)
            assert "(healthy)" in container.graph().source  # the health beside the state
            await container.stop(timeout=0)


async def test_unhealthy_then_restarted_by_health_on_failure(tmp_path: Path) -> None:
    """starting -> healthy -> unhealthy -> restarted (the README's event sequence)."""
    (tmp_path / "ok").write_text("")
    check = fast(("CMD", "test", "-e", "ok"), retries=2)
    with anyio.fail_after(20):
        async with Engine() as engine:
            container = await engine.create(
                ["sleep", "60"], cwd=tmp_path, healthcheck=check, health_on_failure="restart"
            )
            async with engine.subscribe(container=container.id, lossless=True) as events:
                await container.start()
                first_pid = container.pid
                await container.wait_healthy(timeout=10)
                (tmp_path / "ok").unlink()
                actions = []
                async for event in events:
                    actions.append(event.action)
                    if event.action == "restart":
                        break
            # SIGTERM kills a plain process at once on the native driver (no PID 1 rule).
            assert [
                "start", "health_status: healthy", "health_status: unhealthy",
                "kill", "die", "stop", "start", "restart",
            ] == actions  # fmt: skip
            assert first_pid is not None
            assert proc_state(first_pid) is None
            assert container.pid != first_pid
            assert "starting" == container.health.status  # a restart starts over
            assert 0 == container.health.failing_streak
            await container.stop(timeout=0)


@pytest.mark.parametrize(("action", "last"), [("kill", "die"), ("stop", "stop")])
async def test_kill_and_stop_on_failure(tmp_path: Path, action: str, last: str) -> None:
    check = fast(("CMD", "false"), retries=1)
    with anyio.fail_after(20):
        async with Engine() as engine:
            container = await engine.create(
                ["sleep", "60"], healthcheck=check, health_on_failure=action
            )
            async with engine.subscribe(container=container.id, lossless=True) as events:
                await container.start()
                actions = []
                async for event in events:
                    actions.append(event.action)
                    if event.action == last:
                        break
            assert "health_status: unhealthy" in actions
            assert (137 if action == "kill" else 143) == container.exit_code
            assert not container.restarting
            assert "unhealthy" == container.health.status


async def test_a_probe_past_its_timeout_is_killed_and_recorded_as_minus_one(
    tmp_path: Path,
) -> None:
    pid_file = tmp_path / "probe.pid"
    check = Healthcheck(
        ("CMD-SHELL", f"echo $$ > {pid_file}; exec sleep 30"),
        interval=0.05, timeout=0.2, start_interval=0.05, retries=1,
    )  # fmt: skip
    with anyio.fail_after(20):
        async with Engine() as engine:
            container = await engine.create(["sleep", "60"], healthcheck=check)
            await container.start()
            await eventually(lambda: container.health.status == "unhealthy")
            probe = container.health.log[0]
            assert -1 == probe.exit_code
            assert "Health check exceeded timeout (200ms)" == probe.output
            probe_pid = int(pid_file.read_text())
            await eventually(lambda: proc_state(probe_pid) is None)
            await container.stop(timeout=0)


async def test_failures_during_the_start_period_do_not_count(tmp_path: Path) -> None:
    marker = tmp_path / "started"
    check = Healthcheck(
        ("CMD-SHELL", f"touch {marker}; exit 1"),
        interval=0.05, timeout=5, start_period=0.6, start_interval=0.05, retries=1,
    )  # fmt: skip
    with anyio.fail_after(20):
        async with Engine() as engine:
            container = await engine.create(["sleep", "60"], healthcheck=check)
            started = time.monotonic()
            await container.start()
            await eventually(lambda: container.health.status == "unhealthy")
            # Every probe failed, from the first (about 0.05 s in); only those after the
            # start period counted, so unhealthy (retries=1) came after it, streak 1.
            assert time.monotonic() - started >= 0.6
            health = container.health
            assert 1 == health.failing_streak
            assert 5 == len(health.log)  # many failed probes, the last 5 kept
            assert all(1 == probe.exit_code for probe in health.log)
            assert marker.exists()
            await container.stop(timeout=0)


async def test_no_probes_while_paused(tmp_path: Path) -> None:
    count = "echo x >> probes; exit 0"
    with anyio.fail_after(30):
        async with Engine() as engine:
            (tmp_path / "a").mkdir()
            (tmp_path / "clock").mkdir()
            watched = await engine.create(
                ["sleep", "60"],
                cwd=tmp_path / "a",
                healthcheck=fast(("CMD-SHELL", count)),
            )
            clock = await engine.create(
                ["sleep", "60"],
                cwd=tmp_path / "clock",
                healthcheck=fast(("CMD-SHELL", count)),
            )
            for container in (watched, clock):
                await container.start()
            await watched.wait_healthy(timeout=10)
            await watched.pause()
            before = (tmp_path / "a" / "probes").read_text().count("x")

            def clock_probes() -> int:
                path = tmp_path / "clock" / "probes"
                return path.read_text().count("x") if path.exists() else 0

            start = clock_probes()
            await eventually(lambda: clock_probes() >= start + 8)  # >= 8 intervals went by
            # At most the probe that was in flight when the pause came may have finished.
            assert (tmp_path / "a" / "probes").read_text().count("x") <= before + 1
            await watched.unpause()
            paused_count = (tmp_path / "a" / "probes").read_text().count("x")
            await eventually(
                lambda: (tmp_path / "a" / "probes").read_text().count("x") > paused_count
            )
            for container in (watched, clock):
                await container.stop(timeout=0)


async def test_a_probe_in_flight_dies_with_its_container(tmp_path: Path) -> None:
    pid_file = tmp_path / "probe.pid"
    check = Healthcheck(
        ("CMD-SHELL", f"echo $$ > {pid_file}; exec sleep 30"), interval=0.05, timeout=60
    )
    with anyio.fail_after(20):
        async with Engine() as engine:
            container = await engine.create(["sleep", "60"], healthcheck=check)
            await container.start()
            await eventually(lambda: pid_file.exists() and pid_file.read_text().strip() != "")
            probe_pid = int(pid_file.read_text())
            assert proc_state(probe_pid) is not None
            await container.stop(timeout=0)
            await eventually(lambda: proc_state(probe_pid) is None)
            assert [] == list(container.health.log)  # the probe never finished


async def test_health_without_a_check_and_bad_input() -> None:
    with anyio.fail_after(10):
        async with Engine() as engine:
            plain = await engine.create(["true"])
            assert plain.health.status is None
            with pytest.raises(InvalidArgumentError, match="has no health check"):
                await plain.wait_healthy(timeout=1)
            with pytest.raises(InvalidArgumentError, match="health_on_failure"):
                await engine.create(["true"], health_on_failure="explode")
            with pytest.raises(InvalidArgumentError, match="must be a Healthcheck"):
                await engine.create(["true"], healthcheck=["CMD", "true"])  # type: ignore[arg-type]
            off = await engine.create(["true"], healthcheck=Healthcheck(("NONE",)))
            assert off.health.status is None
            assert 2 == len(engine.containers())


async def test_an_images_healthcheck_applies_unless_overridden(tmp_path: Path) -> None:
    """Docker: the image's HEALTHCHECK is the container's, unless create gives one (NONE: off)."""
    from lifecycle import ImageStore  # noqa: PLC0415

    from ..images.test_hostile_input import docker_archive, layer  # noqa: PLC0415
    from ..oshelpers import require_root  # noqa: PLC0415

    require_root("a container on an image's root filesystem (native driver)")
    image_check = {"Test": ["CMD-SHELL", "true"], "Interval": 2_000_000_000, "Retries": 4}
    store = ImageStore(tmp_path / "store")
    archive = docker_archive(
        tmp_path / "img.tar", layer(), image_config={"Cmd": ["true"], "Healthcheck": image_check}
    )
    await store.import_archive(archive)
    broken = docker_archive(
        tmp_path / "bad.tar",
        layer(),
        image_config={"Cmd": ["true"], "Healthcheck": {"Test": ["RUN", "x"]}},
    )
    with anyio.fail_after(20):
        async with Engine(store=store) as engine:
            inherited = await engine.create(image="me/evil:1")
            assert Healthcheck(("CMD-SHELL", "true"), interval=2, retries=4) == (
                inherited.spec.healthcheck
            )
            assert "starting" == inherited.health.status
            off = await engine.create(image="me/evil:1", healthcheck=Healthcheck(("NONE",)))
            assert off.health.status is None
            await store.import_archive(broken)  # the same tag, now with a check that is wrong
            with pytest.raises(InvalidArgumentError, match="has a bad Healthcheck"):
                await engine.create(image="me/evil:1")
            assert 2 == len(engine.containers())
