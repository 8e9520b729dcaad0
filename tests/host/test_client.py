"""The client fails loudly against a bad echo server, naming the connection and the offset.

The bad servers are tiny threads in this process: they echo exactly, except on one chosen
connection (in accept order, which is the client's connect order).
"""

from __future__ import annotations

import contextlib
import re
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest

from probe.sockets import HOST
from tests.host.support import ClientResult

Client = Callable[..., ClientResult]


@dataclass
class BadEchoServer:
    """Echoes every connection, but misbehaves on connection `victim` as `fault` says."""

    fault: str  # exact | corrupt | drop-tail | extra | silent
    victim: int = 0
    offset: int = 1234  # corrupt: which byte to flip
    drop: int = 100  # drop-tail: how many final bytes never come back
    extra: bytes = b"SURPRISE"
    original: dict[int, int] = field(default_factory=dict)  # corrupt: the byte it replaced
    listener: socket.socket = field(init=False)
    threads: list[threading.Thread] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.listener = socket.create_server((HOST, 0), backlog=64)
        self.listener.settimeout(0.2)
        self.stopping = threading.Event()
        self.threads.append(threading.Thread(target=self._accept, daemon=True))
        self.threads[0].start()

    @property
    def port(self) -> int:
        return self.listener.getsockname()[1]

    def _accept(self) -> None:
        index = 0
        while not self.stopping.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            fault = self.fault if index == self.victim else "exact"
            thread = threading.Thread(target=self._serve, args=(conn, fault), daemon=True)
            thread.start()
            self.threads.append(thread)
            index += 1

    def _serve(self, conn: socket.socket, fault: str) -> None:
        conn.settimeout(30)
        at = 0  # offset of the next byte read
        held = b""  # drop-tail: the most recent bytes, not echoed yet
        with conn, contextlib.suppress(OSError):
            while data := conn.recv(65536):
                if fault == "corrupt" and at <= self.offset < at + len(data):
                    i = self.offset - at
                    self.original[self.offset] = data[i]
                    data = data[:i] + bytes([data[i] ^ 0xFF]) + data[i + 1 :]
                at += len(data)
                if fault == "silent":
                    continue  # swallow everything, echo nothing
                if fault == "drop-tail":
                    held += data
                    data, held = held[: -self.drop], held[-self.drop :]
                conn.sendall(data)
            if fault == "extra":
                conn.sendall(self.extra)
            if fault == "silent":
                self.stopping.wait(30)  # and hold the connection open: no EOF either

    def close(self) -> None:
        self.stopping.set()
        self.listener.close()
        for thread in self.threads:
            thread.join(5)


@pytest.fixture
def bad_server() -> Iterator[Callable[..., BadEchoServer]]:
    made: list[BadEchoServer] = []

    def make(fault: str, **kwargs: int) -> BadEchoServer:
        made.append(BadEchoServer(fault, **kwargs))  # type: ignore[arg-type]
        return made[-1]

    yield make
    for server in made:
        server.close()


def test_the_client_passes_when_the_echo_is_exact(
    bad_server: Callable[..., BadEchoServer], client: Client
) -> None:
    server = bad_server("exact")
    result = client(server.port, "--connections", "3", "--bytes", "5000", "--timeout", "10")
    assert result.returncode == 0, result


def test_a_corrupted_byte_fails_the_client_and_names_connection_and_offset(
    bad_server: Callable[..., BadEchoServer], client: Client
) -> None:
    server = bad_server("corrupt", victim=1, offset=1234)
    result = client(
        server.port, "--connections", "3", "--bytes", "5000", "--timeout", "10", "--json"
    )
    assert result.returncode == 1, result
    sent = server.original[1234]
    expected = rf"connection 1: .*byte 1234 differs \(sent 0x{sent:02x}, got 0x{sent ^ 0xFF:02x}\)"
    assert re.search(expected, result.stderr, re.IGNORECASE), result
    assert not re.search(r"connection [02]:", result.stderr), "only connection 1 failed"
    report = result.report()
    assert (report["ok"], report["failed"]) == (2, 1), result


@pytest.mark.parametrize(("drop", "total"), [(100, 1000), (1000, 1000)], ids=["tail", "all"])
def test_a_dropped_tail_fails_the_client_and_says_how_much_is_missing(
    bad_server: Callable[..., BadEchoServer], client: Client, drop: int, total: int
) -> None:
    server = bad_server("drop-tail", drop=drop)
    result = client(server.port, "--bytes", str(total), "--timeout", "10")
    assert result.returncode == 1, result
    expected = rf"connection 0: .*missing {drop} bytes \(got {total - drop} of {total}\)"
    assert re.search(expected, result.stderr), result


def test_extra_bytes_fail_the_client(
    bad_server: Callable[..., BadEchoServer], client: Client
) -> None:
    server = bad_server("extra")
    result = client(server.port, "--bytes", "1000", "--timeout", "10")
    assert result.returncode == 1, result
    assert re.search(rf"connection 0: .*{len(server.extra)} unexpected extra bytes", result.stderr)


def test_a_silent_server_fails_the_client_after_its_timeout(
    bad_server: Callable[..., BadEchoServer], client: Client
) -> None:
    server = bad_server("silent", victim=0)
    result = client(server.port, "--bytes", "100000", "--timeout", "1", timeout=20)
    assert result.returncode == 1, result
    assert re.search(r"connection 0: .*no echo for 1 s: got 0 of 100000 bytes", result.stderr)
