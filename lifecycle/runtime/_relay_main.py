"""The output relay: reads containers' output pipes on the engine's behalf (a program).

Run by path (``python -I -S _relay_main.py``) with a ``SOCK_SEQPACKET`` socket on fd 3;
standard library only. A descriptor limit is per process, and a container whose
stdout and stderr are captured costs the reader two descriptors: the engine hands
the pipes of containers beyond its own budget to relays (``_relay.py``), each with a
descriptor table of its own, and keeps one descriptor per container (the pidfd).

Protocol, one message each way per event:

- engine -> relay: ``key`` (4 bytes, big-endian) with two descriptors attached
  (``SCM_RIGHTS``): that container's stdout and stderr read ends;
- relay -> engine: ``key`` (4 bytes), ``stream`` (1 byte: 0 stdout, 1 stderr), then
  the bytes read; no bytes: that stream reached its end (the relay closed it).

Back-pressure is the pipes': the relay sends with blocking writes, so when the engine
reads slowly the relay stops reading and the containers' writes block, as they would
if the engine read the pipes itself. The relay exits when the engine's end closes.
"""

from __future__ import annotations

import array
import os
import resource
import select
import signal
import socket
import struct
import sys

_SOCKET_FD = 3
_READ_SIZE = 64 * 1024
_HEADER = struct.Struct("!IB")
_EVENTS = select.EPOLLIN | select.EPOLLHUP | select.EPOLLERR


def main() -> int:
    for terminal_signal in (signal.SIGINT, signal.SIGHUP):
        signal.signal(terminal_signal, signal.SIG_IGN)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and (hard == resource.RLIM_INFINITY or hard > soft):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    os.closerange(_SOCKET_FD + 1, os.sysconf("SC_OPEN_MAX"))
    engine = socket.socket(fileno=_SOCKET_FD)
    epoll = select.epoll()
    epoll.register(engine.fileno(), _EVENTS)
    streams: dict[int, tuple[int, int]] = {}  # fd -> (key, stream)
    while True:
        for fd, _ in epoll.poll():
            if fd == engine.fileno():
                if not _receive(engine, epoll, streams):
                    return 0  # the engine is gone or closing: so are we
                continue
            key, stream = streams[fd]
            try:
                chunk = os.read(fd, _READ_SIZE)
            except BlockingIOError:
                continue
            except OSError:
                chunk = b""
            try:
                engine.send(_HEADER.pack(key, stream) + chunk)  # one message, or an error
            except OSError:
                return 0  # the engine is gone
            if not chunk:
                epoll.unregister(fd)
                os.close(fd)
                del streams[fd]


def _receive(
    engine: socket.socket, epoll: select.epoll, streams: dict[int, tuple[int, int]]
) -> bool:
    """One hand-over from the engine; False once the engine's end is closed."""
    fds = array.array("i")
    message, ancillary, _, _ = engine.recvmsg(16, socket.CMSG_SPACE(2 * fds.itemsize))
    if not message:
        return False
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(data[: len(data) - len(data) % fds.itemsize])
    (key,) = struct.unpack("!I", message[:4])
    for stream, fd in enumerate(fds):
        os.set_blocking(fd, False)
        streams[fd] = (key, stream)
        epoll.register(fd, _EVENTS)
    return True


if __name__ == "__main__":
    sys.exit(main())
