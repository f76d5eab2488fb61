"""The supervised process: spawn, pause, stop, kill, die, process groups, exit codes."""

from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path

import anyio
import pytest

from lifecycle import (
    Container,
    ContainerNotFoundError,
    Engine,
    InvalidTransitionError,
    NameConflictError,
    SpawnError,
    State,
)

from ..oshelpers import (
    eventually,
    forking,
    group_alive,
    group_states,
    none_paused,
    paused_states,
    proc_state,
    term_handling,
    term_ignoring,
    wait_for_file,
    whole_group_paused,
)

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("native_containment")]


async def test_start_runs_argv_in_its_own_session_and_group(tmp_path: Path) -> None:
    """The child is the leader of a new session and process group, with env and cwd applied."""
    out = tmp_path / "out"
    command = ["sh", "-c", f'echo "$GREETING $HOME" > {out}; pwd >> {out}; exec sleep 60']
    with anyio.fail_after(10):
        async with Engine(environ={"HOME": "/home/base", "PATH": os.environ["PATH"]}) as engine:
            container = await engine.create(command, env={"GREETING": "hi"}, cwd=tmp_path)
            await container.start()
            text = await wait_for_file(out)
            pid = container.pid
            assert pid is not None
            assert os.getsid(pid) == pid
            assert os.getpgid(pid) == pid
            assert os.getsid(0) != pid
            assert f"hi /home/base\n{tmp_path}\n" == text
            assert container.started_at is not None
            assert container.started_at.tzinfo is not None


async def test_env_replaces_instead_of_merging_when_asked(tmp_path: Path) -> None:
    """inherit_env=False gives the child exactly env and nothing from the engine's environment."""
    out = tmp_path / "out"
    with anyio.fail_after(10):
        async with Engine() as engine:
            container = await engine.create(
                ["sh", "-c", f"/usr/bin/env > {out}"],
                env={"ONLY": "1", "PATH": "/usr/bin:/bin"},
                inherit_env=False,
            )
            await container.start()
            assert 0 == await container.wait()
    assert {"ONLY=1", "PATH=/usr/bin:/bin"} <= set(out.read_text().split())
    assert "HOME=" not in out.read_text()


async def test_pause_stops_the_whole_group_in_proc(tmp_path: Path) -> None:
    """pause() returns with the main process and its grandchildren in state T; unpause resumes."""
    ready = tmp_path / "ready"
    with anyio.fail_after(10):
        async with Engine() as engine:
            container = await engine.create(forking(ready))
            await container.start()
            grandchildren = [int(p) for p in (await wait_for_file(ready)).split()]
            await container.pause()
            assert container.pid is not None
            states = group_states(container.pid)
            assert set(grandchildren) | {container.pid} == set(states)
            assert whole_group_paused(container.pid)
            await container.unpause()
            assert none_paused(container.pid)
            assert State.RUNNING == container.state


async def test_stop_of_a_term_ignoring_child_escalates_to_sigkill(tmp_path: Path) -> None:
    """A child that ignores SIGTERM is SIGKILLed at the timeout: exit code 137."""
    ready = tmp_path / "ready"
    with anyio.fail_after(10):
        async with Engine() as engine:
            container = await engine.create(term_ignoring(ready), stop_timeout=0.5)
            await container.start()
            await wait_for_file(ready)
            started = time.monotonic()
            await container.stop()
            waited = time.monotonic() - started
            assert State.STOPPED == container.state
            assert 137 == container.exit_code
            assert waited >= 0.5  # it did wait for the grace period before killing
            assert container.finished_at is not None


async def test_stop_timeout_zero_kills_at_once(tmp_path: Path) -> None:
    """stop(timeout=0) does not wait for a SIGTERM-ignoring child: 137."""
    ready = tmp_path / "ready"
    with anyio.fail_after(5):
        async with Engine() as engine:
            container = await engine.create(term_ignoring(ready), stop_timeout=30)
            await container.start()
            await wait_for_file(ready)
            await container.stop(timeout=0)
            assert 137 == container.exit_code


async def test_cooperative_stop_gives_the_processs_own_status(tmp_path: Path) -> None:
    """A child that handles SIGTERM and exits 0 stops with exit code 0."""
    ready = tmp_path / "ready"
    with anyio.fail_after(10):
        async with Engine() as engine:
            container = await engine.create(term_handling(ready))
            await container.start()
            await wait_for_file(ready)
            await container.stop()
            assert 0 == container.exit_code


