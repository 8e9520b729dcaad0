"""Each fork-server switch makes one warning of the notes come true; the normal server does not.

The symptom test runs the switch; its twin runs the correct server and asserts the fix. The
kernel is the witness: process states, socket inodes and TCP states from /proc.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import time
from collections.abc import Callable

import pytest

from probe import procfs
from probe.sockets import connect, recv_until_eof, roundtrip
from tests.host.support import ServerProcess, payload_for, wait_until

StartServer = Callable[..., ServerProcess]


def serve_clients(server: ServerProcess, count: int) -> tuple[list[socket.socket], list[int]]:
    """`count` clients, each echoed once and still connected; and the children serving them."""
    socks = [connect(server.port) for _ in range(count)]
    for i, sock in enumerate(socks):
        assert roundtrip(sock, payload_for(i, 100)) == payload_for(i, 100)
    return socks, server.wait_children(count)


def kill_orphan(pid: int) -> None:
    """End a child that outlived its parent; whoever adopted it reaps it."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    wait_until(lambda: procfs.has_exited(pid), 5, what=f"orphan {pid} to die")


# ---------------------------------------------------------------- zombies


def test_without_waitpid_exited_children_stay_zombies(server_factory: StartServer) -> None:
    server = server_factory("fork", "--no-reap")
    server.wait_for_log(r"BREAK-IT --no-reap")
    socks, kids = serve_clients(server, 3)
    for sock in socks:
        sock.close()
    wait_until(
        lambda: procfs.zombies_among(kids) == kids, 5, what="every exited child to be a zombie"
    )
    time.sleep(0.5)  # a reaping server would have collected them within milliseconds
    assert procfs.zombies_among(kids) == kids, "nobody waits for them: they stay zombies"
    assert server.children() == kids, "a zombie still counts as its parent's child"
    assert not [line for line in server.log_lines() if "removed proc id" in line]


def test_with_waitpid_no_child_is_left(fork_server: ServerProcess) -> None:
    socks, kids = serve_clients(fork_server, 3)
    starts = {k: procfs.stat(k).starttime for k in kids}  # type: ignore[union-attr]
    for sock in socks:
        sock.close()
    fork_server.wait_children(0, timeout=5)
    assert procfs.zombies_among(kids) == []
    assert not [k for k in kids if procfs.exists(k, starts[k])], "every child was reaped"


# ---------------------------------------------------------------- close(listener) in the child


def test_a_child_holding_the_listener_keeps_the_port_open_after_the_parent_dies(
    server_factory: StartServer,
) -> None:
    server = server_factory("fork", "--child-keeps-listener")
    server.wait_for_log(r"BREAK-IT --child-keeps-listener")
    [sock], [child] = serve_clients(server, 1)
    listening = procfs.listening_inodes(server.port)
    assert listening <= procfs.socket_inodes(child), "the child's copy of the listener"
    server.proc.kill()
    server.proc.wait(5)
    try:
        # The parent's descriptor is gone, the child's keeps the socket's count above zero.
        assert procfs.listening_inodes(server.port) == listening
        late = connect(server.port)  # the kernel still completes handshakes on that port...
        wait_until(
            lambda: procfs.listening_sockets(server.port)[0].rx_queue == 1,
            5,
            what="the new connection in the accept queue",
        )  # ...into a backlog that nobody will ever accept from
        assert roundtrip(sock, b"still served") == b"still served"
        late.close()
    finally:
        kill_orphan(child)
    assert procfs.listening_inodes(server.port) == set(), "the last descriptor closed it"
    sock.close()


def test_once_the_parent_dies_the_port_refuses_connections(fork_server: ServerProcess) -> None:
    [sock], [child] = serve_clients(fork_server, 1)
    listening = procfs.listening_inodes(fork_server.port)
    assert not listening & procfs.socket_inodes(child), "the child closed its copy"
    fork_server.proc.kill()
    fork_server.proc.wait(5)
    try:
        assert procfs.listening_sockets(fork_server.port) == []
        with pytest.raises(ConnectionRefusedError):
            connect(fork_server.port, timeout=5)
        # Only the listener went away: the orphaned child still serves its client.
        assert roundtrip(sock, b"still served") == b"still served"
    finally:
        kill_orphan(child)
    sock.close()


