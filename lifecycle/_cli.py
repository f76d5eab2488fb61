"""The ``lifecycle`` command line.

Exit status: 0 on success, 2 for a usage error (argparse's convention), 1
when the command itself fails (for example PNG asked for without Graphviz).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from lifecycle import __version__
from lifecycle._demo import run_demo
from lifecycle._diagram import lifecycle_graph
from lifecycle._errors import LifecycleError
from lifecycle._files import write_atomically
from lifecycle._render import IN_PROCESS_FORMATS, SYSTEM_DOT_FORMATS, render_source
from lifecycle._states import State

__all__ = ["main"]

EXIT_FAILURE: Final = 1
EXIT_USAGE: Final = 2
EXIT_BROKEN_PIPE: Final = 128 + 13  # killed by SIGPIPE, in the shell's convention

DIAGRAM_FORMATS: Final = ("dot", *sorted(IN_PROCESS_FORMATS), *sorted(SYSTEM_DOT_FORMATS))
DEFAULT_DIAGRAM_DIR: Final = Path("diagrams")
DEFAULT_DEMO_DIR: Final = Path("demo-output")


class _Failure(Exception):
    """A failure the CLI reports in one line and turns into EXIT_FAILURE."""


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lifecycle",
        description="Give a process the lifecycle of a container: "
        "created, running, paused, stopped, deleted.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    diagram = commands.add_parser(
        "diagram",
        help="write the lifecycle state diagram generated from the transition table",
        description="Write the lifecycle state diagram, generated from the transition table. "
        "With no options, regenerate diagrams/lifecycle.dot and diagrams/lifecycle.svg "
        "under the current directory. SVG renders in-process (no system Graphviz needed); "
        "PNG and PDF use the system 'dot' binary.",
    )
    diagram.add_argument(
        "-o",
        "--output",
        metavar="PATH",
        help="write one file to PATH ('-' for standard output); "
        "the format comes from --format or from PATH's suffix",
    )
    diagram.add_argument(
        "--format",
        choices=DIAGRAM_FORMATS,
        help="output format; without -o, the picture goes to standard output",
    )
    diagram.add_argument(
        "--highlight",
        metavar="STATE",
        choices=[state.value for state in State],
        help="mark one state as current (" + ", ".join(state.value for state in State) + ")",
    )

    demo = commands.add_parser(
        "demo",
        help="tour every transition of the table and write the diagram",
        description="Print the transition table, walk containers' state models along a "
        "tour that takes every edge, and write the diagram into DIR.",
    )
    demo.add_argument(
        "--out",
        metavar="DIR",
        type=Path,
        default=DEFAULT_DEMO_DIR,
        help=f"where to write the pictures (default: {DEFAULT_DEMO_DIR}/)",
    )
    return parser


def _format_for(output: str, requested: str | None) -> str:
    if requested is not None:
        return requested
    suffix = Path(output).suffix.lstrip(".").lower()
    if suffix in DIAGRAM_FORMATS:
        return suffix
    raise _Failure(
        f"cannot tell the format of {output!r} from its suffix; "
        f"pass --format ({', '.join(DIAGRAM_FORMATS)})"
    )


def _write(data: bytes, output: str) -> None:
    if output == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    else:
        print(write_atomically(output, data))


def _diagram(arguments: argparse.Namespace) -> None:
    highlight = None if arguments.highlight is None else State(arguments.highlight)
    source: str = lifecycle_graph(current=highlight).source
    output: str | None = arguments.output
    if output is None and arguments.format is None:
        if highlight is not None:
            raise _Failure("--highlight draws one picture: say where with -o PATH or --format")
        for suffix in ("dot", "svg"):
            _write(render_source(source, suffix), str(DEFAULT_DIAGRAM_DIR / f"lifecycle.{suffix}"))
        return
    output = "-" if output is None else output
    output_format = "svg" if output == "-" and arguments.format is None else None
    output_format = output_format or _format_for(output, arguments.format)
    _write(render_source(source, output_format), output)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    arguments = _build_parser().parse_args(argv)
    try:
        if arguments.command == "diagram":
            _diagram(arguments)
        elif arguments.command == "demo":
            run_demo(arguments.out)
    except BrokenPipeError:
        # The reader went away (`lifecycle demo | head`): stop quietly, as cat does.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except (_Failure, LifecycleError, OSError) as error:
        print(f"lifecycle: error: {error}", file=sys.stderr)
        return EXIT_FAILURE
    return 0


if __name__ == "__main__":
    sys.exit(main())