async def test_stop_of_a_paused_child_that_handles_term(tmp_path: Path) -> None:
    """A paused child gets SIGCONT after the stop signal, so it can handle it and exit 0."""
    ready = tmp_path / "ready"
    with anyio.fail_after(10):
        async with Engine() as engine:
            container = await engine.create(term_handling(ready), stop_timeout=5)
            await container.start()
            await wait_for_file(ready)
            await container.pause()
            await container.stop()
            assert (State.STOPPED, 0) == (container.state, container.exit_code)


async def test_child_exiting_by_itself_is_stopped_with_its_code() -> None:
    """A child that exits 3 by itself moves its container to stopped with exit code 3."""
    with anyio.fail_after(10):
        async with Engine() as engine:
            container = await engine.create(["sh", "-c", "exit 3"])
            await container.start()
            assert 3 == await container.wait()
            assert (State.STOPPED, 3, None) == (container.state, container.exit_code, container.pid)


async def test_external_sigkill_is_detected_as_137() -> None:
    """kill -9 from outside the engine: the container is stopped, exit code 137."""
    with anyio.fail_after(10):
        async with Engine() as engine:
            container = await engine.create(["sleep", "60"])
            await container.start()
            assert container.pid is not None
            os.kill(container.pid, signal.SIGKILL)
            assert 137 == await container.wait()
            assert State.STOPPED == container.state


@pytest.mark.parametrize("how", ["stop", "kill", "die"])
async def test_no_grandchild_survives(how: str, tmp_path: Path) -> None:
    """After stop, kill or the main process's own exit, nothing of its group remains."""
    ready = tmp_path / "ready"
    command = forking(ready)
    if how == "die":  # the shell leaves its background children behind and exits
        command = [
            "sh",
            "-c",
            f"sleep 60 & a=$!; sleep 60 & echo $a $! > {ready}; read x < {ready}.go",
        ]
        os.mkfifo(f"{ready}.go")
    with anyio.fail_after(10):
        async with Engine() as engine:
            container = await engine.create(command, stop_timeout=5)
            await container.start()
            grandchildren = [int(p) for p in (await wait_for_file(ready)).split()]
            group = container.pid
            assert group is not None
            if how == "stop":
                await container.stop()
            elif how == "kill":
                await container.kill()
            else:
                with open(f"{ready}.go", "w") as go:
                    go.write("\n")
                await container.wait()
            assert [] == group_alive(group)
            for pid in grandchildren:
                # Gone, or a zombie waiting for whoever adopted it (init, a subreaper).
                assert proc_state(pid) in {None, "Z"}


async def test_kill_with_a_handled_signal_keeps_it_running(tmp_path: Path) -> None:
    """kill('SIGHUP') to a child that handles it returns with the container still running."""
    ready = tmp_path / "ready"
    command = [
        "sh",
        "-c",
        f"trap 'echo hup >> {ready}' HUP; echo ready > {ready}; while :; do sleep 0.05; done",
    ]
    with anyio.fail_after(10):
        async with Engine() as engine:
            container = await engine.create(command)
            await container.start()
            await wait_for_file(ready)
            await container.kill("SIGHUP")
            await eventually(lambda: "hup" in ready.read_text())
            assert State.RUNNING == container.state


async def test_kill_a_paused_survivor_resumes_it(tmp_path: Path) -> None:
    """kill(sig) on a paused container delivers it then SIGCONT: a survivor runs again."""
    ready = tmp_path / "ready"
    command = [
        "sh",
        "-c",
        f"trap 'echo usr1 >> {ready}' USR1; echo ready > {ready}; while :; do sleep 0.05; done",
    ]
    with anyio.fail_after(10):
        async with Engine() as engine:
            container = await engine.create(command)
            await container.start()
            await wait_for_file(ready)
            await container.pause()
            await container.kill(signal.SIGUSR1)
            assert State.RUNNING == container.state
            await eventually(lambda: "usr1" in ready.read_text())
            assert container.pid is not None
            assert none_paused(container.pid)


async def test_kill_with_a_fatal_signal_stops_it_with_128_plus_n() -> None:
    """kill(SIGTERM as a number) to a child that does not handle it: stopped, 143."""
    with anyio.fail_after(10):
        async with Engine() as engine:
            container = await engine.create(["sleep", "60"])
            await container.start()
            await container.kill(15)
            assert 143 == await container.wait()


