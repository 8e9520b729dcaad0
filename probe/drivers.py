"""Verified echo exchanges the checker runs against a server it knows nothing about.

Unlike ``probe.sessions.stream_echo``, an exchange here is judged on the bytes alone: it ends
once every byte is back, and whether the server then closes (EOF after our half-close) is
recorded, not required. So one server flaw shows up in one place: a lost EOF is the
half-close lesson, not a failed echo. Every wait is bounded.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import time
from dataclasses import dataclass

from probe.compare import first_difference
from probe.sessions import MIB, RECV_SIZE, payload_of
from probe.sockets import HOST, connect


@dataclass
class Exchange:
    """What came back on one connection."""

    sent: int = 0
    received: int = 0
    wrong: str = ""  # the first difference, described ("" while every byte matched)
    ended: str = ""  # 'echoed' (all back), 'eof' (closed early), 'reset', 'timeout'
    eof: bool | None = None  # after all was back: did the server close? None: not asked
    seconds: float = 0.0

    @property
    def exact(self) -> bool:
        return not self.wrong and self.ended == "echoed"

    def describe(self, total: int) -> str:
        if self.wrong:
            return self.wrong
        if self.ended == "echoed":
            return f"all {total} bytes back"
        return f"{self.received} of {total} bytes back, then {self.ended}"


def exchange(
    port: int,
    payload: bytes | memoryview,
    chunk: int = 64 * 1024,
    pause_s: float = 0.0,
    half_close: bool = True,
    eof_wait_s: float = 0.0,
    limit_s: float = 10.0,
    read_delay_s: float = 0.0,
    host: str = HOST,
) -> Exchange:
    """Send `payload` in `chunk`-sized sends (`pause_s` between them) while reading the echo.

    `half_close` shuts down our write side once all is sent; `eof_wait_s` > 0 then waits that
    long for the server's EOF after the last byte is back. `read_delay_s` holds off reading
    at first, so the server has echo in flight when our EOF reaches it.
    """
    data = memoryview(payload).cast("B")
    total = len(data)
    out = Exchange()
    started = time.monotonic()
    deadline = started + limit_s
    sock = connect(port, min(limit_s, 10.0), host)
    sock.setblocking(False)
    selector = selectors.DefaultSelector()
    events = selectors.EVENT_READ | (selectors.EVENT_WRITE if total else 0)
    selector.register(sock, events)
    next_send = started
    write_closed = False
    try:
        if not total and half_close:
            sock.shutdown(socket.SHUT_WR)
            write_closed = True
        while time.monotonic() < deadline:
            if out.received == total and (write_closed or not half_close):
                out.ended = "echoed"
                break
            now = time.monotonic()
            reading = now - started >= read_delay_s
            want = selectors.EVENT_READ if reading else 0
            if out.sent < total and now >= next_send:
                want |= selectors.EVENT_WRITE
            if want == 0:
                time.sleep(min(0.005, deadline - now))
                continue
            selector.modify(sock, want)
            wait = min(0.05, max(0.0, deadline - now))
            if out.sent < total:
                wait = min(wait, max(0.0, next_send - now))  # the next paced send is due
            for _, ready in selector.select(wait):
                if ready & selectors.EVENT_WRITE and out.sent < total:
                    size = min(chunk, total - out.sent)
                    with contextlib.suppress(BlockingIOError):
                        out.sent += sock.send(data[out.sent : out.sent + size])
                    next_send = time.monotonic() + pause_s
                    if out.sent == total and half_close:
                        sock.shutdown(socket.SHUT_WR)
                        write_closed = True
                if ready & selectors.EVENT_READ:
                    try:
                        piece = sock.recv(RECV_SIZE)
                    except BlockingIOError:
                        continue
                    except OSError:
                        out.ended = "reset"
                        return out
                    if not piece:
                        out.ended = "eof"
                        out.eof = True
                        return out
                    want_bytes = bytes(data[out.received : out.received + len(piece)])
                    if piece != want_bytes:
                        out.wrong = first_difference(want_bytes, piece, out.received)
                        out.ended = "wrong"
                        return out
                    out.received += len(piece)
        else:
            out.ended = "timeout"
            return out
        if eof_wait_s > 0:
            out.eof = _eof_within(sock, eof_wait_s, out)
        return out
    finally:
        out.seconds = time.monotonic() - started
        selector.close()
        sock.close()


def _eof_within(sock: socket.socket, wait_s: float, out: Exchange) -> bool:
    """True when the peer closes (EOF or reset) within `wait_s`; extra bytes are wrong."""
    sock.setblocking(True)
    sock.settimeout(wait_s)
    try:
        extra = sock.recv(4096)
    except TimeoutError:
        return False
    except OSError:
        return True
    if extra:
        out.wrong = f"{len(extra)} bytes more than were sent"
        return False
    return True


def stream(
    port: int, total: int, limit_s: float = 30.0, eof_wait_s: float = 0.0, host: str = HOST
) -> Exchange:
    """One connection carrying `total` bytes (the sessions' 1 MiB pattern, cycled)."""
    pattern = bytes(payload_of(7, MIB))
    whole = (pattern * (total // MIB + 1))[:total]
    return exchange(port, whole, 256 * 1024, eof_wait_s=eof_wait_s, limit_s=limit_s, host=host)


def roundtrip_seconds(
    port: int, size: int = 1024, timeout: float = 5.0, host: str = HOST
) -> float | None:
    """Connect, echo `size` bytes, close: seconds from connect to the last byte back.

    None when it was not all back within `timeout` (or the server closed or reset first).
    """
    started = time.monotonic()
    payload = bytes(payload_of(size, size))
    try:
        sock = connect(port, timeout, host)
    except OSError:
        return None
    with sock:
        try:
            sock.settimeout(timeout)
            sock.sendall(payload)
            got = bytearray()
            while len(got) < size:
                left = timeout - (time.monotonic() - started)
                if left <= 0:
                    return None
                sock.settimeout(left)
                piece = sock.recv(size - len(got))
                if not piece:
                    return None
                got += piece
        except OSError:
            return None
        if got != payload:
            return None
    return time.monotonic() - started
