"""The fork server's break-it switches make the kernel show each mistake the notes warn of.

These prove the socket-inode checks of test_fork_server.py can fail: the same reading that
finds nothing on the correct server finds the leaked listener and the leaked client. (The
zombie of --no-reap is shown in tests/lessons/test_fork_switches.py.)
"""

from __future__ import annotations

import socket
from collections.abc import Callable

from probe import procfs
from probe.sockets import connect, roundtrip, sees_close
from tests.host.support import ServerProcess

StartServer = Callable[..., ServerProcess]


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
