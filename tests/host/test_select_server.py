"""The select server, as the kernel sees it: one process, every socket, never past FD_SETSIZE."""

from __future__ import annotations

import contextlib
import selectors
import socket
import subprocess
import time
from collections.abc import Callable

import pytest

from probe import procfs
from probe.sockets import connect, roundtrip
from tests.host.support import ServerProcess, payload_for, wait_until

StartServer = Callable[..., ServerProcess]
FD_SETSIZE = 1024


def test_one_process_holds_the_listener_and_every_client_socket(
    select_server: ServerProcess,
) -> None:
    socks = [connect(select_server.port) for _ in range(5)]
    for i, sock in enumerate(socks):
        assert roundtrip(sock, payload_for(i, 50)) == payload_for(i, 50)
    wait_until(lambda: len(procfs.accepted_inodes(select_server.port)) == 5, 5, what="5 clients")
    held = procfs.socket_inodes(select_server.pid)
    assert procfs.listening_inodes(select_server.port) <= held
    assert procfs.accepted_inodes(select_server.port) <= held
    assert procfs.children_of(select_server.pid) == []
    assert procfs.thread_count(select_server.pid) == 1
    for sock in socks:
        sock.close()
    wait_until(
        lambda: (
            not procfs.accepted_inodes(select_server.port) & procfs.socket_inodes(select_server.pid)
        ),
        5,
        what="the server to close the client sockets",
    )


def test_max_clients_past_fd_setsize_is_lowered(server_factory: StartServer) -> None:
    server = server_factory("select", "--max-clients", "5000")
    assert server.limit < FD_SETSIZE
    server.wait_for_log(r"--max-clients 5000 lowered to \d+")


class Conversation:
    """One raw client: sends a tagged payload once, then waits for its echo or a close."""

    def __init__(self, index: int, sock: socket.socket) -> None:
        self.index = index
        self.sock = sock
        self.payload = payload_for(index, 64)
        self.got = b""
        self.state = "pending"  # -> served | refused

    def on_readable(self) -> None:
        try:
            data = self.sock.recv(4096)
        except (ConnectionResetError, BrokenPipeError):
            data = b""
        if not data:
            self.state = "refused"
            return
        self.got += data
        if len(self.got) >= len(self.payload):
            assert self.got == self.payload, f"client {self.index} got someone else's bytes"
            self.state = "served"


def drive(convs: list[Conversation], until: Callable[[], bool], quiet: float, limit: float) -> None:
    """Deliver readable events until `until()` holds, nothing happened for `quiet` s, or `limit`."""
    selector = selectors.DefaultSelector()  # epoll: no FD_SETSIZE ceiling in the test itself
    for c in convs:
        if c.state == "pending":
            selector.register(c.sock, selectors.EVENT_READ, c)
    start = last = time.monotonic()
    while selector.get_map() and not until():
        now = time.monotonic()
        if now - last > quiet or now - start > limit:
            break
        for key, _ in selector.select(0.1):
            c = key.data
            c.on_readable()
            last = time.monotonic()
            if c.state != "pending":
                selector.unregister(c.sock)
    selector.close()


def count(convs: list[Conversation], state: str) -> int:
    return sum(c.state == state for c in convs)


@pytest.mark.timeout(120)
def test_more_clients_than_fd_setsize_do_not_crash_it(
    many_fds: int, server_factory: StartServer
) -> None:
    # many_fds first: the server inherits the high RLIMIT_NOFILE, so nothing but its own cap
    # keeps it from accepting descriptors select() cannot watch.
    server = server_factory("select")
    assert server.limit < FD_SETSIZE
    total = max(1100, server.limit + 100)
    assert many_fds > total + 64, "the test process itself needs a descriptor per client"

    convs: list[Conversation] = []
    try:
        for i in range(total):
            try:
                convs.append(Conversation(i, connect(server.port)))
                convs[-1].sock.sendall(convs[-1].payload)
            except (ConnectionError, TimeoutError) as error:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    server.proc.wait(2)  # a crashing server closes its sockets, then exits
                assert server.alive(), f"the server died at client {i}: {error}"
                raise
        drive(convs, lambda: count(convs, "served") >= server.limit, quiet=2.0, limit=30)
        # Let stragglers show up, if any (there should be none past the cap).
        drive(convs, lambda: False, quiet=0.5, limit=2)

        assert server.alive(), "the server survived more clients than select() can watch"
        served, refused = count(convs, "served"), count(convs, "refused")
        assert served == server.limit, f"served {served} at once, the cap is {server.limit}"
        assert served + refused <= total
        fds = procfs.socket_fds(server.pid)
        assert max(fds) < FD_SETSIZE, f"the server holds socket fd {max(fds)}"
        assert procfs.children_of(server.pid) == []
        server.wait_for_log(rf"at the limit of {server.limit} clients")
        waiting = [c for c in convs if c.state == "pending"]
        backlog = procfs.listening_sockets(server.port)[0].rx_queue
        assert backlog == len(waiting), "the clients past the cap wait in the accept queue"

        # Earlier clients leave: every waiting client is now served (or explicitly refused).
        leaving = [c for c in convs if c.state == "served"][: len(waiting) + 50]
        for c in leaving:
            c.sock.close()
        drive(convs, lambda: count(convs, "pending") == 0, quiet=5.0, limit=30)
        assert [c.index for c in waiting if c.state == "pending"] == []
        assert server.alive()
        with connect(server.port) as late:
            assert roundtrip(late, b"after the crowd") == b"after the crowd"
    finally:
        for c in convs:
            c.sock.close()
    wait_until(lambda: not procfs.accepted_inodes(server.port), 15, what="all clients closed")
    assert server.alive()
