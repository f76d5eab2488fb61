"""Small helpers shared by the tests."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SVG_NAMESPACE = "{http://www.w3.org/2000/svg}"


def environment_without_dot(tmp_path: Path) -> dict[str, str]:
    """The test environment with PATH pointing only at an empty folder, so no `dot` is found."""
    empty = tmp_path / "empty-path"
    empty.mkdir(exist_ok=True)
    environment = dict(os.environ, PATH=str(empty))
    assert shutil.which("dot", path=environment["PATH"]) is None
    return environment


def run_cli(
    *arguments: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[bytes]:
    """Run `python -m lifecycle ARGUMENTS` in a child process."""
    return subprocess.run(
        [sys.executable, "-m", "lifecycle", *arguments],
        cwd=cwd,
        env=env,
        capture_output=True,
        timeout=timeout,
        check=False,
    )


def svg_texts(svg: bytes) -> tuple[set[str], set[str]]:
    """Parse an SVG from Graphviz; return the node titles and the edge label texts."""
    root = ET.fromstring(svg)  # noqa: S314 -- our own renderer's output
    assert f"{SVG_NAMESPACE}svg" == root.tag
    nodes: set[str] = set()
    labels: set[str] = set()
    for group in root.iter(f"{SVG_NAMESPACE}g"):
        title = group.find(f"{SVG_NAMESPACE}title")
        if group.get("class") == "node" and title is not None and title.text:
            nodes.add(title.text)
        if group.get("class") == "edge":
            labels.update(t.text for t in group.iter(f"{SVG_NAMESPACE}text") if t.text)
    return nodes, labels
