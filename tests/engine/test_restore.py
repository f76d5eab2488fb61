"""The journal through the engine: ``Engine(root=...)`` writes each container's record at
every committed transition and brings the containers back when the next engine enters --
on real processes, checked against /proc, on both backends. The crash test kills an
engine with SIGKILL at random points of a busy workload, many times, and checks that
the restored state agrees with the OS and loses no container whose create had returned.
"""

from __future__ import annotations

import functools
import os
import random
import secrets
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from lifecycle import Container, Engine, ImageStore, JournalError, State
from lifecycle.journal import Journal

from ..images.tools import busybox_system_rootfs, require
from ..oshelpers import (
    eventually,
    proc_state,
    read_first_line,
    read_proc_stat,
    require_root,
    tmpfs,
)

pytestmark = pytest.mark.anyio

REPO = Path(__file__).resolve().parents[2]


def alive(pid: int) -> bool:
    return proc_state(pid) not in (None, "Z", "X")


async def test_created_and_stopped_containers_come_back_as_they_were(tmp_path: Path) -> None:
    log = tmp_path / "c.log"
    with anyio.fail_after(20):
        async with Engine(root=tmp_path) as engine:
            created = await engine.create(["true"], name="created", labels={"team": "web"})
            failed = await engine.create(
                ["sh", "-c", "echo out; echo err >&2; exit 3"], name="failed", log_file=log
            )
            await failed.start()
            assert 3 == await failed.wait()
            before = {
                c.id: (c.name, c.state, c.exit_code, c.started_at, c.finished_at)
                for c in (created, failed)
            }
        async with Engine(root=tmp_path) as engine:
            after = {
                c.id: (c.name, c.state, c.exit_code, c.started_at, c.finished_at)
                for c in engine.containers()
            }
            assert before == after
            assert {"team": "web"} == engine.get("created").labels
            restored = engine.get("failed")
            assert ["out", "err"] == [line.text for line in restored.logs()]
            assert ["stdout", "stderr"] == [line.stream for line in restored.logs()]
            assert [State.CREATED, State.STOPPED] == [c.state for c in engine.containers()]
            # And they work as before: the names are taken, the table applies.
            await restored.start()
            assert 3 == await restored.wait()
            assert 4 == len(restored.logs())
            await engine.get("created").remove()
        async with Engine(root=tmp_path) as engine:
            assert ["failed"] == [c.name for c in engine.containers()]


# (policy, how the last run ended, whether the next engine starts it): moby's
# RestartManager.ShouldRestart as daemon.restore calls it.
RULES = [
    ("no", "by-hand", False),
    ("no", "shutdown", False),
    ("no", "exit-3", False),
    ("always", "by-hand", True),  # docker/for-linux#652: always ignores docker stop here
    ("always", "shutdown", True),
    ("always", "never-started", False),  # moby: only a container that ran before
    ("unless-stopped", "by-hand", False),
    ("unless-stopped", "shutdown", True),  # a stop by the shutdown is not by hand
    ("on-failure", "by-hand", True),  # exit code 143: not 0
    ("on-failure", "shutdown", True),
    ("on-failure", "exit-0", False),
    ("on-failure:3", "exit-3", False),  # its 3 restarts were made (the count is kept)
    ("on-failure", "never-started", False),
]


@pytest.mark.parametrize(("policy", "ending", "restarted"), RULES)
async def test_restart_rules_on_restore(
    tmp_path: Path, policy: str, ending: str, restarted: bool
) -> None:
    code = ending.removeprefix("exit-")
    command = ["sh", "-c", f"exit {code}"] if ending.startswith("exit-") else ["sleep", "60"]
    with anyio.fail_after(20):
        async with Engine(root=tmp_path) as engine:
            container = await engine.create(command, restart=policy, stop_timeout=5)
            if ending != "never-started":
                await container.start()
            if ending == "by-hand":
                await container.stop()
            elif ending.startswith("exit-"):
                await container.wait()  # and every restart of its policy
                assert int(code) == container.exit_code
            count = container.restart_count
        async with Engine(root=tmp_path) as engine:
            (back,) = engine.containers()
            assert (back.state is State.RUNNING) is restarted
            if restarted:
                assert back.pid is not None
                assert alive(back.pid)
                assert 0 == back.restart_count  # moby: a restore's start is like docker start
            else:
                assert back.pid is None
                assert count == back.restart_count


