"""The command line: version, diagram options, the demo, and exit codes."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest

import lifecycle
from lifecycle.cli import main
from lifecycle.graph import lifecycle_graph, render_source

from ..helpers import run_cli, svg_texts


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    """--version prints the package version and exits 0."""
    with pytest.raises(SystemExit) as caught:
        main(["--version"])
    assert 0 == caught.value.code
    assert f"lifecycle {lifecycle.__version__}\n" == capsys.readouterr().out


def test_console_script_is_installed(tmp_path: Path) -> None:
    """The `lifecycle` console script runs from the environment's bin folder."""
    import subprocess  # noqa: PLC0415

    script = Path(sys.executable).parent / "lifecycle"
    result = subprocess.run([script, "--version"], capture_output=True, timeout=60, check=False)
    assert (0, f"lifecycle {lifecycle.__version__}\n") == (
        result.returncode,
        result.stdout.decode(),
    )


def test_diagram_without_options_regenerates_both_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`lifecycle diagram` writes diagrams/lifecycle.dot and .svg under the current folder."""
    monkeypatch.chdir(tmp_path)
    assert 0 == main(["diagram"])
    source = lifecycle_graph().source
    assert source == (tmp_path / "diagrams" / "lifecycle.dot").read_text()
    assert render_source(source, "svg") == (tmp_path / "diagrams" / "lifecycle.svg").read_bytes()


def test_diagram_format_from_suffix_and_to_stdout(tmp_path: Path) -> None:
    """-o takes its format from the suffix; --format alone writes to standard output."""
    result = run_cli("diagram", "-o", "out/graph.dot", cwd=tmp_path)
    assert 0 == result.returncode, result.stderr.decode()
    assert lifecycle_graph().source == (tmp_path / "out" / "graph.dot").read_text()
    result = run_cli("diagram", "--format", "svg", cwd=tmp_path)
    assert 0 == result.returncode
    assert "running" in svg_texts(result.stdout)[0]


def test_unknown_suffix_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A path whose suffix names no format exits 1 with a message and writes nothing."""
    assert 1 == main(["diagram", "-o", str(tmp_path / "graph.gif")])
    assert "cannot tell the format of" in capsys.readouterr().err
    assert [] == list(tmp_path.iterdir())


def test_bad_format_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    """An unknown --format is a usage error (exit 2) naming the choices."""
    with pytest.raises(SystemExit) as caught:
        main(["diagram", "--format", "gif"])
    assert 2 == caught.value.code
    assert "invalid choice: 'gif'" in capsys.readouterr().err


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_demo_tours_every_edge_on_real_processes(backend: str, tmp_path: Path) -> None:
    """`lifecycle demo --out DIR` exits 0, takes every table edge, and writes valid SVGs."""
    out = tmp_path / "pictures"
    result = run_cli("--backend", backend, "demo", "--out", str(out), cwd=tmp_path, timeout=60)
    assert 0 == result.returncode, result.stderr.decode()
    output = result.stdout.decode()
    for source, row in lifecycle.TRANSITIONS.items():
        for trigger, dest in row.items():
            if source is None or trigger.value in {"stop", "kill", "restart", "remove"}:
                continue  # those show as die/start/destroy events; the log shows the trigger
            assert f"{source} -> {dest}" in output, (source, trigger, dest)
    log = result.stderr.decode()  # the structured log: one line per committed transition
    taken = {
        (entry["from_state"], entry["trigger"], entry["to_state"])
        for entry in map(json.loads, log.splitlines())
        if entry["event"] == "transition"
    }
    table = {
        (None if s is None else s.value, t.value, d.value)
        for s, row in lifecycle.TRANSITIONS.items()
        for t, d in row.items()
    }
    assert table == taken  # every edge of the table, create included
    assert "exitCode=137" in output
    assert "exitCode=0" in output
    assert "exitCode=3" in output
    # Paused by pause(): frozen as root (cgroup), stopped otherwise; stopped from outside: T.
    assert ("state 'D'" if "Containment: cgroup" in output else "state 'T'") in output
    assert "says 'T'" in output
    if os.geteuid() == 0 and shutil.which("runc") and shutil.which("busybox"):
        assert "pid 1 on " in output  # the image container: a real PID 1 under runc
        assert "network: lo" in output
    else:
        assert "no image container" in output
    pictures = sorted(out.glob("*.svg"))
    assert len(pictures) > 20
    for picture in pictures:
        svg_texts(picture.read_bytes())  # parses as SVG
        assert str(picture) in output
    assert "fleet: 7 containers" in (out / "fleet.svg").read_text()
