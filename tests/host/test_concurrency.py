"""200+ clients at once: no cross-talk; one child per client (fork) or one process (select)."""

from __future__ import annotations

import random
import re
import select
import socket
import time
from collections.abc import Callable

import pytest

from probe import procfs
from probe.compare import first_difference
from probe.sockets import HOST, connect, recv_exactly, roundtrip
from tests.host.support import ClientResult, ServerProcess, payload_for, wait_until

CLIENTS = 220
HOG_LIMIT = 256 * 1024 * 1024
NEW_CHILD = re.compile(r"new client connected\.\.\. \S+ -> child (?P<pid>\d+)")
REMOVED = re.compile(r"removed proc id: (?P<pid>\d+) \((?P<how>[^)]*)\)")

Client = Callable[..., ClientResult]


def assert_process_shape(server: ServerProcess, connected: int) -> None:
    """fork: exactly one live child per connected client; select: one single-threaded process."""
    if server.model == "fork":
        kids = server.wait_children(connected, timeout=15)
        assert procfs.zombies_among(kids) == []
        assert all(procfs.thread_count(k) == 1 for k in kids)
        logged = {int(m["pid"]) for line in server.log_lines() if (m := NEW_CHILD.search(line))}
        assert set(kids) <= logged, "every child the kernel shows was logged as a client's child"
    else:
        assert procfs.children_of(server.pid) == []
        assert procfs.thread_count(server.pid) == 1
        # The one process holds every server-side end of the connections.
        accepted = procfs.accepted_inodes(server.port)
        assert len(accepted) == connected
        assert accepted <= procfs.socket_inodes(server.pid)


@pytest.mark.timeout(120)
def test_concurrent_raw_clients_get_only_their_own_bytes(server: ServerProcess) -> None:
    socks = [connect(server.port) for _ in range(CLIENTS)]
    try:
        # Every client sends before any reads: all conversations are open at once.
        payloads = [payload_for(i, 1000 + 7 * i) for i in range(CLIENTS)]
        for sock, payload in zip(socks, payloads, strict=True):
            sock.sendall(payload)
        for i, (sock, payload) in enumerate(zip(socks, payloads, strict=True)):
            got = recv_exactly(sock, len(payload), timeout=15)
            assert got == payload, f"client {i}: {first_difference(payload, got)}"
        assert_process_shape(server, CLIENTS)
        # A second round on the same connections, in reverse order.
        for i in reversed(range(CLIENTS)):
            payload = payload_for(CLIENTS + i, 333)
            socks[i].sendall(payload)
            got = recv_exactly(socks[i], len(payload), timeout=15)
            assert got == payload, f"client {i}, round 2: {first_difference(payload, got)}"
    finally:
        for sock in socks:
            sock.close()
    if server.model == "fork":
        server.wait_children(0, timeout=15)
    else:
        wait_until(
            lambda: not procfs.accepted_inodes(server.port), 15, what="every client socket closed"
        )


@pytest.mark.timeout(120)
def test_the_client_runs_200_connections_at_once(server: ServerProcess, client: Client) -> None:
    result = client(
        server.port, "--connections", "200", "--bytes", "30000", "--chunk-size", "4096", "--json"
    )
    assert result.returncode == 0, result
    report = result.report()
    assert (report["connections"], report["ok"], report["failed"]) == (200, 200, 0), result
    assert report["bytes_sent"] == report["bytes_received"] == 200 * 30000
    if server.model == "fork":
        # Every child the server forked was reaped, and each left with status 0.
        forked = [int(m["pid"]) for line in server.log_lines() if (m := NEW_CHILD.search(line))]
        assert len(forked) == len(set(forked)) == 200

        def reaped() -> dict[int, str]:
            return {
                int(m["pid"]): m["how"]
                for line in server.log_lines()
                if (m := REMOVED.search(line))
            }

        wait_until(lambda: len(reaped()) == 200, 15, what="200 children reaped")
        assert reaped() == dict.fromkeys(forked, "exit 0")
        assert server.children() == []
    else:
        assert procfs.children_of(server.pid) == []


def _stream(offset: int, size: int, pattern: bytes) -> bytes:
    """`size` bytes of an endless repetition of `pattern`, starting at `offset`."""
    start = offset % len(pattern)
    out = pattern[start:]
    while len(out) < size:
        out += pattern
    return out[:size]


@pytest.mark.timeout(90)
def test_a_client_that_never_reads_stalls_no_one_else(
    server: ServerProcess, client: Client
) -> None:
    pattern = random.Random(7).randbytes(1 << 20)
    hog = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    hog.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)  # keep the kernel's share
    hog.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 * 1024)  # of the backlog small
    hog.settimeout(10)
    hog.connect((HOST, server.port))
    hog.setblocking(False)
    serving = server.wait_children(1)[0] if server.model == "fork" else server.pid
    rss_before = procfs.rss_kb(serving) or 0

    # Push until the echo path is full and the server stops reading from the hog: no progress
    # for a second. An unbounded server buffer would swallow all of HOG_LIMIT.
    sent = 0
    last_progress = time.monotonic()
    while sent < HOG_LIMIT and time.monotonic() - last_progress < 1.0:
        try:
            sent += hog.send(_stream(sent, 256 * 1024, pattern))
            last_progress = time.monotonic()
        except BlockingIOError:
            select.select([], [hog], [], 0.1)
    assert sent < HOG_LIMIT, "the server kept reading from a client that never reads"

    # While the hog is stuck, everyone else is served.
    with connect(server.port) as other:
        for i in range(20):
            payload = payload_for(i, 2000)
            assert roundtrip(other, payload) == payload, f"round {i} stalled behind the hog"
    result = client(server.port, "--connections", "5", "--bytes", "200000", "--json")
    assert result.returncode == 0, result
    rss_after = procfs.rss_kb(serving) or 0
    grown_mib = (rss_after - rss_before) / 1024
    assert grown_mib < 64, f"the server buffered {grown_mib:.0f} MiB for the hog"

    # Backpressure loses nothing: the hog finally reads, and gets every byte back.
    hog.setblocking(True)
    hog.settimeout(30)
    hog.shutdown(socket.SHUT_WR)
    got = 0
    while chunk := hog.recv(1 << 20):
        expected = _stream(got, len(chunk), pattern)
        assert chunk == expected, f"hog byte {got}: {first_difference(expected, chunk)}"
        got += len(chunk)
    assert got == sent
    hog.close()
