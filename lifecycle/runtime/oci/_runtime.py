"""The OCI runtime's command line (runc, crun): create, start, pause, resume, delete, state.

Each call runs the binary in a worker thread (a fork and exec, ~5-40 ms),
so the event loop never waits for it. Its own messages go to a log file
(``--log``, JSON lines) and are read back for the error, because the
stdout and stderr of ``create`` are handed to the container: they are the
engine's capture pipes, and nothing here ever waits for their end.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
from pathlib import Path
from typing import Final

import anyio
import anyio.lowlevel
import anyio.to_thread

from lifecycle.runtime import SpawnFailure

__all__ = [
    "COMMAND_TIMEOUT",
    "Runtime",
    "RuntimeCommandError",
    "create_failure",
    "last_error",
    "remove_tree",
]

# How long one runtime command may take before it counts as hung.
COMMAND_TIMEOUT: Final = 60.0


class RuntimeCommandError(Exception):
    """A runtime command failed; ``message`` is the runtime's own error text."""

    def __init__(self, command: str, message: str) -> None:
        super().__init__(f"{command}: {message}")
        self.command = command
        self.message = message


def last_error(log: Path) -> str:
    """The last ``"level":"error"`` message of a runtime's JSON log (or its last line)."""
    try:
        lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return "no message (the runtime's log is missing)"
    for line in reversed(lines):
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and record.get("level") == "error":
            return str(record.get("msg", line))
    return lines[-1] if lines else "no message"


def create_failure(message: str) -> SpawnFailure:
    """The shell's and moby's exit codes for a failed create: 127 not found, 126 not runnable."""
    lowered = message.lower()
    if "not found" in lowered or "no such file or directory" in lowered:
        return SpawnFailure(message, 127)
    if "permission denied" in lowered or "exec format error" in lowered:
        return SpawnFailure(message, 126)
    return SpawnFailure(message, 125)


class Runtime:
    """One runtime binary with its own state directory (``--root``)."""

    __slots__ = ("binary", "state_root")

    def __init__(self, binary: str, state_root: Path) -> None:
        self.binary = binary
        self.state_root = state_root

    def argv(self, *arguments: str) -> list[str]:
        """The command line of one runtime command (no log file)."""
        return self._argv(None, *arguments)

    def _argv(self, log: Path | None, *arguments: str) -> list[str]:
        argv = [self.binary, "--root", str(self.state_root)]
        if log is not None:
            argv += ["--log", str(log), "--log-format", "json"]
        return [*argv, *arguments]

    def create_now(self, container_id: str, bundle: Path, stdout: int, stderr: int) -> int:
        """``create``: the container exists, its PID 1 waits for ``start``; returns that PID.

        Blocking (call it in a worker thread). The container inherits
        ``stdout`` and ``stderr``; the runtime is waited for by its exit,
        never by the end of those pipes. Raises ``SpawnFailure``.
        """
        log, pid_file = bundle / "runtime.log", bundle / "pid"
        argv = self._argv(
            log, "create", "--bundle", str(bundle), "--pid-file", str(pid_file), container_id
        )
        try:
            process = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr, close_fds=True
            )
        except OSError as error:
            raise SpawnFailure(f"cannot run {self.binary}: {error.strerror}", 125) from None
        try:
            code = process.wait(COMMAND_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise SpawnFailure(f"{self.binary} create did not finish in 60 s", 125) from None
        if code != 0:
            raise create_failure(last_error(log))
        return int(pid_file.read_text(encoding="ascii").strip())

    def run_now(self, *arguments: str, log: Path | None = None) -> None:
        """Run one command to its end (blocking); ``RuntimeCommandError`` if it fails."""
        try:
            result = subprocess.run(
                self._argv(log, *arguments),
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=COMMAND_TIMEOUT,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as error:
            raise RuntimeCommandError(f"{self.binary} {arguments[0]}", str(error)) from None
        if result.returncode != 0:
            message = result.stderr.decode(errors="replace").strip()
            if log is not None:
                message = last_error(log) or message
            raise RuntimeCommandError(f"{self.binary} {arguments[0]}", message)

    def status_now(self, container_id: str) -> str | None:
        """``state``'s status (created, running, paused, stopped); None if it has no such
        container or cannot tell (blocking)."""
        try:
            result = subprocess.run(
                self._argv(None, "state", container_id),
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=COMMAND_TIMEOUT,
                check=False,
            )
            status = json.loads(result.stdout)["status"] if result.returncode == 0 else None
        except (OSError, subprocess.TimeoutExpired, ValueError, KeyError, TypeError):
            return None
        return status if isinstance(status, str) else None

    async def run(self, *arguments: str, log: Path | None = None) -> None:
        """``run_now`` in a worker thread. Cancellation: the command completes, then it
        propagates (a half-run runtime command would leave its state inconsistent)."""
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(lambda: self.run_now(*arguments, log=log))
        await anyio.lowlevel.checkpoint()

    def delete_now(self, container_id: str) -> None:
        """``delete --force``: the runtime's state and cgroups go (blocking; never raises)."""
        with contextlib.suppress(RuntimeCommandError):
            self.run_now("delete", "--force", container_id)


def remove_tree(path: Path) -> None:
    """Remove a bundle directory (only ours: rmtree never follows links out of it)."""
    if path.is_symlink():
        path.unlink(missing_ok=True)
    elif path.exists():
        shutil.rmtree(path, ignore_errors=True)