@pytest.mark.parametrize(
    ("command", "exit_code", "fragment"),
    [
        (["/nonexistent/program"], 127, "not found"),
        (["no-such-command-anywhere"], 127, "not found"),
        (["/etc/hostname"], 126, "cannot execute"),
        (["/tmp"], 126, "cannot execute"),
    ],
)
async def test_spawn_failures_keep_the_state_and_record_the_code(
    command: list[str], exit_code: int, fragment: str
) -> None:
    """Not found -> 127, not executable -> 126; state unchanged; exit_code and error recorded."""
    with anyio.fail_after(10):
        async with Engine() as engine:
            container = await engine.create(command)
            with pytest.raises(SpawnError) as caught:
                await container.start()
            assert exit_code == caught.value.exit_code
            assert fragment in str(caught.value)
            assert (State.CREATED, exit_code) == (container.state, container.exit_code)
            assert container.error is not None
            assert fragment in container.error


async def test_missing_cwd_is_a_spawn_error_naming_the_directory(tmp_path: Path) -> None:
    """A cwd that does not exist fails start with SpawnError naming the directory."""
    missing = tmp_path / "missing"
    with anyio.fail_after(10):
        async with Engine() as engine:
            container = await engine.create(["true"], cwd=missing)
            with pytest.raises(SpawnError, match=re.escape(str(missing))):
                await container.start()
            assert State.CREATED == container.state


async def test_docker_no_ops() -> None:
    """start on running and stop on created/stopped change nothing and raise nothing."""
    with anyio.fail_after(10):
        async with Engine() as engine:
            container = await engine.create(["sleep", "60"])
            await container.stop()
            assert (State.CREATED, None) == (container.state, container.exit_code)
            await container.start()
            pid = container.pid
            await container.start()
            assert pid == container.pid
            await container.stop()
            code = container.exit_code
            await container.stop()
            assert (State.STOPPED, code) == (container.state, container.exit_code)


async def test_operations_outside_the_table_raise_and_change_nothing() -> None:
    """pause on created, unpause on running, start on paused, remove on running: refused."""
    with anyio.fail_after(10):
        async with Engine() as engine:
            container = await engine.create(["sleep", "60"], name="web")
            with pytest.raises(InvalidTransitionError, match="cannot pause container web"):
                await container.pause()
            await container.start()
            pid = container.pid
            with pytest.raises(InvalidTransitionError):
                await container.unpause()
            with pytest.raises(InvalidTransitionError, match="stop the container before removing"):
                await container.remove()
            await container.pause()
            with pytest.raises(InvalidTransitionError, match="try unpause instead"):
                await container.start()
            assert (State.PAUSED, pid) == (container.state, container.pid)
            assert pid is not None
            assert whole_group_paused(pid)


async def test_forced_remove_kills_first_and_frees_the_name() -> None:
    """remove(force=True) on a running container kills it (137), deletes it, frees its name."""
    with anyio.fail_after(10):
        async with Engine() as engine:
            container = await engine.create(["sleep", "60"], name="web")
            await container.start()
            pid = container.pid
            assert pid is not None
            await container.remove(force=True)
            assert (State.DELETED, 137) == (container.state, container.exit_code)
            assert [] == group_alive(pid)
            with pytest.raises(InvalidTransitionError, match="container is deleted"):
                await container.start()
            again = await engine.create(["true"], name="web")
            assert again is engine.get("web")


async def test_wait_conditions() -> None:
    """wait(): not-running returns at once when not live; next-exit and removed wait for them."""
    with anyio.fail_after(10):
        async with Engine() as engine:
            container = await engine.create(["sh", "-c", "exit 7"])
            assert 0 == await container.wait()  # created: not running
            async with anyio.create_task_group() as group:
                results: list[int] = []

                async def wait_next_exit() -> None:
                    results.append(await container.wait("next-exit"))

                group.start_soon(wait_next_exit)
                await anyio.wait_all_tasks_blocked()
                await container.start()
            assert [7] == results
            assert 7 == await container.wait("not-running")
            async with anyio.create_task_group() as group:
                removed: list[int] = []

                async def wait_removed() -> None:
                    removed.append(await container.wait("removed"))

                group.start_soon(wait_removed)
                await anyio.wait_all_tasks_blocked()
                assert [] == removed
                await container.remove()
            assert [7] == removed
            with pytest.raises(ContainerNotFoundError):
                await container.wait("next-exit")