async def test_a_run_the_engine_never_saw_end_is_stopped_with_255(tmp_path: Path) -> None:
    """The engine is killed (SIGKILL) with containers running and paused: the next one
    kills what is left of them and brings them back stopped, exit code 255 (moby)."""
    marker = secrets.token_hex(8)
    script = (
        "import anyio, sys\n"
        "from lifecycle import Engine\n"
        "async def main():\n"
        "    async with Engine(root=sys.argv[1]) as engine:\n"
        "        a = await engine.create(['sh', '-c', 'sleep 60 & exec sleep 60'], name='a')\n"
        "        b = await engine.create(['sleep', '60'], name='b', restart='always')\n"
        "        await a.start(); await a.kill(); await a.start()\n"  # a run that ended before
        "        await b.start(); await b.pause()\n"
        "        print(a.pid, b.pid, flush=True)\n"
        "        await anyio.sleep_forever()\n"
        "anyio.run(main)\n"
    )
    environment = {**os.environ, "CRASH_MARKER": marker}
    with anyio.fail_after(30):
        engine_process = await anyio.open_process(
            [sys.executable, "-c", script, str(tmp_path)], env=environment, cwd=REPO
        )
        assert engine_process.stdout is not None
        pid_a, pid_b = map(int, (await read_first_line(engine_process.stdout)).split())
        engine_process.kill()
        await engine_process.wait()
        assert alive(pid_a)  # nothing killed them: the journal has to settle it
        async with Engine(root=tmp_path) as engine:
            a, b = engine.get("a"), engine.get("b")
            assert (State.STOPPED, 255) == (a.state, a.exit_code)
            assert a.started_at is not None
            assert a.finished_at is not None
            assert a.finished_at > a.started_at
            assert not alive(pid_a)
            assert not alive(pid_b)
            await eventually(lambda: not marked_processes(marker), 5)
            # b's policy (always) starts it again, as a new process.
            assert b.state is State.RUNNING
            assert b.pid not in (None, pid_b)


def marked_processes(marker: str) -> list[int]:
    """Live processes whose environment carries CRASH_MARKER=marker (started by that engine)."""
    entry = f"CRASH_MARKER={marker}".encode()
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            environ = Path(f"/proc/{name}/environ").read_bytes()
        except OSError:
            continue
        if entry in environ.split(b"\0") and alive(int(name)):
            found.append(int(name))
    return found


async def run_until_killed(
    root: Path,
    seed: int,
    backend: str,
    marker: str,
    kill_at: int,
    runtime: str,
    *,
    live_restore: bool = False,
) -> tuple[set[str], set[str], set[str]]:
    """Run the workload on ``root`` and SIGKILL it once it has printed ``kill_at`` lines;
    the ids it said were created, being removed, and removed."""
    environment = {**os.environ, "CRASH_MARKER": marker}
    said: dict[str, set[str]] = {"created": set(), "removing": set(), "removed": set()}
    workload = await anyio.open_process(
        [
            sys.executable,
            "-m",
            "tests.engine.crash_workload",
            *(str(root), str(seed), backend, runtime),
            *(["live"] if live_restore else []),
        ],
        env=environment,
        cwd=REPO,
        stderr=subprocess.DEVNULL,
    )
    assert workload.stdout is not None
    lines = 0
    buffered = b""
    async for chunk in workload.stdout:
        buffered += chunk
        *complete, buffered = buffered.split(b"\n")
        for text in complete:
            word, *rest = text.decode().split()
            if word in said:
                said[word].add(rest[0])
            lines += 1
        if lines >= kill_at:
            break
    workload.send_signal(signal.SIGKILL)
    await workload.wait()
    await workload.stdout.aclose()
    return said["created"], said["removing"], said["removed"]


