"""The command line: version, diagram options, the demo, and exit codes."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

import lifecycle
from lifecycle._cli import main
from lifecycle._diagram import lifecycle_graph
from lifecycle._render import render_source

from .helpers import run_cli, svg_texts


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


def test_demo_tours_every_edge_and_writes_the_diagram(tmp_path: Path) -> None:
    """The demo prints every table row's transition and writes DOT and SVG into --out."""
    result = run_cli("demo", "--out", str(tmp_path / "demo"), cwd=tmp_path)
    assert 0 == result.returncode, result.stderr.decode()
    output = result.stdout.decode()
    for edge in lifecycle.TRANSITIONS.items():
        source, row = edge
        for trigger, dest in row.items():
            if source is not None:
                assert f": {trigger} {source} -> {dest}\n" in output
    assert "refused: cannot start container web" in output
    assert (tmp_path / "demo" / "lifecycle.svg").read_bytes().startswith(b"<?xml")
    assert lifecycle_graph().source == (tmp_path / "demo" / "lifecycle.dot").read_text()
