"""The four modes, as run inside one load worker process on its share of the connections.

Each mode sets up, calls `ready()` (the parent may sample the server then; it answers with
the moment to start), runs its window and counts into the tally. Only echoes completed inside
the window count toward the rate; the ones in flight at its end are still awaited and checked,
so the server sees clean closes, not resets.
"""

from __future__ import annotations

import errno
import os
import random
import select
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass

from probe.compare import first_difference
from probe.load.conns import (
    BROKEN,
    IN,
    OUT,
    VARIANTS,
    Conn,
    count_echo,
    echo_round,
    make_messages,
    new_socket,
    open_connections,
    step,
)
from probe.load.plan import Load, Tally

MAX_SESSIONS_PER_WORKER = 1_000_000
STREAM_BLOCK = 65536
DRAIN_SECONDS = 3.0  # after the window: time for the echoes in flight to come back


@dataclass
class Job:
    """One worker's share of a run."""

    host: str
    port: int
    load: Load
    index: int
    count: int  # connections (rate: sessions in flight) for this worker

    def address(self) -> tuple[tuple, int]:
        info = socket.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM)[0]
        return info[4], info[0]


def connect_share(job: Job, tally: Tally) -> tuple[list[bytes], list[Conn]]:
    """Open this worker's connections: the messages they will send, and one Conn each."""
    load = job.load
    address, family = job.address()
    messages = make_messages(load.size, load.seed + job.index)
    socks = open_connections(address, family, job.count, 10.0, tally)
    tally.connected = len(socks)
    conns = [Conn(s, job.index + i * load.workers, load.size) for i, s in enumerate(socks)]
    return messages, conns


def run_rr(job: Job, tally: Tally, ready: Callable[[], float]) -> None:
    load = job.load
    messages, opened = connect_share(job, tally)
    conns = {c.fd: c for c in opened}
    start_at = ready()
    time.sleep(max(0.0, start_at - time.monotonic()))
    deadline = start_at + load.duration
    ep = select.epoll()
    for c in conns.values():
        ep.register(c.fd, IN if c.start(messages[c.index % VARIANTS]) else IN | OUT)
    tally.bytes_sent += load.size * len(conns)
    stopping = False
    while conns:
        now = time.monotonic()
        if not stopping and now >= deadline:
            stopping, deadline = True, now + DRAIN_SECONDS  # finish the echoes in flight
        elif stopping and now >= deadline:
            break
        for fd, ev in ep.poll(deadline - now):
            c = conns[fd]
            done = step(c, ev, ep, tally)
            if done is None:
                del conns[fd]
            if not done:
                continue
            count_echo(c, tally, in_window=not stopping)
            c.rounds += 1
            if stopping:
                ep.unregister(fd)
                del conns[fd]
                c.sock.close()  # every byte came back: a clean FIN, not a reset
                continue
            tally.bytes_sent += load.size
            if not c.start(messages[(c.index + c.rounds) % VARIANTS]):
                ep.modify(fd, IN | OUT)
    for c in conns.values():
        tally.error(f"connection {c.index}: echo still missing {DRAIN_SECONDS:.0f} s after the end")
        c.sock.close()
    tally.closed_at = time.monotonic()
    ep.close()


class Session(Conn):
    __slots__ = ("connecting",)


def run_rate(job: Job, tally: Tally, ready: Callable[[], float]) -> None:
    load = job.load
    address, family = job.address()
    messages = make_messages(load.size, load.seed + job.index)
    start_at = ready()
    time.sleep(max(0.0, start_at - time.monotonic()))
    deadline = start_at + load.duration
    ep = select.epoll()
    live: dict[int, Session] = {}
    started = 0

    def begin() -> None:
        nonlocal started
        sock = new_socket(family)
        err = sock.connect_ex(address)
        if err not in (0, errno.EINPROGRESS):
            tally.error(f"connect: {os.strerror(err)}")
            sock.close()
            time.sleep(0.001)  # a refusing server must not turn this into a busy loop
            return
        s = Session(sock, started, load.size)
        s.connecting = True
        started += 1
        live[s.fd] = s
        ep.register(s.fd, OUT)

    def end(s: Session) -> None:
        ep.unregister(s.fd)
        del live[s.fd]
        s.sock.close()

    for _ in range(job.count):
        begin()
    stopping = False
    while live:
        now = time.monotonic()
        if not stopping and now >= deadline:
            stopping, deadline = True, now + DRAIN_SECONDS
        elif stopping and now >= deadline:
            break
        for fd, ev in ep.poll(deadline - now):
            s = live[fd]
            try:
                if s.connecting:
                    err = s.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    if err:
                        raise OSError(err, os.strerror(err))
                    s.connecting = False
                    tally.connected += 1
                    tally.bytes_sent += load.size
                    ep.modify(fd, IN if s.start(messages[s.index % VARIANTS]) else IN | OUT)
                    continue
                if ev & OUT and s.push():
                    ep.modify(fd, IN)
                if not ev & (IN | BROKEN):
                    continue
                if s.pull() == 0:
                    raise ConnectionError(f"closed by the server after {s.got} echoed bytes")
            except BlockingIOError:
                continue
            except OSError as error:
                tally.error(f"session {s.index}: {error}")
                end(s)
            else:
                if not s.complete:
                    continue
                count_echo(s, tally, in_window=not stopping)
                end(s)  # the client closes first: its side keeps the TIME_WAIT
            if not stopping and started < MAX_SESSIONS_PER_WORKER:
                begin()
    for s in list(live.values()):
        tally.error(f"session {s.index}: unfinished {DRAIN_SECONDS:.0f} s after the end")
        end(s)
    tally.closed_at = time.monotonic()
    ep.close()


