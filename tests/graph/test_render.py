"""The in-process renderer: serialised, recovers after a failure, refuses unknown formats."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from lifecycle import RenderError
from lifecycle.graph import lifecycle_graph, render_source

SOURCE = lifecycle_graph().source


def test_failed_render_raises_and_the_next_one_works() -> None:
    """Bad DOT raises RenderError naming Graphviz's reason; the renderer then still works."""
    good = render_source(SOURCE, "svg")
    with pytest.raises(RenderError, match=r"graphviz could not render the graph: .*parse"):
        render_source("digraph broken { a -> ", "svg")
    assert good == render_source(SOURCE, "svg")


def test_concurrent_renders_from_threads_are_serialised() -> None:
    """Renders from many threads at once all succeed with identical output (one session, locked)."""
    expected = render_source(SOURCE, "svg")
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda _: render_source(SOURCE, "svg"), range(32)))
    assert [expected] * 32 == results


def test_dot_format_returns_the_source() -> None:
    """Format 'dot' is the DOT source itself, as UTF-8."""
    assert SOURCE.encode() == render_source(SOURCE, "dot")


def test_unknown_format_is_refused_by_name() -> None:
    """An unknown format raises ValueError naming it and the known ones."""
    with pytest.raises(
        ValueError, match=r"unknown output format 'gif' \(expected one of: dot, pdf, png, svg\)"
    ):
        render_source(SOURCE, "gif")
