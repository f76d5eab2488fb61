"""The ``lifecycle`` command line: ``run``, ``demo``, ``diagram``, ``serve``, ``image ...``.

Exit status of ``diagram`` and ``demo``: 0 on success, 2 for a usage error
(argparse's convention), 1 when the command fails (for example PNG asked for
without Graphviz). ``run`` follows ``docker run``: the container's exit code,
127/126 when the command cannot be found/executed, 125 when lifecycle itself
fails (a bad option included).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Final, NoReturn

import anyio

from lifecycle._errors import LifecycleError
from lifecycle._files import write_atomically
from lifecycle._logging import configure_logging
from lifecycle._version import __version__
from lifecycle.cli._demo import run_demo
from lifecycle.cli._images import IMAGE_COMMANDS, add_image_commands, run_image_command
from lifecycle.cli._ps import add_ps_command, run_ps
from lifecycle.cli._run import EXIT_LIFECYCLE_FAILED, RunOptions, run_container
from lifecycle.cli._serve import ServerError, add_serve_command, run_serve
from lifecycle.graph import IN_PROCESS_FORMATS, SYSTEM_DOT_FORMATS, lifecycle_graph, render_source
from lifecycle.model import DEFAULT_STOP_TIMEOUT, Healthcheck, State

__all__ = ["main"]

EXIT_FAILURE: Final = 1
EXIT_USAGE: Final = 2
EXIT_BROKEN_PIPE: Final = 128 + 13  # killed by SIGPIPE, in the shell's convention

DIAGRAM_FORMATS: Final = ("dot", *sorted(IN_PROCESS_FORMATS), *sorted(SYSTEM_DOT_FORMATS))
DEFAULT_DIAGRAM_DIR: Final = Path("diagrams")
DEFAULT_DEMO_DIR: Final = Path("demo-output")


class _Failure(Exception):
    """A failure the CLI reports in one line and turns into EXIT_FAILURE."""


class _Parser(argparse.ArgumentParser):
    """argparse, with the exit status of a usage error chosen per command (125 for run)."""

    usage_exit_code = EXIT_USAGE

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(self.usage_exit_code, f"{self.prog}: error: {message}\n")


def _env_pair(text: str) -> tuple[str, str | None]:
    """``K=V``, or ``K`` alone to pass this process's value of K (as docker run -e does)."""
    key, separator, value = text.partition("=")
    if not key:
        raise argparse.ArgumentTypeError(f"expected K=V or K, not {text!r}")
    return key, value if separator else None


def _add_health_options(run: argparse.ArgumentParser) -> None:
    """docker run's --health-* options (seconds here, where Docker takes durations)."""
    run.add_argument("--health-cmd", metavar="CMD", help="health probe, run by /bin/sh -c")
    for option, default in (("interval", 30), ("timeout", 30), ("start-period", 0)):
        run.add_argument(
            f"--health-{option}",
            type=float,
            default=float(default),
            metavar="SECONDS",
            help=f"health check {option.replace('-', ' ')} (default: {default})",
        )
    run.add_argument(
        "--health-start-interval",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="probe interval during the start period (default: 5)",
    )
    run.add_argument(
        "--health-retries", type=int, default=3, help="failures in a row that make it unhealthy"
    )
    run.add_argument(
        "--health-on-failure",
        default="none",
        choices=("none", "kill", "restart", "stop"),
        help="what to do when it turns unhealthy (Podman's; default: none)",
    )
    run.add_argument(
        "--no-healthcheck", action="store_true", help="disable the image's health check"
    )


def _healthcheck(arguments: argparse.Namespace) -> Healthcheck | None:
    if arguments.no_healthcheck:
        if arguments.health_cmd is not None:
            raise _Failure("--no-healthcheck and --health-cmd contradict each other")
        return Healthcheck(("NONE",))
    if arguments.health_cmd is None:
        return None
    return Healthcheck(
        ("CMD-SHELL", arguments.health_cmd),
        interval=arguments.health_interval,
        timeout=arguments.health_timeout,
        start_period=arguments.health_start_period,
        start_interval=arguments.health_start_interval,
        retries=arguments.health_retries,
    )


def _add_logging_options(command: argparse.ArgumentParser, default_level: str) -> None:
    command.add_argument(
        "--log-format",
        choices=("console", "json"),
        help="structured log format on stderr (default: console on a terminal, json otherwise)",
    )
    command.add_argument(
        "--log-level",
        default=default_level,
        choices=("debug", "info", "warning", "error"),
        help=f"lowest level logged (default: {default_level})",
    )