def run_hold(job: Job, tally: Tally, ready: Callable[[], float]) -> None:
    load = job.load
    messages, conns = connect_share(job, tally)
    for c in conns:
        c.start(messages[c.index % VARIANTS])
    tally.bytes_sent += load.size * len(conns)
    # Proof 1, while every client is connected: who is served at once, who waits.
    served, waiting = echo_round(conns, time.monotonic() + load.serve_timeout, tally)
    tally.served_at_once = len(served)
    ready()  # the parent samples the server now, holds, then lets us go on
    # Proof 2: the same connections still echo after the hold.
    for c in served:
        c.rounds += 1
        c.start(messages[(c.index + 1) % VARIANTS])
    tally.bytes_sent += load.size * len(served)
    again, stuck = echo_round(served, time.monotonic() + 5.0, tally)
    tally.proven_again = len(again)
    for c in stuck:
        tally.error(f"connection {c.index}: no second echo within 5 s")
    for c in served:
        c.sock.close()
    # The waiting clients get their place as the served ones leave.
    later, never = echo_round(waiting, time.monotonic() + load.late_timeout, tally)
    tally.served_later = len(later)
    tally.never_served = len(never)
    tally.bytes_received += load.size * (len(served) + len(again) + len(later))
    for c in waiting:
        c.sock.close()
    tally.closed_at = time.monotonic()


class Stream:
    """One full-duplex connection: sends the pattern from `offset` on, verifies its echo."""

    __slots__ = ("index", "offset", "received", "sent", "sock", "writing")

    def __init__(self, sock: socket.socket, index: int, offset: int) -> None:
        self.sock, self.index, self.offset = sock, index, offset
        self.sent = self.received = 0
        self.writing = True


def run_stream(job: Job, tally: Tally, ready: Callable[[], float]) -> None:
    load = job.load
    address, family = job.address()
    block = random.Random(load.seed).randbytes(STREAM_BLOCK)
    double = block + block  # any slice of up to one block, at any offset, without wrapping
    pattern = memoryview(double)
    window = load.size
    socks = open_connections(address, family, job.count, 10.0, tally)
    tally.connected = len(socks)
    conns = {
        s.fileno(): Stream(s, job.index + i * load.workers, (i * 7919) % STREAM_BLOCK)
        for i, s in enumerate(socks)
    }
    start_at = ready()
    time.sleep(max(0.0, start_at - time.monotonic()))
    deadline = start_at + load.duration
    ep = select.epoll()
    for fd in conns:
        ep.register(fd, IN | OUT)

    def close(fd: int, c: Stream) -> None:
        ep.unregister(fd)
        del conns[fd]
        c.sock.close()

    stopping = False
    while conns:
        now = time.monotonic()
        if not stopping and now >= deadline:
            stopping, deadline = True, now + DRAIN_SECONDS
            for fd, c in conns.items():
                if c.writing:
                    c.writing = False
                    ep.modify(fd, IN)
                if c.sent == c.received:
                    c.sock.shutdown(socket.SHUT_WR)
        elif stopping and now >= deadline:
            break
        for fd, ev in ep.poll(deadline - now):
            c = conns[fd]
            try:
                if ev & OUT and c.writing:
                    room = min(window - (c.sent - c.received), STREAM_BLOCK)
                    at = (c.offset + c.sent) % STREAM_BLOCK
                    c.sent += c.sock.send(pattern[at : at + room])
                    if c.sent - c.received >= window:
                        c.writing = False  # the window is full: wait for echoes
                        ep.modify(fd, IN)
                if not ev & (IN | BROKEN):
                    continue
                data = c.sock.recv(STREAM_BLOCK)
            except BlockingIOError:
                continue
            except OSError as error:
                tally.error(f"connection {c.index}: {error}")
                close(fd, c)
                continue
            if not data:
                if not stopping or c.received != c.sent:
                    tally.error(f"connection {c.index}: closed by the server at byte {c.received}")
                close(fd, c)
                continue
            at = (c.offset + c.received) % STREAM_BLOCK
            expected = double[at : at + len(data)]
            if data != expected:
                where = first_difference(expected, data, offset=c.received)
                tally.mismatch(f"connection {c.index}: {where}")
            c.received += len(data)
            tally.bytes_received += len(data)
            if c.received > c.sent:
                tally.mismatch(f"connection {c.index}: {c.received - c.sent} bytes never sent")
            if not stopping:
                tally.ops += len(data)
                if not c.writing:
                    c.writing = True
                    ep.modify(fd, IN | OUT)
            elif c.received == c.sent:
                c.sock.shutdown(socket.SHUT_WR)  # all echoed: the server sees EOF and closes
    for fd, c in list(conns.items()):
        tally.error(f"connection {c.index}: stream unfinished {DRAIN_SECONDS:.0f} s after the end")
        close(fd, c)
    tally.bytes_sent = tally.bytes_received
    tally.closed_at = time.monotonic()
    ep.close()


RUNNERS = {"rr": run_rr, "rate": run_rate, "hold": run_hold, "stream": run_stream}
