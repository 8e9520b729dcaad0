"""Peers that misbehave: resets mid-stream, peers that vanish, peers that read slowly or never.

A server must survive each of them and keep serving everyone else. Each peer's payload is a
slice of the sessions' pattern (`payload_of`), so what comes back can be checked byte by byte.
"""

from __future__ import annotations

import contextlib
import select
import socket
import struct
import threading
import time

from probe.compare import first_difference
from probe.sessions import MIB, payload_of
from probe.sockets import HOST, connect, peer_of, recv_exactly

PUSH_SIZE = 256 * 1024


def reset(sock: socket.socket) -> None:
    """Close with SO_LINGER 0: the kernel sends an RST instead of a FIN, unread data or not."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def reset_mid_stream(port: int, index: int, host: str = HOST) -> str:
    """Send 256 KiB, read the first echoed bytes, then reset; returns the peer ('host:port').

    ConnectionError if the echo had not started: then there was no stream to break.
    """
    sock = connect(port, host=host)
    try:
        sock.sendall(payload_of(index, PUSH_SIZE))
        got = recv_exactly(sock, 1000)
        if got != payload_of(index, 1000):
            raise ConnectionError(
                "no echo before the reset: " + first_difference(payload_of(index, 1000), got)
            )
        peer = peer_of(sock)
    except BaseException:
        sock.close()
        raise
    reset(sock)
    return peer


def vanish_after_half_close(port: int, index: int, host: str = HOST) -> str:
    """Send 2000 bytes, half-close, and go without reading a byte of the echo; the peer."""
    sock = connect(port, host=host)
    with sock:
        sock.sendall(payload_of(index, 2000))
        sock.shutdown(socket.SHUT_WR)
        return peer_of(sock)


class SlowPeers:
    """`trickle` + `stalled` connections: pushed full, then the first `trickle` of them read
    one byte a second (in a thread, once `start()`ed) and the others never read.

    Leaving the `with` block resets them all: nobody waits for megabytes nobody will read.
    """

    def __init__(
        self,
        port: int,
        trickle: int = 4,
        stalled: int = 4,
        push_limit: int = 64 * MIB,
        host: str = HOST,
    ) -> None:
        self.trickle = trickle
        self.push_limit = push_limit  # per peer: an unbounded server would swallow all of it
        self.socks: list[socket.socket] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._trickle, name="trickle", daemon=True)
        try:
            for _ in range(trickle + stalled):
                sock = connect(port, host=host)
                sock.setblocking(False)
                self.socks.append(sock)
        except BaseException:
            self.close()
            raise
        self.pushed = [0] * len(self.socks)
        self.trickled = [bytearray() for _ in range(trickle)]

    def push_until_stuck(self, quiet_s: float = 1.0, limit_s: float = 30.0) -> None:
        """Send (each peer its own 1 MiB, over and over) until no peer makes progress for
        `quiet_s`: every buffer on the path is full."""
        started = last = time.monotonic()
        while time.monotonic() - last < quiet_s and time.monotonic() - started < limit_s:
            _, ready, _ = select.select([], self.socks, [], 0.1)
            for sock in ready:
                i = self.socks.index(sock)
                if self.pushed[i] >= self.push_limit:
                    continue
                with contextlib.suppress(BlockingIOError):
                    at = self.pushed[i] % MIB
                    self.pushed[i] += sock.send(payload_of(i, MIB)[at : at + PUSH_SIZE])
                    last = time.monotonic()

    def start(self) -> None:
        """The tricklers begin reading, one byte a second each."""
        self.thread.start()

    def _trickle(self) -> None:
        while not self.stop.wait(1.0):
            for i in range(self.trickle):
                with contextlib.suppress(BlockingIOError):
                    self.trickled[i] += self.socks[i].recv(1)

    def close(self) -> None:
        self.stop.set()
        if self.thread.is_alive():
            self.thread.join(5)
        for sock in self.socks:
            if sock.fileno() >= 0:
                reset(sock)

    def __enter__(self) -> SlowPeers:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
