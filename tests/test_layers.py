"""The layering rules of DESIGN.md and ARCHITECTURE.md hold in the source, checked on the AST."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

from lifecycle.graph import render_source
from lifecycle.runtime import BUILTIN_DRIVERS

from .helpers import REPO
from .layering import (
    DRIVER_UNITS,
    PACKAGE_ROOT,
    architecture_dot,
    import_graph,
    imports_of,
    package_sources,
    private_access_across_modules,
    unit_of,
    violations,
)

FORBIDDEN_IN_STATES = {
    "anyio", "asyncio", "trio", "os", "signal", "time", "subprocess", "socket",
    "io", "pathlib", "shutil", "tempfile", "threading", "select", "logging", "structlog",
}  # fmt: skip
# The model layer describes; it never does I/O or waits (signal: only the enum; os: fspath).
FORBIDDEN_IN_MODEL = FORBIDDEN_IN_STATES - {"os", "signal"}


def top_level_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.split(".")[0])
    return names


def test_no_module_imports_upward_or_a_driver() -> None:
    """Every import of the package points down a layer (or stays in its unit); none names a
    driver package."""
    graph = import_graph(package_sources())
    assert [] == violations(graph)
    # Sanity: the graph sees real imports, across layers and within units.
    assert "lifecycle.model" in graph["lifecycle.engine._container"]
    assert "lifecycle.runtime" in graph["lifecycle.engine._container"]
    assert "lifecycle.runtime.native._process" in graph["lifecycle.runtime.native._driver"]


def test_the_engine_never_imports_a_driver() -> None:
    """No engine module imports runtime.native (or any driver), directly or through a peer."""
    graph = import_graph(package_sources())
    engine_modules = [m for m in graph if unit_of(m) == "lifecycle.engine"]
    assert len(engine_modules) >= 5
    reached: set[str] = set()
    pending = list(engine_modules)
    while pending:
        for imported in graph[pending.pop()]:
            if imported not in reached:
                reached.add(imported)
                pending.append(imported)
    assert set() == {m for m in reached if unit_of(m) in DRIVER_UNITS}


def test_the_checker_catches_an_upward_import_and_a_driver_import() -> None:
    """The rule bites: a model module importing the engine, the engine importing the native
    driver, and a peer importing a peer are each reported."""
    sources = package_sources()
    sources["lifecycle.model._bad"] = "from lifecycle.engine import Engine\n"
    sources["lifecycle.engine._bad"] = "import lifecycle.runtime.native._process\n"
    sources["lifecycle.graph._bad"] = (
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from lifecycle.events import Event\n"
    )
    found = {(v.importer, v.rule) for v in violations(import_graph(sources))}
    assert {
        ("lifecycle.model._bad", "imports upward"),
        ("lifecycle.engine._bad", "drivers are loaded by name only"),
        ("lifecycle.graph._bad", "imports a peer"),
    } == found


def test_no_private_member_crosses_a_module() -> None:
    """No module reads or writes another module's private members (Container and Engine
    talk through public methods, the context and the container module's friend functions)."""
    sources = package_sources()
    assert [] == private_access_across_modules(sources)
    sources["lifecycle.engine._bad"] = "def peek(container):\n    return container._lock\n"
    assert [("lifecycle.engine._bad", 2, "container._lock")] == private_access_across_modules(
        sources
    )


def test_relative_and_from_imports_are_resolved() -> None:
    """``from . import x`` and ``from pkg import module`` name the module they load."""
    known = {"lifecycle.runtime.native", "lifecycle.runtime.native._cgroup", "lifecycle.model"}
    source = "from . import _cgroup\nfrom lifecycle import model\n"
    assert {"lifecycle.runtime.native._cgroup", "lifecycle.model"} == imports_of(
        "lifecycle.runtime.native._process", source, known
    )


def test_every_module_belongs_to_a_layer() -> None:
    """A new module must be placed in LAYERS (unit_of raises otherwise)."""
    for module in package_sources():
        unit_of(module)
    with pytest.raises(LookupError, match="belongs to no layer"):
        unit_of("elsewhere.module")


@pytest.mark.parametrize("name", sorted(BUILTIN_DRIVERS))
def test_builtin_drivers_named_by_the_registry_exist(name: str) -> None:
    """Each ``module:class`` string of the registry names a real driver class."""
    module_name, _, class_name = BUILTIN_DRIVERS[name].partition(":")
    driver_class = getattr(importlib.import_module(module_name), class_name)
    assert name == driver_class().name


def test_committed_architecture_diagram_matches_the_code() -> None:
    """diagrams/architecture.dot and .svg are what the import graph generates (make
    architecture)."""
    dot = architecture_dot(import_graph(package_sources()))
    assert dot == (REPO / "diagrams" / "architecture.dot").read_text(encoding="utf-8")
    assert render_source(dot, "svg") == (REPO / "diagrams" / "architecture.svg").read_bytes()


def test_state_module_imports_no_io() -> None:
    """lifecycle/model/_states.py imports no anyio, os, signal, time or other I/O module."""
    top_level = top_level_imports(PACKAGE_ROOT / "model" / "_states.py")
    assert set() == top_level & FORBIDDEN_IN_STATES
    # Sanity: the check sees real imports.
    assert "transitions" in top_level


@pytest.mark.parametrize(
    "path", sorted((PACKAGE_ROOT / "model").glob("*.py")), ids=lambda p: p.name
)
def test_model_layer_does_no_io(path: Path) -> None:
    """The model layer imports no event loop, threads, files, sockets, clocks or logging."""
    assert set() == top_level_imports(path) & FORBIDDEN_IN_MODEL


def test_checker_catches_a_forbidden_import(tmp_path: Path) -> None:
    """The AST check does find os/time imports, including nested and aliased ones."""
    sample = tmp_path / "sample.py"
    sample.write_text("import os.path as p\ndef f():\n    from time import monotonic\n")
    assert {"os", "time"} <= top_level_imports(sample)


def test_errors_module_is_a_leaf() -> None:
    """lifecycle/_errors.py imports nothing from the package but the id helper, a leaf too."""
    graph = import_graph(package_sources())
    assert {"lifecycle._stringid"} == graph["lifecycle._errors"]
    assert set() == graph["lifecycle._stringid"]


@pytest.mark.parametrize("path", sorted(PACKAGE_ROOT.rglob("*.py")), ids=lambda p: p.name)
def test_no_module_configures_logging_at_import(path: Path) -> None:
    """The library never configures logging (structlog or stdlib) at import time."""
    tree = ast.parse(path.read_text())
    for node in tree.body:
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
            called = ast.unparse(node.value.func)
            assert not called.endswith(("configure", "basicConfig")), called
