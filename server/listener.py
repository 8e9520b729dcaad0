"""What every server model shares: the listening socket, the log, and signal-driven shutdown.

Each model module (forking, selecting) then reads like the lecture notes: the lesson and
nothing else.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import socket
import time

# select() watches descriptors below FD_SETSIZE only: glibc's fd_set is a fixed 1024-bit array.
FD_SETSIZE = 1024

_role = "server"


def set_role(role: str) -> None:
    """Name this process in every log line (fork-server, fork-child, select-server...)."""
    global _role
    _role = role


# Fixed once: looking up sys.stderr.fileno() per line would touch (and, in a forking
# server, copy) more of the parent's memory on every connection.
_LOG_FD = 2  # stderr
_stamp_second, _stamp = -1, ""


def log(message: str, role: str | None = None) -> None:
    """Write one event as one line, flushed at once.

    A single os.write() per line: safe inside signal handlers and forked children (no lock,
    no buffer to inherit), and lines from many processes never interleave mid-line.
    """
    global _stamp_second, _stamp
    now = time.time()
    second = int(now)
    if second != _stamp_second:
        _stamp_second, _stamp = second, time.strftime("%H:%M:%S", time.localtime(second))
    line = f"{_stamp}.{int((now - second) * 1000):03d} {role or _role}[{os.getpid()}] {message}\n"
    with contextlib.suppress(OSError):  # a closed log pipe must never take the server down
        os.write(_LOG_FD, line.encode(errors="replace"))


_quiet_hosts: frozenset[str] = frozenset()


def set_quiet_hosts(hosts: list[str]) -> None:
    """Serve these hosts without logging them: a container's own health probe, every few
    seconds, would otherwise bury the demo's lines."""
    global _quiet_hosts
    _quiet_hosts = frozenset(hosts)


def is_quiet(address: tuple) -> bool:
    return address[0] in _quiet_hosts


def peer_name(address: tuple) -> str:
    host, port = address[0], address[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def open_listener(host: str, port: int) -> socket.socket:
    """Bind and listen, with a backlog deep enough for connection storms to wait in."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    # A restarted server must rebind at once, even while old connections sit in TIME_WAIT.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(socket.SOMAXCONN)
    sock.setblocking(False)
    return sock


def listen_address(sock: socket.socket) -> str:
    return peer_name(sock.getsockname())


class Shutdown:
    """SIGTERM/SIGINT/SIGHUP set a flag and wake the main loop through a self-pipe.

    Python retries a select() interrupted by a signal (PEP 475), so a flag alone would not
    wake it; signal.set_wakeup_fd writes a byte to `wakeup_fd` on every signal, and the main
    loop watches that descriptor beside its sockets. Explicit handlers matter as PID 1 in a
    container, where the kernel applies no default action to SIGTERM.

    A forked child keeps these handlers (resetting each through the signal module would copy
    memory in every child): in a child, the handler takes the signal's default action.
    """

    SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)

    def __init__(self) -> None:
        self.requested: str | None = None
        self._owner = os.getpid()
        self._reader, self._writer = socket.socketpair()
        self._reader.setblocking(False)
        self._writer.setblocking(False)
        signal.set_wakeup_fd(self._writer.fileno(), warn_on_full_buffer=False)
        for signum in self.SIGNALS:
            signal.signal(signum, self._request)

    def _request(self, signum: int, _frame: object) -> None:
        if os.getpid() != self._owner:  # a forked child: die of the signal, as by default
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        if self.requested is None:
            self.requested = signal.Signals(signum).name

    @property
    def wakeup_fd(self) -> int:
        return self._reader.fileno()

    def drain(self) -> None:
        """Empty the self-pipe after a wake-up, so the next select() blocks again."""
        try:
            while self._reader.recv(4096):
                pass
        except BlockingIOError:
            pass

    def close_in_child(self) -> None:
        """A forked child drops the parent's self-pipe: it serves one client, nothing else."""
        signal.set_wakeup_fd(-1)
        os.close(self._reader.fileno())
        os.close(self._writer.fileno())

    def wait(self, timeout: float) -> None:
        """Sleep until any signal arrives or `timeout` passes."""
        select.select([self._reader], [], [], timeout)
        self.drain()
