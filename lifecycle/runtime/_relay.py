"""Output relays: helper processes that read output pipes once the engine's budget is spent.

A process may hold only so many descriptors (``RLIMIT_NOFILE``; its hard limit needs
CAP_SYS_RESOURCE to raise), and a running container with captured output costs its
reader three: a pidfd and two pipes. With a hard limit of 20,000 that caps one engine
at about 6,600 such containers. So past a budget the multiplexer hands a new
container's two pipe read ends to a relay (``_relay_main.py``, a small program with a
descriptor table of its own) over a ``SOCK_SEQPACKET`` socket, and keeps only the pidfd:
a relayed container costs the engine one descriptor. The relay sends back what it
reads, one message per read, ``stream`` and ``key`` in a 5-byte header, an empty
message at each stream's end; the engine feeds the container's sink exactly as it
would from the pipes. Precedent: Podman's conmon and containerd's shims hold each
container's stdio in a process of their own, for the same reason among others.
"""

from __future__ import annotations

import array
import contextlib
import itertools
import os
import signal
import socket
import struct
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Final, final

from lifecycle._logging import get_logger
from lifecycle.containment import readable_within
from lifecycle.logs import Stream
from lifecycle.runtime._driver import OutputSink

__all__ = ["RELAY_PROGRAM", "OutputRelay"]

RELAY_PROGRAM: Final = Path(__file__).with_name("_relay_main.py")
_HEADER: Final = struct.Struct("!IB")
_KEY: Final = struct.Struct("!I")
_READ_SIZE: Final = 64 * 1024
_STREAMS: Final[tuple[Stream, Stream]] = ("stdout", "stderr")
# Messages taken per readiness, so one busy relay cannot hold the loop for long.
_MESSAGES_PER_ROUND: Final = 64
_EXIT_TIMEOUT: Final = 2.0


class _Relayed:
    """One container's streams at a relay: where they go, and which are still open."""

    __slots__ = ("closed", "open", "sink")

    def __init__(self, sink: OutputSink, closed: Callable[[], None]) -> None:
        self.sink = sink
        self.closed = closed
        self.open = [True, True]


@final
class OutputRelay:
    """One relay process and the engine's end of its socket (non-blocking)."""

    __slots__ = ("_keys", "_pid", "_pidfd", "_relayed", "socket")

    def __init__(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
        try:
            self._pid = os.posix_spawn(
                sys.executable,
                [sys.executable, "-I", "-S", str(RELAY_PROGRAM)],
                os.environ,
                file_actions=[
                    (os.POSIX_SPAWN_DUP2, null, 0),
                    (os.POSIX_SPAWN_DUP2, null, 1),
                    (os.POSIX_SPAWN_DUP2, theirs.fileno(), 3),
                ],
            )
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
            os.close(null)
        self._pidfd = os.pidfd_open(self._pid)
        ours.setblocking(False)
        self.socket = ours
        self._keys = itertools.count(1)
        self._relayed: dict[int, _Relayed] = {}

    def __len__(self) -> int:
        """How many containers' streams it reads now."""
        return len(self._relayed)

    def hand_over(self, fds: tuple[int, int], sink: OutputSink, closed: Callable[[], None]) -> bool:
        """Give the relay a container's stdout and stderr read ends (ours are closed then);
        False if it cannot take them now (the caller keeps them)."""
        key = next(self._keys)
        try:
            self.socket.sendmsg(
                [_KEY.pack(key)], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))]
            )
        except OSError:  # its queue is full, or it died: read them ourselves
            return False
        self._relayed[key] = _Relayed(sink, closed)
        for fd in fds:
            os.close(fd)
        return True

    def readable(self) -> bool:
        """What the relay sent, fed to the sinks (at most a bounded number of messages);
        False once the relay is gone (its streams have ended: ``close`` it)."""
        for _ in range(_MESSAGES_PER_ROUND):
            try:
                message = self.socket.recv(_HEADER.size + _READ_SIZE)
            except BlockingIOError:
                return True
            except OSError:
                message = b""
            if not message:
                if self._relayed:
                    get_logger().error(
                        "an output relay died", pid=self._pid, containers=len(self._relayed)
                    )
                self._end_all()
                return False
            key, stream = _HEADER.unpack_from(message)
            relayed = self._relayed.get(key)
            if relayed is None or stream > 1:
                continue
            chunk = message[_HEADER.size :]
            if chunk:
                relayed.sink.feed(_STREAMS[stream], chunk)
            else:
                self._finish(key, relayed, stream)
        return True

    def _finish(self, key: int, relayed: _Relayed, stream: int) -> None:
        if not relayed.open[stream]:
            return
        relayed.open[stream] = False
        relayed.sink.finish(_STREAMS[stream])
        relayed.closed()
        if not any(relayed.open):
            del self._relayed[key]

    def _end_all(self) -> None:
        """Every stream still open ends for its reader (the relay is gone, or closing)."""
        for key, relayed in list(self._relayed.items()):
            for stream in (0, 1):
                self._finish(key, relayed, stream)

    def close(self) -> None:
        """End every stream still open, close the socket (the relay then exits), reap it."""
        self._end_all()
        with contextlib.suppress(OSError):
            self.socket.close()
        if not readable_within(self._pidfd, _EXIT_TIMEOUT):
            with contextlib.suppress(OSError):
                signal.pidfd_send_signal(self._pidfd, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitid(os.P_PIDFD, self._pidfd, os.WEXITED)
        os.close(self._pidfd)
