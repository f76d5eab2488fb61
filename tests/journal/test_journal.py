"""The journal's files: records round-trip exactly, broken ones are errors naming the file,
a full disk is an error the caller sees with the old record intact, a crash's leftovers
are never read."""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lifecycle import Healthcheck, RestartPolicy, State
from lifecycle.journal import Journal, JournalError, JournalRecord
from lifecycle.model import ContainerSpec

from ..oshelpers import tmpfs

_ID = "ab" * 32
_NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


def _record(spec: ContainerSpec, **fields: object) -> JournalRecord:
    values: dict[str, object] = {
        "id": _ID, "name": "web", "spec": spec, "state": State.STOPPED, "created": _NOW,
    }  # fmt: skip
    values.update(fields)
    return JournalRecord(**values)  # type: ignore[arg-type]


def _full_spec() -> ContainerSpec:
    spec = ContainerSpec.build(
        ["sh", "-c", "echo hi"],
        env={"A": "1", "EMPTY": ""},
        inherit_env=False,
        cwd="/srv",
        stop_signal="SIGINT",
        stop_timeout=math.inf,
        restart=RestartPolicy("on-failure", 3, initial_delay=0.01, max_delay=1.0),
        log_bytes=4096,
        log_file="/var/log/web.json",
        runtime="runc",
        image="sha256:" + "cd" * 32,
        rootfs="/store/rootfs/x",
        user="nobody",
        network="none",
        memory=64 * 1024 * 1024,
        pids_limit=50,
        cpu_shares=512,
        cpus=1.5,
        healthcheck=Healthcheck(("CMD-SHELL", "true"), interval=2, retries=4),
        health_on_failure="restart",
        labels={"com.example.team": "web", "empty": ""},
    )
    return dataclasses.replace(spec, hostname=_ID[:12])


def test_a_full_record_round_trips(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    record = _record(
        _full_spec(), exit_code=137, started_at=_NOW, finished_at=_NOW + timedelta(seconds=3),
        restart_count=2, manually_stopped=True, health="unhealthy", pid=4242,
        pid_start_time=987654,
    )  # fmt: skip
    journal.write(record)
    assert record == journal.read(_ID)
    assert [record] == journal.read_all()
    on_disk = json.loads((tmp_path / "containers" / f"{_ID}.json").read_text())
    assert "inf" == on_disk["spec"]["stop_timeout"]  # JSON has no infinity
    journal.remove(_ID)
    assert [] == journal.read_all()
    journal.remove(_ID)  # twice: no error


_TEXT = st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="\0"))
_NAMES = st.from_regex(r"[A-Z_][A-Z0-9_]{0,8}", fullmatch=True)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=50)
@given(
    command=st.lists(_TEXT.filter(bool), min_size=1, max_size=4),
    env=st.dictionaries(_NAMES, _TEXT, max_size=4),
    state=st.sampled_from([State.CREATED, State.RUNNING, State.PAUSED, State.STOPPED]),
    exit_code=st.none() | st.integers(min_value=-1, max_value=255),
)
def test_records_round_trip(
    tmp_path: Path, command: list[str], env: dict[str, str], state: State, exit_code: int | None
) -> None:
    journal = Journal(tmp_path)
    record = _record(ContainerSpec.build(command, env=env), state=state, exit_code=exit_code)
    journal.write(record)
    assert record == journal.read(_ID)


@pytest.mark.parametrize(
    ("damage", "expected"),
    [
        (lambda d: "{not json", "not JSON"),
        (lambda d: json.dumps([1]), "not a JSON object"),
        (lambda d: json.dumps({**d, "version": 9}), "format version 9"),
        (
            lambda d: json.dumps({k: v for k, v in d.items() if k != "state"}),
            "missing field 'state'",
        ),
        (lambda d: json.dumps({**d, "state": "zombie"}), "zombie"),
        (lambda d: json.dumps({**d, "exit_code": "x"}), "exit_code must be a number"),
        (lambda d: json.dumps({**d, "restart_count": -1}), "restart_count"),
        (lambda d: json.dumps({**d, "pid": "1"}), "pid must be a number"),
        (lambda d: json.dumps({**d, "pid_start_time": True}), "pid_start_time must be a number"),
        (lambda d: json.dumps({**d, "manually_stopped": "yes"}), "manually_stopped must be"),
        (lambda d: json.dumps({**d, "id": "ef" * 32}), "holds container"),
        (
            lambda d: json.dumps({**d, "spec": {**d["spec"], "command": []}}),
            "not a container record",
        ),
        (lambda d: json.dumps({**d, "spec": {**d["spec"], "stop_signal": "SIGNOPE"}}), "SIGNOPE"),
        (lambda d: json.dumps({**d, "created": "yesterday"}), "not a container record"),
        (lambda d: " " * (1024 * 1024 + 1), "larger than"),
    ],
)
def test_a_broken_record_is_an_error_naming_the_file(
    tmp_path: Path, damage: object, expected: str
) -> None:
    journal = Journal(tmp_path)
    journal.write(_record(ContainerSpec.build(["true"])))
    path = tmp_path / "containers" / f"{_ID}.json"
    path.write_text(damage(json.loads(path.read_text())))  # type: ignore[operator]
    with pytest.raises(JournalError, match=expected) as caught:
        journal.read_all()
    assert str(path) in str(caught.value)


def test_what_a_crash_left_mid_write_is_never_read(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    journal.write(_record(ContainerSpec.build(["true"])))
    torn = tmp_path / "containers" / f".{_ID}.json.k3j2.tmp"
    torn.write_text('{"version": 1, "id": "')  # half a record
    assert 1 == len(journal.read_all())
    Journal(tmp_path)  # a reader (lifecycle ps) leaves it: it may be a live engine's
    assert torn.exists()
    owner = Journal(tmp_path)
    owner.lock()  # the next engine sweeps it
    assert not torn.exists()
    with pytest.raises(JournalError, match="another engine is using this root"):
        Journal(tmp_path).lock()
    owner.unlock()
    successor = Journal(tmp_path)
    successor.lock()  # free again (and an flock dies with its process)
    successor.unlock()
    with pytest.raises(JournalError, match="not a container id"):
        journal.read("../../etc/passwd")


@pytest.fixture
def tiny_filesystem(tmp_path: Path) -> Iterator[Path]:
    """A 64 KiB tmpfs: a real full disk (root only)."""
    with tmpfs(tmp_path / "tiny", "64k") as mount:
        yield mount


def test_a_full_disk_is_an_error_and_the_old_record_stays(tiny_filesystem: Path) -> None:
    journal = Journal(tiny_filesystem)
    first = _record(ContainerSpec.build(["true"]))
    journal.write(first)
    filler = tiny_filesystem / "filler"
    with filler.open("wb", buffering=0) as file, pytest.raises(OSError, match="No space"):  # noqa: PT012
        while True:
            file.write(b"\0" * 4096)
    bigger = _record(ContainerSpec.build(["true"], env={"BIG": "x" * 60_000}), state=State.RUNNING)
    with pytest.raises(JournalError, match="cannot be written"):
        journal.write(bigger)
    assert first == journal.read(_ID)
    assert [] == [p.name for p in (tiny_filesystem / "containers").iterdir() if p.suffix == ".tmp"]
