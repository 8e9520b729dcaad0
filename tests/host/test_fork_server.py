"""The forking server, as the kernel sees it: children, zombies, sockets, limits."""

from __future__ import annotations

import os
import re
import signal
from collections.abc import Callable

import pytest

from probe import procfs
from probe.sockets import connect, readable_within, recv_exactly, roundtrip, sees_close
from tests.host.support import ServerProcess, payload_for, wait_until

StartServer = Callable[..., ServerProcess]
NEW_CHILD = re.compile(r"new client connected\.\.\. (?P<peer>\S+) -> child (?P<pid>\d+)")
REMOVED = re.compile(r"removed proc id: (?P<pid>\d+) \((?P<how>[^)]*)")


def reaped(server: ServerProcess) -> dict[int, str]:
    return {int(m["pid"]): m["how"] for line in server.log_lines() if (m := REMOVED.search(line))}


def test_no_child_and_no_zombie_after_clients_disconnect(fork_server: ServerProcess) -> None:
    socks = [connect(fork_server.port) for _ in range(30)]
    for i, sock in enumerate(socks):
        assert roundtrip(sock, payload_for(i, 100)) == payload_for(i, 100)
    kids = fork_server.wait_children(30)
    starts = {k: procfs.stat(k).starttime for k in kids}  # type: ignore[union-attr]
    for sock in socks:  # all at once: many SIGCHLDs collapse into few
        sock.close()
    fork_server.wait_children(0, timeout=5)
    assert procfs.zombies_among(kids) == []
    assert not [k for k in kids if procfs.exists(k, starts[k])], "every child is gone"
    wait_until(lambda: len(reaped(fork_server)) == 30, 5, what="30 'removed proc id' lines")
    assert reaped(fork_server) == dict.fromkeys(kids, "exit 0")


def test_a_child_killed_with_sigkill_is_reaped(fork_server: ServerProcess) -> None:
    victim, bystander = connect(fork_server.port), connect(fork_server.port)
    assert roundtrip(victim, b"first") == b"first"
    assert roundtrip(bystander, b"second") == b"second"
    kids = fork_server.wait_children(2)
    peer = f"127.0.0.1:{victim.getsockname()[1]}"
    child = int(fork_server.wait_for_log(rf"new client connected\.\.\. {peer} -> child (\d+)")[1])
    assert child in kids
    start = procfs.stat(child).starttime  # type: ignore[union-attr]

    os.kill(child, signal.SIGKILL)
    fork_server.wait_for_log(rf"removed proc id: {child} \(killed by signal 9\b")
    wait_until(lambda: not procfs.exists(child, start), 5, what="the killed child to be reaped")
    assert fork_server.children() == [k for k in kids if k != child]
    assert sees_close(victim), "the killed child's client sees its connection end"
    assert roundtrip(bystander, b"still here") == b"still here"
    victim.close()
    bystander.close()


def test_children_hold_no_listening_socket_and_the_parent_no_client_socket(
    fork_server: ServerProcess,
) -> None:
    socks = [connect(fork_server.port) for _ in range(4)]
    for i, sock in enumerate(socks):
        assert roundtrip(sock, payload_for(i, 10)) == payload_for(i, 10)
    kids = fork_server.wait_children(4)
    listening = procfs.listening_inodes(fork_server.port)
    accepted = procfs.accepted_inodes(fork_server.port)
    assert len(listening) == 1
    assert len(accepted) == 4

    def parent_without_clients() -> set[int] | None:
        inodes = procfs.socket_inodes(fork_server.pid)
        return None if inodes & accepted else inodes

    # The child may echo before the parent, just back from fork(), has closed its copy.
    parent = wait_until(
        parent_without_clients, 5, what="the parent to close every client socket after fork()"
    )
    assert listening <= parent, "the parent holds the listening socket"
    held: list[int] = []
    for kid in kids:
        own = procfs.socket_inodes(kid)
        assert not own & listening, f"child {kid} closed its copy of the listening socket"
        assert len(own & accepted) == 1, f"child {kid} holds exactly one client socket"
        assert own == own & accepted, f"child {kid} holds no other socket: {own - accepted}"
        held.extend(own)
    assert sorted(held) == sorted(accepted), "each client socket is held by exactly one child"
    for sock in socks:
        sock.close()


@pytest.mark.timeout(60)
def test_a_failed_fork_closes_that_client_and_the_server_keeps_serving(
    server_factory: StartServer,
) -> None:
    # RLIMIT_NPROC does not bind root, so run the server as an unprivileged uid of its own
    # (no other process counts against it, not even a parallel run of this test). The limit
    # counts every task of the server's real uid: room for the server and two children.
    as_user: dict[str, int] = {}
    uid = os.getuid()
    if os.geteuid() == 0:
        first_try = 70000 + os.getpid() % 20000
        uid = next(u for u in range(first_try, 100000) if not procfs.tasks_of_uid(u))
        as_user = {"user": uid, "group": uid}
    limit = procfs.tasks_of_uid(uid) + 3
    server = server_factory("fork", rlimits={"RLIMIT_NPROC": (limit, limit)}, **as_user)
    assert procfs.tasks_of_uid(uid) == limit - 2, "another process of this uid took a slot"

    first, second = connect(server.port), connect(server.port)
    assert roundtrip(first, b"one") == b"one"
    assert roundtrip(second, b"two") == b"two"
    server.wait_children(2)

    mark = server.mark()
    refused = connect(server.port)
    failed = server.wait_for_log(
        r"fork failed \((?P<error>.+)\): closed client (?P<peer>\S+)$", start=mark
    )
    assert failed["peer"] == f"127.0.0.1:{refused.getsockname()[1]}"
    assert sees_close(refused), "the client whose fork failed is closed, not left hanging"
    assert server.alive()
    assert len(server.children()) == 2
    assert roundtrip(first, b"one again") == b"one again", "existing clients are unaffected"

    first.close()
    second.close()
    server.wait_children(0)
    later = connect(server.port)
    assert roundtrip(later, b"after the failure") == b"after the failure"
    assert len(server.children()) == 1
    later.close()
    refused.close()


def test_at_max_children_a_new_client_waits_in_the_backlog(server_factory: StartServer) -> None:
    server = server_factory("fork", "--max-children", "2")
    assert server.limit == 2
    first, second = connect(server.port), connect(server.port)
    assert roundtrip(first, b"one") == b"one"
    assert roundtrip(second, b"two") == b"two"
    server.wait_children(2)
    server.wait_for_log(r"at the limit of 2 children")

    waiting = connect(server.port)  # the kernel completes the handshake; nobody accepts it
    payload = payload_for(3, 5000)
    waiting.sendall(payload)

    def backlog() -> int:
        return procfs.listening_sockets(server.port)[0].rx_queue

    wait_until(lambda: backlog() == 1, 5, what="one connection in the accept queue")
    assert not readable_within(waiting, 0.3), "no child serves the third client yet"
    assert len(server.children()) == 2

    first.close()
    assert recv_exactly(waiting, len(payload), timeout=10) == payload
    wait_until(lambda: backlog() == 0, 5, what="an empty accept queue")
    assert len(server.wait_children(2)) == 2
    second.close()
    waiting.close()
