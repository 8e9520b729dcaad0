"""The select/epoll servers' break-it switches: each makes the flaw the design avoids show.

--blocking-send: one client that sends and never reads stalls every other client (the fix:
non-blocking sockets with a bounded buffer per client). --no-fd-cap: past FD_SETSIZE, select()
refuses the descriptor set and the server dies (the fix: stop accepting below 1024).
"""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Callable

import pytest

from probe.sockets import connect, readable_within, recv_exactly
from tests.host.support import ServerProcess

StartServer = Callable[..., ServerProcess]

PUSH_LIMIT = 64 * 1024 * 1024  # bounded: a server that never stops reading gets no more
CHUNK = b"x" * 65536


def push_until_stuck(sock: socket.socket, deadline_s: float = 30.0) -> int:
    """Send without reading until nothing more goes out for a second; return bytes sent."""
    sock.setblocking(False)
    sent, idle_since, deadline = 0, None, time.monotonic() + deadline_s
    while sent < PUSH_LIMIT and time.monotonic() < deadline:
        try:
            sent += sock.send(CHUNK)
            idle_since = None
        except BlockingIOError:
            idle_since = idle_since or time.monotonic()
            if time.monotonic() - idle_since > 1.0:
                return sent
            time.sleep(0.02)
    raise AssertionError(f"the server kept reading: {sent} bytes pushed, never stuck")


@pytest.mark.timeout(90)
@pytest.mark.parametrize("model", ["select", "epoll"])
def test_a_blocking_send_lets_one_stuck_reader_stall_every_client(
    server_factory: StartServer, model: str
) -> None:
    server = server_factory(model, "--blocking-send")
    server.wait_for_log(r"BREAK-IT --blocking-send")
    stuck = connect(server.port)
    push_until_stuck(stuck)
    other = connect(server.port)  # the kernel still completes the handshake ...
    other.sendall(b"hello")
    try:
        assert not readable_within(other, 2.0), "... but the server is stuck in sendall()"
        stuck.close()  # the unread echo turns into a reset: sendall() fails, the loop runs on
        assert recv_exactly(other, 5, timeout=10) == b"hello"
    finally:
        other.close()
    assert server.alive()


@pytest.mark.timeout(90)
@pytest.mark.parametrize("model", ["select", "epoll"])
def test_non_blocking_sends_serve_others_beside_a_stuck_reader(
    server_factory: StartServer, model: str
) -> None:
    server = server_factory(model)
    stuck = connect(server.port)
    try:
        push_until_stuck(stuck)
        other = connect(server.port)
        other.sendall(b"hello")
        assert recv_exactly(other, 5, timeout=5) == b"hello"
        other.close()
    finally:
        stuck.close()


@pytest.mark.timeout(120)
def test_without_the_fd_cap_select_fails_past_fd_setsize(no_fd_cap_select: ServerProcess) -> None:
    server = no_fd_cap_select
    assert server.limit > 1024, "no cap: RLIMIT_NOFILE is the only ceiling"
    socks: list[socket.socket] = []
    try:
        for _ in range(1100):
            if not server.alive():
                break
            try:
                socks.append(connect(server.port, timeout=5))
            except (ConnectionRefusedError, ConnectionResetError):
                break  # the server is gone
        assert server.proc.wait(30) == 70, "the server dies of it (EX_SOFTWARE)"
    finally:
        for sock in socks:
            sock.close()
    lines = server.log_lines()
    failed = [line for line in lines if "filedescriptor out of range in select()" in line]
    assert len(failed) == 1, lines[-5:]
    highest = re.search(r"highest fd (\d+)", failed[0])
    assert highest and int(highest[1]) >= 1024, failed[0]
    assert not [line for line in lines if "Traceback" in line], "one line, not a traceback"