# ---------------------------------------------------------------- close(client) in the parent


def test_a_parent_that_keeps_client_sockets_withholds_eof_and_leaks(
    server_factory: StartServer,
) -> None:
    server = server_factory("fork", "--parent-keeps-client")
    server.wait_for_log(r"BREAK-IT --parent-keeps-client")
    before = len(procfs.socket_fds(server.pid))
    socks: list[socket.socket] = []
    for count in (1, 2, 3):
        socks.append(connect(server.port))
        assert roundtrip(socks[-1], b"hello") == b"hello"
        wait_until(
            lambda n=count: len(procfs.socket_fds(server.pid)) == before + n,
            5,
            what=f"the parent to hold {count} client sockets",
        )  # one more descriptor per connection
    server.wait_children(3)
    assert procfs.accepted_inodes(server.port) <= procfs.socket_inodes(server.pid)

    mark = server.mark()
    socks[0].shutdown(socket.SHUT_WR)  # this client is done: its child echoes the rest, exits
    server.wait_for_log(r"removed proc id: \d+ \(exit 0\)", start=mark)
    socks[0].settimeout(1.0)
    with pytest.raises(TimeoutError):
        socks[0].recv(1)  # no EOF: the parent's copy keeps the connection open
    assert len(procfs.socket_fds(server.pid)) == before + 3, "still held after the child left"
    for sock in socks:
        sock.close()


def test_the_parent_closes_its_copy_so_the_client_sees_eof(fork_server: ServerProcess) -> None:
    before = len(procfs.socket_fds(fork_server.pid))
    socks, _ = serve_clients(fork_server, 3)
    # The child may echo before the parent, just back from fork(), has closed its copy.
    wait_until(
        lambda: len(procfs.socket_fds(fork_server.pid)) == before,
        5,
        what="the parent to close its copy of every client",
    )
    assert not procfs.accepted_inodes(fork_server.port) & procfs.socket_inodes(fork_server.pid)
    socks[0].shutdown(socket.SHUT_WR)
    assert recv_until_eof(socks[0], timeout=5) == b"", "EOF once the child closes"
    for sock in socks:
        sock.close()


# ---------------------------------------------------------------- waitpid in a loop

BURST = 200  # children that exit together: their SIGCHLDs merge into a few


def close_together(server: ServerProcess) -> list[int]:
    """BURST clients served, then closed at once; the children that served them."""
    socks, kids = serve_clients(server, BURST)
    for sock in socks:
        sock.close()
    wait_until(
        lambda: all(not procfs.is_alive(k) or k in procfs.zombies_among([k]) for k in kids),
        30,
        what=f"all {BURST} children to exit",
    )
    time.sleep(0.5)  # a reaping server would have collected them within milliseconds
    return kids


@pytest.mark.timeout(120)
def test_one_waitpid_per_sigchld_leaves_zombies_when_many_exit_at_once(
    server_factory: StartServer,
) -> None:
    server = server_factory("fork", "--single-waitpid")
    server.wait_for_log(r"BREAK-IT --single-waitpid")
    kids = close_together(server)
    zombies = procfs.zombies_among(kids)
    assert zombies, "one signal stood for several exits: each unwaited exit stays a zombie"
    removed = [line for line in server.log_lines() if "removed proc id" in line]
    assert len(removed) == BURST - len(zombies), "one exit reaped per signal handled"


@pytest.mark.timeout(120)
def test_waitpid_in_a_loop_reaps_every_child_of_a_burst(fork_server: ServerProcess) -> None:
    kids = close_together(fork_server)
    assert procfs.zombies_among(kids) == []
    fork_server.wait_children(0, timeout=5)