def _build_parser() -> _Parser:
    parser = _Parser(
        prog="lifecycle",
        description="Give a process the lifecycle of a container: "
        "created, running, paused, stopped, deleted.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "--backend",
        choices=("asyncio", "trio"),
        default="asyncio",
        help="the event loop to run on; both are supported (default: asyncio)",
    )
    commands = parser.add_subparsers(dest="subcommand", required=True, metavar="SUBCOMMAND")

    run = commands.add_parser(
        "run",
        help="run a command as a container in the foreground (like docker run)",
        description="Create and start a container for COMMAND and stay in the foreground until "
        "it stops. Its stdout and stderr pass through; so does stdin when it is a terminal or "
        "a pipe. SIGINT/SIGTERM stop it gracefully (a second SIGINT kills at once); SIGHUP, "
        "SIGUSR1, SIGUSR2 and SIGWINCH are forwarded. Exit status: the container's exit code "
        "(128+N if killed by signal N), 127/126 if COMMAND cannot be found/executed, 125 if "
        "lifecycle itself fails.",
    )
    assert isinstance(run, _Parser)  # noqa: S101 -- subparsers share the parser class
    run.usage_exit_code = EXIT_LIFECYCLE_FAILED
    run.add_argument("--name", help="container name (default: a generated adjective_noun)")
    run.add_argument(
        "--image",
        help="run in a container of IMAGE from the store (COMMAND defaults to its Entrypoint+Cmd)",
    )
    run.add_argument(
        "--runtime",
        help="the driver: runc (the default with --image: PID 1 in its own namespaces), crun, "
        "or native (a process group on the host; the only choice without --image)",
    )
    run.add_argument(
        "--root", type=Path, help="the image store (default: $LIFECYCLE_ROOT or per user)"
    )
    run.add_argument(
        "--env",
        "-e",
        action="append",
        type=_env_pair,
        default=[],
        metavar="K=V",
        help="set an environment variable (repeatable); K alone passes this process's value",
    )
    run.add_argument("--cwd", help="working directory of the command")
    run.add_argument(
        "--stop-signal",
        default="SIGTERM",
        help="signal that stops it gracefully (default: SIGTERM)",
    )
    run.add_argument(
        "--stop-timeout",
        type=float,
        default=DEFAULT_STOP_TIMEOUT,
        metavar="SECONDS",
        help=f"grace period before SIGKILL (default: {DEFAULT_STOP_TIMEOUT:g})",
    )
    run.add_argument(
        "--restart",
        default="no",
        metavar="POLICY",
        help="restart policy: no (default), on-failure[:N], always, unless-stopped",
    )
    run.add_argument(
        "--graph", type=Path, metavar="FILE.svg", help="keep a live graph of the container in FILE"
    )
    run.add_argument(
        "--events",
        action="store_true",
        help="print each event as a JSON object on stderr (Docker's field names)",
    )
    _add_health_options(run)
    _add_logging_options(run, "warning")
    run.add_argument("command", nargs=argparse.REMAINDER, metavar="-- COMMAND [ARG...]")

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
        help="a guided tour of every transition, on real processes, with pictures",
        description="Walk a few containers through every edge of the transition table on real "
        "processes, printing the event stream (stdout) and the structured log (stderr), and "
        "write a picture of the live graph per step plus the fleet graph into DIR.",
    )
    demo.add_argument(
        "--out",
        metavar="DIR",
        type=Path,
        default=DEFAULT_DEMO_DIR,
        help=f"where to write the pictures (default: {DEFAULT_DEMO_DIR}/)",
    )
    _add_logging_options(demo, "info")
    _add_logging_options(add_serve_command(commands), "info")
    add_ps_command(commands)
    add_image_commands(commands)
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


def _configure_logging(arguments: argparse.Namespace) -> None:
    json = None if arguments.log_format is None else arguments.log_format == "json"
    configure_logging(json=json, level=arguments.log_level.upper())


def _run_options(arguments: argparse.Namespace) -> RunOptions:
    command = list(arguments.command)
    if command[:1] == ["--"]:
        command = command[1:]
    if not command and arguments.image is None:
        raise _Failure("run needs a command: lifecycle run [OPTIONS] -- COMMAND [ARG...]")
    env: dict[str, str] = {}
    for key, value in arguments.env:
        if value is None:
            if key in os.environ:
                env[key] = os.environ[key]
        else:
            env[key] = value
    return RunOptions(
        command=tuple(command),
        name=arguments.name,
        env=env,
        cwd=arguments.cwd,
        stop_signal=arguments.stop_signal,
        stop_timeout=arguments.stop_timeout,
        graph=arguments.graph,
        events=arguments.events,
        restart=arguments.restart,
        image=arguments.image,
        runtime=arguments.runtime or ("runc" if arguments.image is not None else None),
        root=arguments.root,
        healthcheck=_healthcheck(arguments),
        health_on_failure=arguments.health_on_failure,
    )


def _run(arguments: argparse.Namespace) -> int:
    try:
        options = _run_options(arguments)
        _configure_logging(arguments)
        return anyio.run(run_container, options, backend=arguments.backend)
    except (_Failure, LifecycleError, OSError) as error:
        print(f"lifecycle: error: {error}", file=sys.stderr)
        return EXIT_LIFECYCLE_FAILED


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    parser = _build_parser()
    words = list(sys.argv[1:] if argv is None else argv)
    if "run" in words:  # usage errors of `run`, even those the top level reports, are 125
        parser.usage_exit_code = EXIT_LIFECYCLE_FAILED
    arguments = parser.parse_args(words)
    if arguments.subcommand == "run":
        return _run(arguments)
    try:
        if arguments.subcommand == "diagram":
            _diagram(arguments)
        elif arguments.subcommand == "demo":
            _configure_logging(arguments)
            anyio.run(run_demo, arguments.out, backend=arguments.backend)
        elif arguments.subcommand == "serve":
            _configure_logging(arguments)
            run_serve(arguments)
        elif arguments.subcommand == "ps":
            return run_ps(arguments)
        elif arguments.subcommand in IMAGE_COMMANDS:
            run_image_command(arguments)
    except BrokenPipeError:
        # The reader went away (`lifecycle demo | head`): stop quietly, as cat does.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except (
        _Failure,
        LifecycleError,
        ServerError,
        OSError,
        argparse.ArgumentTypeError,
        ValueError,
    ) as error:
        print(f"lifecycle: error: {error}", file=sys.stderr)
        return EXIT_FAILURE
    return 0


if __name__ == "__main__":
    sys.exit(main())
