"""The layering rules of DESIGN.md hold in the source, checked on the AST."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import lifecycle

PACKAGE = Path(lifecycle.__file__).parent
FORBIDDEN_IN_STATES = {
    "anyio", "asyncio", "trio", "os", "signal", "time", "subprocess", "socket",
    "io", "pathlib", "shutil", "tempfile", "threading", "select", "logging", "structlog",
}  # fmt: skip


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            names.add("." * node.level + (node.module or ""))
    return names


def test_state_module_imports_no_io() -> None:
    """lifecycle/_states.py imports no anyio, os, signal, time or other I/O module."""
    imported = imported_modules(PACKAGE / "_states.py")
    top_level = {name.split(".")[0] for name in imported}
    assert set() == top_level & FORBIDDEN_IN_STATES
    # Sanity: the check sees real imports.
    assert "transitions" in top_level


def test_checker_catches_a_forbidden_import(tmp_path: Path) -> None:
    """The AST check does find os/time imports, including nested and aliased ones."""
    sample = tmp_path / "sample.py"
    sample.write_text("import os.path as p\ndef f():\n    from time import monotonic\n")
    assert {"os", "time"} <= {n.split(".")[0] for n in imported_modules(sample)}


def test_errors_module_is_a_leaf() -> None:
    """lifecycle/_errors.py imports nothing from the package."""
    imported = imported_modules(PACKAGE / "_errors.py")
    assert not {name for name in imported if name.startswith((".", "lifecycle"))}


@pytest.mark.parametrize("path", sorted(PACKAGE.glob("*.py")), ids=lambda p: p.name)
def test_no_module_configures_logging_at_import(path: Path) -> None:
    """The library never configures logging (structlog or stdlib) at import time."""
    tree = ast.parse(path.read_text())
    for node in tree.body:
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
            called = ast.unparse(node.value.func)
            assert not called.endswith(("configure", "basicConfig")), called
