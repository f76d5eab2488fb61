"""The OCI runtime driver through the engine: a real PID 1 under runc and crun, in its own
namespaces, on a busybox image; checked against /proc, the cgroup files and the runtime's
`state`, on both backends. Needs root and the runtime (skipped without, required in CI;
crun also needs the hugetlb v1 controller mounted on a hybrid host, which .ci/run does)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import anyio
import pytest

from lifecycle import (
    Container,
    Engine,
    ImageStore,
    InvalidArgumentError,
    SpawnError,
    State,
    Trigger,
)
from lifecycle.model import Healthcheck
from lifecycle.rootfs import mounts_under
from lifecycle.runtime.oci import missing_requirement

from ...engine.test_engine_table import ROWS
from ...engine.test_outside_stops import state_now
from ...helpers import run_cli
from ...images.tools import busybox_system_rootfs, require
from ...oshelpers import (
    eventually,
    freezer_cgroup,
    freezer_state,
    proc_state,
    require_root,
    write_freezer,
)

pytestmark = pytest.mark.anyio

OCI_CGROUPS = Path("/sys/fs/cgroup/freezer/lifecycle-oci")


def require_oci_root() -> None:
    require_root("the OCI runtime driver")


@pytest.fixture(params=["runc", "crun"])
def runtime(request: pytest.FixtureRequest) -> str:
    """Every test runs on runc and on crun."""
    name: str = request.param
    require_oci_root()
    require(name)
    missing = missing_requirement(name)
    if missing is not None:
        if os.environ.get("LIFECYCLE_REQUIRE_TOOLS") == "1":
            pytest.fail(f"{missing}; CI requires it")
        pytest.skip(missing)
    return name


@pytest.fixture
async def store(tmp_path: Path, runtime: str) -> ImageStore:
    store = ImageStore(tmp_path / "store")
    await store.import_rootfs(busybox_system_rootfs(tmp_path / "rootfs"), "busybox", cmd=["sh"])
    return store


def runtime_ids(runtime: str) -> list[str]:
    listed = subprocess.run(
        [runtime, "--root", f"/run/lifecycle/{runtime}", "list", "--format", "json"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    return [entry["id"] for entry in json.loads(listed or "[]") or []]


def runtime_status(runtime: str, runtime_id: str) -> str:
    state = subprocess.run(
        [runtime, "--root", f"/run/lifecycle/{runtime}", "state", runtime_id],
        capture_output=True,
        check=True,
    )
    status: str = json.loads(state.stdout)["status"]
    return status


def runtime_id_of(pid: int) -> str:
    """The runc id of the container PID 1 ``pid`` is in (its freezer cgroup's name)."""
    path = freezer_cgroup(pid)
    assert path is not None, f"{pid} is in no cgroup of its own"
    return path.rsplit("/", 1)[-1]


@pytest.fixture
async def engine(store: ImageStore, runtime: str) -> AsyncIterator[Engine]:
    async with Engine(store=store, runtime=runtime) as engine:
        yield engine
    # Nothing of ours is left: no runtime container, no cgroup, no mount.
    assert [] == runtime_ids(runtime)
    assert [] == [path for path in OCI_CGROUPS.glob("*") if path.is_dir()]
    assert [] == mounts_under(store.root)


async def test_the_command_is_pid_1_in_its_own_namespaces(engine: Engine, runtime: str) -> None:
    """`echo $$` prints 1; the hostname is the short id; the network has only loopback;
    the exit code is the command's; the driver is runc."""
    with anyio.fail_after(30):
        container = await engine.create(
            image="busybox",
            command=["sh", "-c", "echo $$; hostname; ls /sys/class/net; echo oops >&2; exit 3"],
        )
        await container.start()
        assert container.pid is not None
        assert container.pid != 1  # the host's view of PID 1
        assert 3 == await container.wait()
    assert runtime == container.driver
    out = [line.text for line in container.logs(stderr=False)]
    assert ["1", container.short_id, "lo"] == out
    assert ["oops"] == [line.text for line in container.logs(stdout=False)]


async def test_stop_escalates_because_pid_1_ignores_an_unhandled_sigterm(engine: Engine) -> None:
    """sleep as PID 1 has no SIGTERM handler, so the kernel drops it: stop waits out the
    timeout and SIGKILLs (137), as `docker stop` does. A shell that traps TERM exits 143."""
    with anyio.fail_after(30):
        sleeper = await engine.create(image="busybox", command=["sleep", "60"], stop_timeout=0.5)
        await sleeper.start()
        await sleeper.stop()
        assert (State.STOPPED, 137) == (sleeper.state, sleeper.exit_code)
        trapper = await engine.create(
            image="busybox",
            command=["sh", "-c", "trap 'exit 143' TERM; echo ready; while :; do sleep 0.05; done"],
            stop_timeout=10,
        )
        await trapper.start()
        await eventually(lambda: any(line.text == "ready" for line in trapper.logs()))
        await trapper.stop()
        assert 143 == trapper.exit_code


async def test_pause_freezes_and_the_runtime_agrees(engine: Engine, runtime: str) -> None:
    """pause(): freezer.state FROZEN and the runtime's `state` says paused; unpause(): running."""
    with anyio.fail_after(30):
        container = await engine.create(image="busybox", command=["sleep", "60"])
        await container.start()
        pid = container.pid
        assert pid is not None
        runtime_id = runtime_id_of(pid)
        await container.pause()
        assert ("FROZEN", "paused") == (freezer_state(pid), runtime_status(runtime, runtime_id))
        assert State.PAUSED == container.state
        await container.unpause()
        assert ("THAWED", "running") == (freezer_state(pid), runtime_status(runtime, runtime_id))
        await container.kill()
        assert 137 == await container.wait()


async def test_a_pause_from_outside_is_seen_like_an_outside_sigstop(
    engine: Engine, runtime: str
) -> None:
    """`runc pause`/`resume` (or crun's) by hand: the container reads paused, then running,
    each with its external event."""
    with anyio.fail_after(30):
        async with engine.subscribe(actions={"pause", "unpause"}) as events:
            container = await engine.create(image="busybox", command=["sleep", "60"])
            await container.start()
            pid = container.pid
            assert pid is not None
            runtime_id = runtime_id_of(pid)
            await anyio.run_process(
                [runtime, "--root", f"/run/lifecycle/{runtime}", "pause", runtime_id]
            )
            assert State.PAUSED == state_now(container)
            event = await events.__anext__()
            assert ("pause", "true") == (event.action, event.attributes["external"])
            await anyio.run_process(
                [runtime, "--root", f"/run/lifecycle/{runtime}", "resume", runtime_id]
            )
            assert State.RUNNING == state_now(container)
            event = await events.__anext__()
            assert ("unpause", "true") == (event.action, event.attributes["external"])
            await container.kill()
            await container.wait()


async def test_killed_from_outside_and_restarted_by_its_policy(engine: Engine) -> None:
    """kill -9 of PID 1 from the host: die 137; on-failure brings it back as a new PID 1."""
    with anyio.fail_after(30):
        container = await engine.create(
            image="busybox",
            command=["sh", "-c", "echo up; exec sleep 60"],
            restart="on-failure:1",
        )
        await container.start()
        first = container.pid
        assert first is not None
        await eventually(lambda: len(container.logs()) == 1)
        os.kill(first, signal.SIGKILL)
        await eventually(lambda: container.restart_count == 1 and container.state is State.RUNNING)
        assert container.pid not in {None, first}
        await eventually(lambda: len(container.logs()) == 2)
        assert ["up", "up"] == [line.text for line in container.logs()]
        await container.stop(timeout=0.5)
        assert proc_state(first) is None


async def test_a_paused_container_killed_from_outside_dies_once_thawed(engine: Engine) -> None:
    """The kernel's cgroup v1 rule, as in Docker: SIGKILL waits for the thaw."""
    with anyio.fail_after(30):
        container = await engine.create(image="busybox", command=["sleep", "60"])
        await container.start()
        pid = container.pid
        assert pid is not None
        await container.pause()
        os.kill(pid, signal.SIGKILL)
        assert State.PAUSED == container.state
        assert write_freezer(pid, "THAWED")
        assert 137 == await container.wait()
        assert State.STOPPED == state_now(container)


async def test_a_missing_executable_is_a_spawn_error_and_leaves_nothing(
    engine: Engine, runtime: str
) -> None:
    """The runtime's own message, exit code 127; no container, cgroup or bundle is left."""
    with anyio.fail_after(30):
        container = await engine.create(image="busybox", command=["no-such-command"])
        with pytest.raises(SpawnError, match="no-such-command") as failed:
            await container.start()
        assert 127 == failed.value.exit_code
        assert State.CREATED == container.state
        assert [] == runtime_ids(runtime)


async def test_memory_limit_and_the_oom_kill(engine: Engine) -> None:
    """memory= is the cgroup's limit; a process that exceeds it is OOM-killed: 137 and
    oom_killed, as Docker's State.OOMKilled. pids_limit is the cgroup's pids.max."""
    with anyio.fail_after(30):
        hog = await engine.create(
            image="busybox",
            # A shell variable doubled until the kernel's OOM killer ends it.
            command=["sh", "-c", "x=0123456789; while :; do x=$x$x; done"],
            memory=16 * 1024 * 1024,
            pids_limit=20,
        )
        await hog.start()
        pid = hog.pid
        assert pid is not None
        runtime_id = runtime_id_of(pid)
        limit = Path(f"/sys/fs/cgroup/memory/lifecycle-oci/{runtime_id}/memory.limit_in_bytes")
        pids = Path(f"/sys/fs/cgroup/pids/lifecycle-oci/{runtime_id}/pids.max")
        assert (16 * 1024 * 1024, "20") == (int(limit.read_text()), pids.read_text().strip())
        assert 137 == await hog.wait()
        assert hog.oom_killed
        calm = await engine.create(image="busybox", command=["true"], memory=16 * 1024 * 1024)
        await calm.start()
        assert 0 == await calm.wait()
        assert not calm.oom_killed


async def test_a_plain_command_keeps_the_native_driver(engine: Engine) -> None:
    """Engine(runtime="runc") runs an argv-only container on the native driver; runc itself
    refuses one without an image, naming what to do."""
    with anyio.fail_after(30):
        plain = await engine.create(["echo", "hi"])
        assert "native" == plain.driver
        await plain.start()
        assert 0 == await plain.wait()
        with pytest.raises(InvalidArgumentError, match="made from an image"):
            await engine.create(["echo", "hi"], runtime="runc")
        with pytest.raises(InvalidArgumentError, match="cannot apply memory"):
            await engine.create(["echo", "hi"], memory=16 * 1024 * 1024)


async def test_network_host_shares_the_hosts_interfaces(engine: Engine) -> None:
    """network="host": no network namespace of its own (the host's interfaces)."""
    with anyio.fail_after(30):
        container = await engine.create(
            image="busybox", command=["ls", "/sys/class/net"], network="host"
        )
        await container.start()
        assert 0 == await container.wait()
    assert sorted(os.listdir("/sys/class/net")) == sorted(line.text for line in container.logs())


def test_crun_on_a_hybrid_host_without_hugetlb_is_refused_with_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """v1 controllers beside a cgroup2 mount and no hugetlb v1 mount: crun would refuse
    ("cgroups in hybrid mode"); the driver says so, with the commands that fix it."""
    from lifecycle.runtime.oci import _driver  # noqa: PLC0415

    require_oci_root()
    require("crun")
    (tmp_path / "freezer").mkdir()
    (tmp_path / "freezer" / "tasks").touch()
    (tmp_path / "unified").mkdir()
    (tmp_path / "unified" / "cgroup.controllers").touch()
    monkeypatch.setattr(_driver, "CGROUP_MOUNT", tmp_path)
    missing = missing_requirement("crun")
    assert missing is not None
    assert "hybrid mode" in missing
    assert "mount -t cgroup -o hugetlb" in missing
    assert missing_requirement("runc") is None  # runc does not mind
    (tmp_path / "hugetlb").mkdir()
    (tmp_path / "hugetlb" / "tasks").touch()
    assert missing_requirement("crun") is None


def test_lifecycle_run_with_an_image_prints_pid_1(tmp_path: Path, runtime: str) -> None:
    """`lifecycle run --image busybox -- sh -c 'echo $$'` prints 1 and exits with the
    command's status; a missing command is 127 with the runtime's message."""
    root = tmp_path / "store"
    imported = run_cli(
        "image", "import", str(busybox_system_rootfs(tmp_path / "rootfs")), "busybox",
        "--root", str(root), cwd=tmp_path,
    )  # fmt: skip
    assert 0 == imported.returncode, imported.stderr.decode()
    options = ["run", "--image", "busybox", "--runtime", runtime, "--root", str(root), "--"]
    printed = run_cli(*options, "sh", "-c", "echo $$", cwd=tmp_path)
    assert (0, b"1\n") == (printed.returncode, printed.stdout), printed.stderr.decode()
    assert 7 == run_cli(*options, "sh", "-c", "exit 7", cwd=tmp_path).returncode
    missing = run_cli(*options, "no-such-command", cwd=tmp_path)
    assert 127 == missing.returncode
    assert b"no-such-command" in missing.stderr


# PID 1 is a shell that traps TERM (PID 1 gets no default action) and waits for a child;
# "die" is that child killed from the host: the shell then exits 4.
TABLE_COMMAND = ["sh", "-c", "trap 'exit 143' TERM; sleep 1000 & wait $!; exit 4"]


def child_of(pid: int) -> int | None:
    """The one child of ``pid`` (the container's sleep), read from /proc."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children", encoding="ascii") as file:
            children = file.read().split()
    except OSError:
        return None
    return int(children[0]) if children else None


async def make_it_die(container: Container) -> None:
    """Running: its child is killed from the host, so PID 1 exits 4. Paused: PID 1 itself is
    SIGKILLed from the host and thawed from outside (frozen tasks die only when thawed)."""
    pid = container.pid
    assert pid is not None
    if container.state is State.PAUSED:
        os.kill(pid, signal.SIGKILL)
        write_freezer(pid, "THAWED")
    else:
        await eventually(lambda: child_of(pid) is not None)
        os.kill(child_of(pid) or 0, signal.SIGKILL)
    await container.wait()


async def bring_to(container: Container, state: State) -> None:
    if state in (State.RUNNING, State.PAUSED, State.STOPPED):
        await container.start()
        # Its child exists once the shell has set its TERM trap: a stop signal before that
        # would reach a PID 1 with no handler and be dropped (Docker has the same race).
        await eventually(lambda: child_of(container.pid or 0) is not None)
    if state is State.PAUSED:
        await container.pause()
    if state is State.STOPPED:
        await container.stop()


@pytest.mark.parametrize(("source", "trigger", "dest"), ROWS, ids=str)
async def test_table_row_on_a_real_pid_1(
    engine: Engine, source: State, trigger: Trigger, dest: State
) -> None:
    """Each legal (state, trigger) reaches DESIGN.md's target under the OCI runtime, and the
    OS agrees: running is a live PID 1, paused is FROZEN, stopped is no PID 1."""
    actions: dict[Trigger, Callable[[Container], Awaitable[object]]] = {
        Trigger.START: lambda c: c.start(),
        Trigger.PAUSE: lambda c: c.pause(),
        Trigger.UNPAUSE: lambda c: c.unpause(),
        Trigger.STOP: lambda c: c.stop(),
        Trigger.KILL: lambda c: c.kill(),
        Trigger.RESTART: lambda c: c.restart(),
        Trigger.REMOVE: lambda c: c.remove(),
        Trigger.DIE: make_it_die,
    }
    with anyio.fail_after(30):
        container = await engine.create(image="busybox", command=TABLE_COMMAND, stop_timeout=5)
        await bring_to(container, source)
        assert source == container.state
        before = container.pid
        await actions[trigger](container)
        assert dest == container.state
        pid = container.pid
        if dest is State.RUNNING:
            assert pid is not None
            assert proc_state(pid) in {"R", "S", "D"}
        elif dest is State.PAUSED:
            assert pid is not None
            assert "FROZEN" == freezer_state(pid)
        else:
            assert pid is None
        gone = dest in {State.STOPPED, State.DELETED} or trigger is Trigger.RESTART
        if before is not None and gone and trigger is not Trigger.UNPAUSE:
            assert proc_state(before) is None  # that PID 1, and its namespace, are gone
        expected = {
            Trigger.STOP: 143,
            Trigger.KILL: 137,
            Trigger.DIE: 137 if source is State.PAUSED else 4,
        }
        if trigger in expected:
            assert expected[trigger] == container.exit_code
        if container.state is not State.DELETED:
            await container.remove(force=True)


async def test_user_and_cpu_options_reach_the_container(engine: Engine) -> None:
    """user= is looked up in the image's /etc/passwd; cpu_shares and cpus are the cgroup's
    cpu.shares and a CFS quota per 100 ms period; an unknown user fails the start (125)."""
    with anyio.fail_after(30):
        container = await engine.create(
            image="busybox",
            command=["sh", "-c", "id -u; id -g; sleep 60"],
            user="nobody",
            cpu_shares=512,
            cpus=0.5,
        )
        await container.start()
        pid = container.pid
        assert pid is not None
        await eventually(lambda: len(container.logs()) == 2)
        assert ["65534", "65534"] == [line.text for line in container.logs()]
        cpu = Path("/sys/fs/cgroup/cpu/lifecycle-oci") / runtime_id_of(pid)
        assert "512" == (cpu / "cpu.shares").read_text().strip()
        assert ("50000", "100000") == (
            (cpu / "cpu.cfs_quota_us").read_text().strip(),
            (cpu / "cpu.cfs_period_us").read_text().strip(),
        )
        await container.kill()
        await container.wait()
        stranger = await engine.create(image="busybox", command=["true"], user="nobody-here")
        with pytest.raises(SpawnError, match="nobody-here") as failed:
            await stranger.start()
        assert 125 == failed.value.exit_code


async def test_a_cancelled_stop_still_ends_the_container(engine: Engine) -> None:
    """A stop cancelled in its grace period SIGKILLs and reaps PID 1 (shielded), the container
    is stopped, then the cancellation propagates; nothing of it is left."""
    with anyio.fail_after(30):
        container = await engine.create(image="busybox", command=["sleep", "60"], stop_timeout=30)
        await container.start()
        pid = container.pid
        assert pid is not None
        with anyio.move_on_after(0.2) as scope:
            await container.stop()  # sleep ignores SIGTERM as PID 1: waits the 30 s grace
        assert scope.cancelled_caught
        assert (State.STOPPED, 137) == (container.state, container.exit_code)
        assert proc_state(pid) is None


async def test_logs_follow_and_wait_conditions(engine: Engine) -> None:
    """logs(follow=True) yields each line as it comes until the container stops for good;
    wait("next-exit") returns at the next exit, wait("removed") at the removal."""
    with anyio.fail_after(30):
        container = await engine.create(
            image="busybox", command=["sh", "-c", "echo one; echo two; exit 5"]
        )
        seen: list[str] = []
        async with anyio.create_task_group() as group:

            async def follow() -> None:
                async for line in container.logs(follow=True):
                    seen.append(line.text)

            async def next_exit() -> None:
                assert 5 == await container.wait("next-exit")

            group.start_soon(next_exit)
            await anyio.wait_all_tasks_blocked()
            await container.start()
            group.start_soon(follow)
        assert ["one", "two"] == seen
        async with anyio.create_task_group() as group:
            codes: list[int] = []

            async def removed() -> None:
                codes.append(await container.wait("removed"))

            group.start_soon(removed)
            await anyio.wait_all_tasks_blocked()
            await container.remove()
        assert [5] == codes


async def test_a_runtime_killed_in_the_middle_of_create_leaves_nothing(
    store: ImageStore, runtime: str, tmp_path: Path
) -> None:
    """The runtime binary SIGKILLed right after it made the container (a wrapper that kills
    itself): the start fails with the engine's exit code 125, and the driver deletes what the
    runtime left (its state, cgroups, PID 1 waiting for start) and the bundle."""
    from lifecycle.runtime.oci import OciDriver  # noqa: PLC0415

    wrapper = tmp_path / f"killed-{runtime}"
    real = shutil.which(runtime)
    wrapper.write_text(
        "#!/bin/sh\n"
        f'for a in "$@"; do [ "$a" = create ] && {{ {real} "$@"; kill -9 $$; }}; done\n'
        f'exec {real} "$@"\n'
    )
    wrapper.chmod(0o755)
    driver = OciDriver(str(wrapper), name=runtime)
    with anyio.fail_after(30):
        async with Engine(store=store, runtime=runtime, drivers=[driver]) as engine:
            container = await engine.create(image="busybox", command=["sleep", "60"])
            with pytest.raises(SpawnError) as failed:
                await container.start()
            assert 125 == failed.value.exit_code
            assert State.CREATED == container.state
            assert [] == runtime_ids(runtime)
            assert [] == [path for path in OCI_CGROUPS.glob("*") if path.is_dir()]
            assert [] == list(Path("/run/lifecycle/bundles").glob("*/*"))


# -- health probes: runc exec / crun exec inside the container (issue 17) ----------


def _cgroup_processes(pid: int) -> list[int]:
    path = freezer_cgroup(pid)
    assert path is not None
    text = Path(f"/sys/fs/cgroup/freezer{path}/cgroup.procs").read_text()
    return sorted(int(line) for line in text.split())


async def test_the_probe_runs_inside_the_container(engine: Engine) -> None:
    inside = 'echo "$(hostname) $GREETING $(cat /proc/1/cmdline | tr "\\0" " ")"; [ $$ -ne 1 ]'
    check = Healthcheck(("CMD-SHELL", inside), interval=0.05, start_interval=0.05, timeout=10)
    with anyio.fail_after(30):
        container = await engine.create(
            ["sleep", "60"], image="busybox", env={"GREETING": "hello"}, healthcheck=check
        )
        await container.start()
        await container.wait_healthy(timeout=20)
        output = container.health.log[-1].output
        assert f"{container.short_id} hello sleep 60 \n" == output
        await container.stop(timeout=0)


async def test_a_probe_past_its_timeout_leaves_nothing_in_the_container(engine: Engine) -> None:
    check = Healthcheck(
        ("CMD", "sleep", "30"), interval=0.05, start_interval=0.05, timeout=0.3, retries=1
    )
    with anyio.fail_after(30):
        container = await engine.create(["sleep", "60"], image="busybox", healthcheck=check)
        await container.start()
        pid = container.pid
        assert pid is not None
        await eventually(lambda: container.health.status == "unhealthy", timeout=20)
        assert -1 == container.health.log[0].exit_code
        assert "Health check exceeded timeout (300ms)" == container.health.log[0].output
        # The probe is gone: only PID 1 (or PID 1 and a probe just begun) is in the cgroup,
        # and once the monitor is stopped by the stop, nothing but PID 1 was ever left.
        await eventually(lambda: len(_cgroup_processes(pid)) <= 2)
        await container.stop(timeout=0)
