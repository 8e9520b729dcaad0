"""Blocking client sockets for one connection at a time: connect, read exactly, echo.

Every read is bounded by a timeout; nothing here retries. Connections go to 127.0.0.1 unless
the caller names another host (the checker's `--image` mode: a service on its own network).
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading
import time
from collections.abc import Iterable

HOST = "127.0.0.1"


def connect(port: int, timeout: float = 10.0, host: str = HOST) -> socket.socket:
    """A blocking connection with Nagle off: a small write leaves at once."""
    sock = socket.create_connection((host, port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def recv_exactly(sock: socket.socket, size: int, timeout: float = 10.0) -> bytes:
    """Read `size` bytes; fewer only if the peer closes first. Bounded by `timeout` overall."""
    deadline = time.monotonic() + timeout
    parts: list[bytes] = []
    got = 0
    while got < size:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        sock.settimeout(left)
        try:
            chunk = sock.recv(min(size - got, 1 << 20))
        except TimeoutError:
            break
        if not chunk:
            break
        parts.append(chunk)
        got += len(chunk)
    return b"".join(parts)


def recv_until_eof(sock: socket.socket, timeout: float = 30.0) -> bytes:
    """Everything until the peer's EOF; TimeoutError if it has not come in time."""
    deadline = time.monotonic() + timeout
    parts: list[bytes] = []
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"no EOF within {timeout} s ({sum(map(len, parts))} bytes read)")
        sock.settimeout(left)
        with contextlib.suppress(TimeoutError):
            chunk = sock.recv(1 << 20)
            if not chunk:
                return b"".join(parts)
            parts.append(chunk)


def roundtrip(sock: socket.socket, payload: bytes, timeout: float = 10.0) -> bytes:
    """Send a payload small enough for the socket buffers, then read as many bytes back."""
    sock.settimeout(timeout)
    sock.sendall(payload)
    return recv_exactly(sock, len(payload), timeout)


def echo(
    port: int,
    chunks: Iterable[bytes],
    timeout: float = 60.0,
    pause_every: int = 0,
    host: str = HOST,
) -> tuple[bytes, bytes]:
    """One connection, split I/O: a thread writes `chunks` then shuts down its write side,
    this thread reads until EOF. Returns (sent, received)."""
    sock = connect(port, timeout, host)
    sent = bytearray()
    failure: list[BaseException] = []

    def writer() -> None:
        try:
            for i, chunk in enumerate(chunks):
                sock.sendall(chunk)
                sent.extend(chunk)
                if pause_every and i % pause_every == 0:
                    time.sleep(0.001)  # let small writes reach the peer as separate segments
            sock.shutdown(socket.SHUT_WR)
        except BaseException as error:  # reported by the reading side
            failure.append(error)

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    try:
        received = recv_until_eof(sock, timeout)
    finally:
        thread.join(timeout)
        sock.close()
    if failure:
        raise failure[0]
    return bytes(sent), received


def sees_close(sock: socket.socket, timeout: float = 5.0) -> bool:
    """True when the peer closes (EOF or reset) within `timeout` and sends nothing first."""
    sock.settimeout(timeout)
    try:
        return sock.recv(4096) == b""  # data would be an echo, not a close
    except TimeoutError:
        return False
    except (ConnectionResetError, BrokenPipeError):
        return True


def readable_within(sock: socket.socket, timeout: float) -> bool:
    ready, _, _ = select.select([sock], [], [], timeout)
    return bool(ready)


def peer_of(sock: socket.socket) -> str:
    """'host:port' of our end, as a server logs the client it accepted."""
    host, port = sock.getsockname()[:2]
    return f"{host}:{port}"
