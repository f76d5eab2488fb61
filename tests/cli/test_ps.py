"""``lifecycle ps --root DIR``: the journal read without an engine, as docker ps prints it,
against containers of a real engine (running ones checked by PID and start time)."""

from __future__ import annotations

import re
from pathlib import Path

import anyio
import pytest

from lifecycle import Engine

from ..helpers import run_cli

pytestmark = pytest.mark.anyio


def table(output: bytes) -> list[list[str]]:
    """The rows, split on docker ps's runs of 3+ spaces."""
    return [re.split(r"\s{3,}", line) for line in output.decode().splitlines()]


async def ps(*arguments: str, cwd: Path) -> tuple[int, bytes, bytes]:
    done = await anyio.to_thread.run_sync(lambda: run_cli("ps", *arguments, cwd=cwd))
    return done.returncode, done.stdout, done.stderr


async def test_ps_lists_the_journal_while_an_engine_runs_and_after(tmp_path: Path) -> None:
    root = tmp_path / "root"
    with anyio.fail_after(60):
        async with Engine(root=root) as engine:
            running = await engine.create(["sleep", "60"], name="web")
            await running.start()
            failed = await engine.create(["sh", "-c", "exit 3"], name="job")
            await failed.start()
            await failed.wait()
            await engine.create(["true"], name="later")
            code, out, err = await ps("-a", "--root", str(root), cwd=tmp_path)
            assert (0, b"") == (code, err)
            header, *rows = table(out)
            assert ["CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "NAMES"] == header
            by_name = {row[-1]: row for row in rows}
            assert ["later", "job", "web"] == [row[-1] for row in rows]  # newest first
            assert by_name["web"][4].startswith("Up ")
            assert by_name["web"][0] == running.short_id
            assert '"sleep 60"' == by_name["web"][2]
            assert by_name["job"][4].startswith("Exited (3) ")
            assert "Created" == by_name["later"][4]
            code, out, _ = await ps("--root", str(root), cwd=tmp_path)
            assert ["web"] == [row[-1] for row in table(out)[1:]]
            code, out, _ = await ps("-aq", "--root", str(root), "--no-trunc", cwd=tmp_path)
            assert {running.id, failed.id} < set(out.decode().split())
        # The engine stopped it on the way out: the record says so.
        code, out, _ = await ps("-a", "--root", str(root), cwd=tmp_path)
        web = next(row for row in table(out) if row[-1] == "web")
        assert web[4].startswith("Exited (143) ")


async def test_ps_names_what_it_cannot_read(tmp_path: Path) -> None:
    with anyio.fail_after(60):
        code, _, err = await ps("-a", "--root", str(tmp_path / "nothing"), cwd=tmp_path)
        assert 1 == code
        assert b"has no journal" in err
        async with Engine(root=tmp_path) as engine:
            torn = await engine.create(["true"], name="torn")
            await engine.create(["true"], name="whole")
        path = tmp_path / "containers" / f"{torn.id}.json"
        path.write_text("{")
        code, out, err = await ps("-a", "--root", str(tmp_path), cwd=tmp_path)
        assert 1 == code
        assert str(path).encode() in err
        assert ["whole"] == [row[-1] for row in table(out)[1:]]
