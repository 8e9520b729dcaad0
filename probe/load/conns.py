"""Client sockets for the load workers: one message at a time, verified on arrival."""

from __future__ import annotations

import errno
import os
import random
import select
import socket
import time

from probe.compare import first_difference
from probe.load.plan import Tally

IN, OUT = select.EPOLLIN, select.EPOLLOUT
BROKEN = select.EPOLLERR | select.EPOLLHUP


class Conn:
    """One client socket sending one message at a time and collecting its echo."""

    __slots__ = ("buf", "expect", "fd", "got", "index", "out", "rounds", "sock", "view")

    def __init__(self, sock: socket.socket, index: int, size: int) -> None:
        self.sock = sock
        self.fd = sock.fileno()
        self.index = index
        self.buf = bytearray(size)
        self.view = memoryview(self.buf)
        self.expect = b""
        self.out = memoryview(b"")
        self.got = 0
        self.rounds = 0

    def start(self, message: bytes) -> bool:
        """Send a message; True if it all went (else EPOLLOUT must finish it)."""
        self.expect = message
        self.got = 0
        self.out = memoryview(message)
        return self.push()

    def push(self) -> bool:
        if self.out:
            try:
                sent = self.sock.send(self.out)
            except BlockingIOError:
                return False
            self.out = self.out[sent:]
        return not self.out

    def pull(self) -> int:
        """Read what has come; 0 means EOF. Never reads past the current message's end."""
        n = self.sock.recv_into(self.view[self.got : len(self.expect)])
        self.got += n
        return n

    @property
    def complete(self) -> bool:
        return self.got == len(self.expect)

    def verify(self) -> str | None:
        if self.buf == self.expect:  # every message is exactly len(buf): one memcmp
            return None
        return f"connection {self.index} round {self.rounds}: " + first_difference(
            self.expect, self.buf
        )


def count_echo(c: Conn, tally: Tally, in_window: bool) -> None:
    """A message came back whole: count its bytes, and a round trip if it matched in time."""
    tally.bytes_received += c.got
    if problem := c.verify():
        tally.mismatch(problem)
    elif in_window:
        tally.ops += 1


VARIANTS = 8  # distinct messages per size: a stale or misrouted echo shows up as a mismatch


def make_messages(size: int, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    return [rng.randbytes(size) for _ in range(VARIANTS)]


def new_socket(family: int) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setblocking(False)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def open_connections(
    address: tuple, family: int, count: int, timeout: float, tally: Tally
) -> list[socket.socket]:
    """Connect `count` sockets at once (non-blocking) and wait for the handshakes."""
    ep = select.epoll()
    pending: dict[int, socket.socket] = {}
    for _ in range(count):
        sock = new_socket(family)
        err = sock.connect_ex(address)
        if err not in (0, errno.EINPROGRESS):
            tally.error(f"connect: {os.strerror(err)}")
            sock.close()
            continue
        pending[sock.fileno()] = sock
        ep.register(sock.fileno(), OUT)
    done: list[socket.socket] = []
    deadline = time.monotonic() + timeout
    while pending and (left := deadline - time.monotonic()) > 0:
        for fd, _ in ep.poll(left):
            sock = pending.pop(fd)
            ep.unregister(fd)
            err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                tally.error(f"connect: {os.strerror(err)}")
                sock.close()
            else:
                done.append(sock)
    for sock in pending.values():
        tally.error(f"connect: no handshake within {timeout:.0f} s")
        sock.close()
    ep.close()
    return done


def step(c: Conn, events: int, ep: select.epoll, tally: Tally) -> bool | None:
    """Do what one epoll event allows: send what is left, read what has come.

    True once the message has fully come back, False while more is due; None if the
    connection failed (counted as an error, unregistered and closed).
    """
    try:
        if events & OUT and c.push():
            ep.modify(c.fd, IN)
        if not events & (IN | BROKEN):
            return False
        if c.pull() == 0:
            raise ConnectionError(
                f"closed by the server after {c.rounds} round trips and {c.got} bytes"
            )
    except BlockingIOError:
        return False
    except OSError as error:
        tally.error(f"connection {c.index}: {error}")
        ep.unregister(c.fd)
        c.sock.close()
        return None
    return c.complete


def echo_round(conns: list[Conn], deadline: float, tally: Tally) -> tuple[list[Conn], list[Conn]]:
    """Wait until each conn's message (already started) has fully come back, or the deadline.

    Returns (echoed, still waiting); conns that failed are closed and counted as errors.
    """
    ep = select.epoll()
    by_fd: dict[int, Conn] = {}
    echoed: list[Conn] = []
    for c in conns:
        by_fd[c.fd] = c
        ep.register(c.fd, IN if not c.out else IN | OUT)
    while by_fd and (left := deadline - time.monotonic()) > 0:
        for fd, ev in ep.poll(left):
            c = by_fd[fd]
            done = step(c, ev, ep, tally)
            if done is None:
                del by_fd[fd]
            elif done:
                del by_fd[fd]
                ep.unregister(fd)
                if problem := c.verify():
                    tally.mismatch(problem)
                else:
                    echoed.append(c)
    ep.close()
    return echoed, list(by_fd.values())
