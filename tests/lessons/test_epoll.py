"""select() can watch descriptors below FD_SETSIZE (1024) only; epoll has no such ceiling.

The same clients against both: past about a thousand, the select server leaves the rest in
the listen backlog, while the epoll server holds every one of them in its single process.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

import pytest

from probe import procfs
from probe.compare import first_difference
from probe.sockets import connect, echo, recv_exactly
from tests.host.support import ClientResult, ServerProcess, payload_for, wait_until

StartServer = Callable[..., ServerProcess]
Client = Callable[..., ClientResult]
MIB = 1024 * 1024


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(["--bytes", "0"], id="empty"),
        pytest.param(["--bytes", "1"], id="one-byte"),
        pytest.param(["--bytes", "20000", "--chunk-size", "7"], id="many-small-writes"),
        pytest.param(["--bytes", str(4 * MIB), "--connections", "20"], id="20x4-MiB"),
    ],
)
def test_the_epoll_server_echoes_exactly(
    server_factory: StartServer, client: Client, args: list[str]
) -> None:
    server = server_factory("epoll")
    result = client(server.port, *args, "--json", "--timeout", "20")
    assert result.returncode == 0, result
    report = result.report()
    assert report["failed"] == 0, result
    assert report["bytes_sent"] == report["bytes_received"], result


def test_the_epoll_server_echoes_every_byte_value_one_write_at_a_time(
    server_factory: StartServer,
) -> None:
    server = server_factory("epoll")
    chunks = [bytes([b]) for b in range(256)] * 2
    sent, received = echo(server.port, chunks, timeout=30, pause_every=64)
    assert received == sent, first_difference(sent, received)


def hold_clients(server: ServerProcess, count: int) -> list[socket.socket]:
    """`count` connections, each with a tagged payload sent before any echo is read."""
    socks: list[socket.socket] = []
    try:
        for i in range(count):
            socks.append(connect(server.port))
            socks[-1].sendall(payload_for(i, 64))
    except BaseException:
        for sock in socks:
            sock.close()
        raise
    return socks


def assert_one_process_holds(server: ServerProcess, count: int) -> None:
    wait_until(
        lambda: len(procfs.accepted_inodes(server.port)) == count,
        30,
        what=f"{count} accepted connections",
    )
    assert procfs.accepted_inodes(server.port) <= procfs.socket_inodes(server.pid)
    assert procfs.children_of(server.pid) == []
    assert procfs.thread_count(server.pid) == 1


def assert_echoed(socks: list[socket.socket]) -> None:
    for i, sock in enumerate(socks):
        got, sent = recv_exactly(sock, 64, timeout=10), payload_for(i, 64)
        assert got == sent, f"client {i}: {first_difference(sent, got)}"


@pytest.mark.timeout(120)
@pytest.mark.parametrize("model", ["select", "epoll"])
def test_past_fd_setsize_select_leaves_clients_waiting_and_epoll_serves_them_all(
    server_factory: StartServer, many_fds: int, model: str
) -> None:
    count = 1100
    server = server_factory(model)
    socks = hold_clients(server, count)
    try:
        served = min(count, server.limit)
        if model == "select":
            assert served < 1024 < count, "select() stops below FD_SETSIZE"
            server.wait_for_log(rf"at the limit of {served} clients")
        else:
            assert served == count
        assert_one_process_holds(server, served)
        # The backlog is first in, first out: the first `served` clients are the ones in.
        assert_echoed(socks[:served])
        time.sleep(0.3)
        for sock in socks[served:]:
            # No select() here: this test's own descriptors are past FD_SETSIZE too.
            sock.setblocking(False)
            with pytest.raises(BlockingIOError):
                sock.recv(1)  # no echo: nobody accepted it
    finally:
        for sock in socks:
            sock.close()


@pytest.mark.timeout(180)
def test_the_epoll_server_holds_10000_clients_in_one_process(
    server_factory: StartServer, many_fds: int
) -> None:
    count = 10_000
    if many_fds < count + 256:
        pytest.skip(f"RLIMIT_NOFILE hard limit {many_fds} is below {count} clients")
    server = server_factory("epoll")
    assert server.limit >= count
    socks = hold_clients(server, count)
    try:
        assert_one_process_holds(server, count)
        assert_echoed(socks)
    finally:
        for sock in socks:
            sock.close()
    wait_until(
        lambda: not procfs.accepted_inodes(server.port), 30, what="every client socket closed"
    )
    assert server.alive()