async def test_operations_on_one_container_run_in_call_order(tmp_path: Path) -> None:
    """stop (slow), then start, then pause, called in that order, happen in that order."""
    ready = tmp_path / "ready"
    order: list[str] = []
    with anyio.fail_after(10):
        async with Engine() as engine:
            container = await engine.create(term_ignoring(ready), stop_timeout=0.3)
            await container.start()
            await wait_for_file(ready)

            async def run(name: str) -> None:
                await getattr(container, name)()
                order.append(name)

            async with anyio.create_task_group() as group:
                for name in ("stop", "start", "pause"):
                    group.start_soon(run, name)
                    await anyio.wait_all_tasks_blocked()
            assert ["stop", "start", "pause"] == order
            assert State.PAUSED == container.state


async def test_containers_proceed_concurrently(tmp_path: Path) -> None:
    """A slow stop of one container does not hold up operations on another."""
    ready = tmp_path / "ready"
    with anyio.fail_after(20):
        async with Engine() as engine:
            slow = await engine.create(term_ignoring(ready), stop_timeout=1)
            quick = await engine.create(["sleep", "60"])
            await slow.start()
            await wait_for_file(ready)
            await quick.start()
            async with anyio.create_task_group() as group:
                group.start_soon(slow.stop)
                await anyio.wait_all_tasks_blocked()
                await quick.pause()
                await quick.stop()
                assert State.RUNNING == slow.state  # still in its grace period
                assert State.STOPPED == quick.state
            assert 137 == slow.exit_code


async def test_identity_and_lookup() -> None:
    """ids are 64 hex chars; names generated or given; lookup by id, name or unique prefix."""
    with anyio.fail_after(10):
        async with Engine() as engine:
            first = await engine.create(["true"], name="web")
            second = await engine.create(["true"])
            assert re.fullmatch(r"[0-9a-f]{64}", first.id)
            assert first.id[:12] == first.short_id
            assert re.fullmatch(r"[a-z]+_[a-z]+", second.name)
            assert first is engine.get(first.id)
            assert first is engine.get("web")
            assert first is engine.get(first.short_id)
            assert [first, second] == engine.containers()
            with pytest.raises(ContainerNotFoundError, match="no such container: nope"):
                engine.get("nope")
            with pytest.raises(NameConflictError, match=f"in use by container {first.short_id}"):
                await engine.create(["true"], name="web")
            assert 2 == len(engine.containers())


async def test_ambiguous_prefix_is_reported() -> None:
    """An id prefix shared by several containers is refused as ambiguous."""
    with anyio.fail_after(10):
        async with Engine() as engine:
            containers = [await engine.create(["true"]) for _ in range(40)]
            first_chars = [c.id[0] for c in containers]
            shared = next(ch for ch in first_chars if first_chars.count(ch) > 1)
            with pytest.raises(ContainerNotFoundError, match="ambiguous"):
                engine.get(shared)


async def test_repr_shows_live_state() -> None:
    """repr names the container and shows its state and pid or exit code."""
    with anyio.fail_after(10):
        async with Engine() as engine:
            container = await engine.create(["sleep", "60"], name="web")
            assert f"<Container web ({container.short_id}) created>" == repr(container)
            await container.start()
            assert f"running, pid {container.pid}>" in repr(container)
            await container.kill()
            assert repr(container).endswith("stopped, exit code 137>")


def test_container_has_no_public_constructor() -> None:
    """Container() is refused: containers come from Engine.create."""
    with pytest.raises(TypeError, match="no public constructor"):
        Container()


@pytest.mark.parametrize("paused", [False, True], ids=["running", "paused"])
async def test_forced_remove_of_a_live_container(paused: bool) -> None:
    """remove(force=True) works on running and paused containers alike: killed, then deleted."""
    with anyio.fail_after(10):
        async with Engine() as engine:
            container = await engine.create(["sleep", "60"])
            await container.start()
            if paused:
                await container.pause()
            group = container.pid
            assert group is not None
            await container.remove(force=True)
            assert (State.DELETED, 137) == (container.state, container.exit_code)
            assert [] == group_alive(group)
            assert [] == engine.containers()