@pytest.fixture(params=["native", "runc", "runc-live"])
async def crash_runtime(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The crash test on the native driver, and on runc with busybox containers on overlay
    root filesystems (root and runc: skipped without them, required in CI), with and
    without live_restore."""
    runtime: str = request.param
    if runtime != "native":
        require_root("containers under runc")
        require("runc")
        store = ImageStore(tmp_path / "root")
        rootfs = busybox_system_rootfs(tmp_path / "busybox")
        await store.import_rootfs(rootfs, "busybox", cmd=["sh"])
    return runtime


async def test_crash_at_random_points_never_loses_a_created_container(
    tmp_path: Path, anyio_backend: str, crash_runtime: str
) -> None:
    """SIGKILL an engine at a random line of a busy workload (between a spawn and its
    commit, mid-remove, mid-write: wherever it falls), restore, check, many times on one
    root: every container whose create returned and whose remove did not begin is back,
    none whose remove returned is; none runs unless its policy restarted it (a new
    process of ours); nothing the dead engine started is left, not even a child that
    left PID 1's process group; under runc no runtime container, mount or root
    filesystem is left that no restored container holds."""
    seed = random.randrange(1 << 30)  # noqa: S311 -- in the failure message, to replay
    chooser = random.Random(seed)  # noqa: S311
    root = tmp_path / "root"
    oci = crash_runtime != "native"
    live = crash_runtime == "runc-live"  # runs left running are adopted, not killed
    runtime = "runc" if oci else "native"
    for round_number in range(8 if oci else 20):
        marker = secrets.token_hex(8)
        where = f"seed {seed} round {round_number}"
        with anyio.fail_after(90):
            created, removing, removed = await run_until_killed(
                root,
                seed + round_number,
                anyio_backend,
                marker,
                chooser.randint(1, 40 if oci else 60),
                runtime,
                live_restore=live,
            )
            async with Engine(
                root=root, observe_interval=None, runtime=runtime, live_restore=live
            ) as engine:
                back = {c.id: c for c in engine.containers()}
                assert not (created - removing) - set(back), f"{where}: lost containers"
                assert not removed & set(back), f"{where}: a remove that returned came undone"
                assert set(back) == Journal(root).ids(), f"{where}: records and containers differ"
                kept = frozenset(
                    c.short_id for c in back.values() if c.state in (State.RUNNING, State.PAUSED)
                )
                for container in back.values():
                    if container.state is State.PAUSED:
                        assert live, f"{where}: paused without live_restore"
                    if container.state in (State.RUNNING, State.PAUSED):
                        # Restarted by its policy: a child of this engine (it may have exited
                        # already, `true`, its die not yet committed); or, with live_restore,
                        # adopted: its PID 1 still running.
                        assert container.pid is not None
                        stat = read_proc_stat(container.pid)
                        restarted = stat is not None and stat.ppid == os.getpid()
                        if restarted or not live:
                            assert restarted, f"{where}: {container} is not this engine's"
                            assert container.restart_policy.name in ("always", "unless-stopped")
                        else:
                            assert alive(container.pid), where
                    else:
                        assert container.state in (State.CREATED, State.STOPPED), where
                # Nothing the dead engine started is left, but what was adopted.
                await eventually(functools.partial(nothing_marked, marker, kept), 5)
                if oci:
                    # Only restored containers that run (or restart) have a runtime
                    # container; a run's delete is asynchronous, hence eventually.
                    await eventually(functools.partial(runtime_agrees, runtime, back), 10)
                    homes = {p.name for p in (root / "snapshots/overlayfs/containers").iterdir()}
                    assert homes == set(back), f"{where}: root filesystems and containers differ"
                for container in list(back.values()):
                    if chooser.random() < 0.3:
                        await container.remove(force=True)
                    elif live and container.state in (State.RUNNING, State.PAUSED):
                        # Not left to outlive this engine: its monitor would be a child of
                        # the test process, and a zombie of it once another engine stops it.
                        await container.stop(timeout=0)
    if os.geteuid() == 0:
        left = [
            path
            for path in Path("/sys/fs/cgroup/freezer").glob("**/lifecycle/*-*/*")
            if path.is_dir()
        ]
        assert not left, f"cgroups a dead engine left: {left}"


def runtime_agrees(runtime: str, containers: dict[str, Container]) -> bool:
    live = {
        c.short_id
        for c in containers.values()
        if c.state in (State.RUNNING, State.PAUSED) or c.restarting
    }
    return {name.rsplit("-", 1)[0] for name in runtime_ids(runtime)} <= live


def runtime_ids(runtime: str) -> list[str]:
    """The containers the OCI runtime has in our state directory."""
    state = Path("/run/lifecycle") / runtime
    return [entry.name for entry in state.iterdir()] if state.is_dir() else []


def nothing_marked(marker: str, kept: frozenset[str] = frozenset()) -> bool:
    """No process the dead engine started is left, but the monitors and processes of the
    containers in ``kept`` (short ids: adopted by live_restore)."""
    return all(_serves(pid, kept) for pid in marked_processes(marker))


def _serves(pid: int, kept: frozenset[str]) -> bool:
    """Whether ``pid`` is a monitor (its command line) or a process (its cgroups) of a
    container in ``kept``; True for one that is gone meanwhile."""
    try:
        about = Path(f"/proc/{pid}/cmdline").read_bytes() + Path(f"/proc/{pid}/cgroup").read_bytes()
    except OSError:
        return True
    return any(short_id.encode() in about for short_id in kept)


async def test_a_second_engine_on_the_same_root_is_refused(tmp_path: Path) -> None:
    with anyio.fail_after(10):
        async with Engine(root=tmp_path) as engine:
            await engine.create(["true"], name="kept")
            with pytest.raises(JournalError, match="another engine is using this root"):
                async with Engine(root=tmp_path):
                    pass
            assert ["kept"] == [c.name for c in engine.containers()]


async def test_a_broken_record_costs_only_its_container(tmp_path: Path) -> None:
    with anyio.fail_after(10):
        async with Engine(root=tmp_path) as engine:
            broken = await engine.create(["true"], name="broken")
            await engine.create(["true"], name="fine")
        path = tmp_path / "containers" / f"{broken.id}.json"
        path.write_text('{"version": 1, "id": "')  # torn by hand
        async with Engine(root=tmp_path) as engine:
            assert ["fine"] == [c.name for c in engine.containers()]
        assert path.exists()  # kept for a person to look at, never deleted


@pytest.fixture
def tiny_root(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs as the engine's root: a real disk that fills (root only)."""
    with tmpfs(tmp_path / "tiny", "1m") as mount:
        yield mount


async def test_a_journal_that_cannot_be_written_is_the_callers_error(tiny_root: Path) -> None:
    with anyio.fail_after(20):
        async with Engine(root=tiny_root) as engine:
            container = await engine.create(["sleep", "60"], name="kept")
            filler = tiny_root / "filler"
            fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
            try:
                while os.write(fd, b"\0" * 4096):
                    pass
            except OSError:
                pass  # full
            finally:
                os.close(fd)
            with pytest.raises(JournalError, match="cannot be written"):
                await container.start()  # it started; its record says created: said so
            assert container.state is State.RUNNING
            with pytest.raises(JournalError, match="cannot be written"):
                await engine.create(["true"], name="not-made")
            assert ["kept"] == [c.name for c in engine.containers()]
            filler.unlink()
            await container.stop(timeout=0)  # written again: the record catches up
            assert State.STOPPED is Journal(tiny_root).read(container.id).state


async def test_live_restore_stops_native_containers_at_shutdown_as_ever(tmp_path: Path) -> None:
    """A native container is the engine's child: live_restore cannot keep it, so the
    shutdown stops it (SIGTERM, 143) and the next engine restores it stopped with that
    code, not as a run it never saw end."""
    with anyio.fail_after(20):
        async with Engine(root=tmp_path, live_restore=True) as engine:
            container = await engine.create(["sleep", "60"], name="native")
            await container.start()
            pid = container.pid
        assert pid is not None
        assert proc_state(pid) is None
        async with Engine(root=tmp_path, live_restore=True) as engine:
            back = engine.get("native")
            assert (State.STOPPED, 143) == (back.state, back.exit_code)
