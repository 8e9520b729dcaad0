"""The fork server's break-it switches make the kernel show each mistake the notes warn of.

These prove the /proc checks of test_fork_server.py can fail: the same reading that finds
nothing on the correct server finds the zombie, the leaked listener, the leaked client.
"""

from __future__ import annotations

import socket
from collections.abc import Callable

from tests import procfs
from tests.host.support import ServerProcess, connect, echo, roundtrip, sees_close, wait_until

StartServer = Callable[..., ServerProcess]


def test_no_reap_leaves_zombies(server_factory: StartServer) -> None:
    server = server_factory("fork", "--no-reap")
    for i in range(3):
        sent, got = echo(server.port, [b"x" * (i + 1)], timeout=10)
        assert got == sent

    def three_zombies() -> list[int]:
        zombies = procfs.zombies_among(server.children())
        return zombies if len(zombies) == 3 else []

    wait_until(three_zombies, 5, what="3 zombie children")
    server.wait_for_log(r"BREAK-IT --no-reap")
    assert not [line for line in server.log_lines() if "removed proc id" in line]


def test_child_keeps_listener_shows_the_listening_inode_in_children(
    server_factory: StartServer,
) -> None:
    server = server_factory("fork", "--child-keeps-listener")
    sock = connect(server.port)
    assert roundtrip(sock, b"hello") == b"hello"
    [kid] = server.wait_children(1)
    listening = procfs.listening_inodes(server.port)
    assert listening & procfs.socket_inodes(kid), "the child holds the listening socket"
    sock.close()


def test_parent_keeps_client_shows_client_inodes_in_the_parent(
    server_factory: StartServer,
) -> None:
    server = server_factory("fork", "--parent-keeps-client")
    sock = connect(server.port)
    assert roundtrip(sock, b"hello") == b"hello"
    server.wait_children(1)
    accepted = procfs.accepted_inodes(server.port)
    assert accepted & procfs.socket_inodes(server.pid), "the parent holds the client socket"
    sock.shutdown(socket.SHUT_WR)  # the child echoes nothing more, closes and exits ...
    server.wait_children(0)
    assert not sees_close(sock, timeout=1), "... and the parent's copy keeps the client open"
    sock.close()