async def test_a_die_during_a_stop_is_not_lost(tmp_path: Path) -> None:
    """Killed from outside during stop's grace period: stop returns at once with 137."""
    ready = tmp_path / "ready"
    with anyio.fail_after(10):
        async with Engine() as engine:
            container = await engine.create(term_ignoring(ready), stop_timeout=30)
            await container.start()
            await wait_for_file(ready)
            pid = container.pid
            assert pid is not None
            async with anyio.create_task_group() as group:
                group.start_soon(container.stop)
                await anyio.wait_all_tasks_blocked()
                assert State.RUNNING == container.state  # in the grace period
                os.kill(pid, signal.SIGKILL)
            assert (State.STOPPED, 137) == (container.state, container.exit_code)


async def test_many_concurrent_lifecycles() -> None:
    """Fifty containers cycled concurrently all end deleted with the right codes, nothing left."""
    codes: list[int | None] = []

    async def cycle(engine: Engine, index: int) -> None:
        container = await engine.create(["sleep", "60"], name=f"c{index}")
        await container.start()
        await container.pause()
        await container.unpause()
        await container.stop()
        codes.append(container.exit_code)
        await container.remove()

    with anyio.fail_after(30):
        async with Engine() as engine:
            async with anyio.create_task_group() as group:
                for index in range(50):
                    group.start_soon(cycle, engine, index)
            assert [] == engine.containers()
    assert [143] * 50 == codes


async def test_restart_whose_new_process_cannot_start_ends_stopped(tmp_path: Path) -> None:
    """Executable gone: restart stops the old process, raises SpawnError, ends stopped."""
    program = tmp_path / "program"
    program.write_text("#!/bin/sh\nexec sleep 60\n")
    program.chmod(0o755)
    with anyio.fail_after(10):
        async with Engine() as engine:
            container = await engine.create([str(program)])
            await container.start()
            group = container.pid
            assert group is not None
            program.unlink()
            with pytest.raises(SpawnError, match="not found"):
                await container.restart()
            assert (State.STOPPED, 127, None) == (
                container.state,
                container.exit_code,
                container.pid,
            )
            assert [] == group_alive(group)
            await container.remove()


async def test_pause_of_a_shell_that_keeps_forking() -> None:
    """A pause landing between a shell's vfork and its child's exec still completes.

    dash starts each command with vfork(); the SIGSTOP can stop the child
    before it execs, and the parent then waits in state D (not T) behind it.
    Pause used to time out after 5 s on that; it happened within a few dozen
    tries. The group is held stopped all the same: every member is T, or D
    with a stopped child.
    """
    with anyio.fail_after(60):
        async with Engine() as engine:
            container = await engine.create(["sh", "-c", "while :; do /bin/true; done"])
            await container.start()
            for _ in range(300):
                await container.pause()
                assert container.pid is not None
                states = paused_states(container.pid)
                held = [pid for pid, state in states.items() if state not in {"T", "frozen"}]
                for pid in held:  # only a parent parked behind its stopped vfork child
                    assert "D" == states[pid], states
                    assert "T" in states.values(), states
                await container.unpause()
            await container.stop()


async def test_bytes_that_came_from_the_os_round_trip_into_argv_and_env() -> None:
    """A name the OS gave as undecodable bytes (os.fsdecode: surrogateescape) reaches the
    process as those bytes, in argv and in the environment."""
    raw = b"caf\xe9"  # Latin-1, not UTF-8
    text = os.fsdecode(raw)
    with anyio.fail_after(10):
        async with Engine() as engine:
            container = await engine.create(
                ["sh", "-c", 'printf "%s|%s" "$1" "$V"', "sh", text], env={"V": text}
            )
            await container.start()
            assert 0 == await container.wait()
    assert [raw + b"|" + raw] == [line.data for line in container.logs()]


async def test_failed_starts_leak_no_descriptor(tmp_path: Path) -> None:
    """200 starts that fail (missing executable, not executable, missing cwd) through the
    engine leave its descriptor table as it was; each is a SpawnError with the code."""
    script = tmp_path / "script"
    script.write_text("#!/bin/sh\n")
    with anyio.fail_after(60):
        async with Engine() as engine:
            containers = [
                await engine.create(["/no/such/binary"]),
                await engine.create([str(script)]),
                await engine.create(["true"], cwd=tmp_path / "gone"),
            ]
            before = sorted(os.listdir("/proc/self/fd"))
            codes = []
            for attempt in range(200):
                with pytest.raises(SpawnError) as failed:
                    await containers[attempt % 3].start()
                codes.append(failed.value.exit_code)
            assert before == sorted(os.listdir("/proc/self/fd"))
    assert {127, 126} == set(codes)
