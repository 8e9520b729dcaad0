"""The listening socket, and the one accept loop every server and the delay proxy share.

One policy for accept(), written once: a bounded batch per wake-up, so a connection storm
cannot starve the clients already served; and when descriptors or memory run out (EMFILE,
ENFILE, ENOBUFS, ENOMEM), a pause: the connection stays in the backlog, the caller stops
watching the listener until `pause_left()` is zero and serves everyone else meanwhile
(watching it at once would report it readable again: a busy loop; sleeping would stall
every client).
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

from server.log import log
from server.peers import peer_name

ACCEPTS_PER_WAKEUP = 64
ACCEPT_PAUSE_SECONDS = 1.0


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


class Acceptor:
    """accept() on a non-blocking listener, by the policy in this module's docstring."""

    def __init__(self, listener: socket.socket) -> None:
        self.listener = listener
        self.paused_until = 0.0  # monotonic time when accepting may resume

    def accept(self, room: int = ACCEPTS_PER_WAKEUP) -> Iterator[tuple[socket.socket, tuple]]:
        """Yield (socket, address) for at most `room` waiting connections (and one batch)."""
        for _ in range(min(room, ACCEPTS_PER_WAKEUP)):
            try:
                connection = self.listener.accept()
            except (BlockingIOError, ConnectionAbortedError):
                return  # the backlog is empty (or its head gave up before we got to it)
            except OSError as error:
                log(f"accept failed ({error}): pausing accepts for {ACCEPT_PAUSE_SECONDS:g} s")
                self.paused_until = time.monotonic() + ACCEPT_PAUSE_SECONDS
                return
            yield connection

    def pause_left(self) -> float:
        """Seconds until accepting may resume after a failed accept(); 0.0 when it may now."""
        return max(0.0, self.paused_until - time.monotonic())
