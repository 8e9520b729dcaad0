"""100 clients at once, seen in the containers' process tables.

The fork server is PID 1 of its container: while the clients are connected it has one child
per client, and it holds none of their sockets itself; the select server holds every
connection in its one process and has no child at all. Once the clients leave, every child
has been reaped: no children, no zombies.

Children serving the container's own health probe (a connection from 127.0.0.1 every few
seconds) are told apart by their peer and left out of the counts.
"""

from __future__ import annotations

import pytest

from tests.docker.conftest import SERVERS
from tests.docker.support import ProcessTable, Server, connected_clients, poll, process_table

# The demo's own client containers must be done, or their connections would count as ours.
pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("scripted_clients_done")]

CLIENTS = 100
SERVER_PID = 1
SETTLE_SECONDS = 20.0


def children_serving_clients(table: ProcessTable) -> dict[int, int]:
    """{child pid: its starttime} for the server's children that hold a client connection."""
    return {
        pid: table.stats[pid].starttime
        for pid in table.children_of(SERVER_PID)
        if pid in table.stats and table.served_connections(pid)
    }


def listens(table: ProcessTable, pid: int, port: int) -> bool:
    return any(row.state == "LISTEN" and row.local_port == port for row in table.tcp_of(pid))


def all_gone(table: ProcessTable) -> bool:
    return (
        not table.children_of(SERVER_PID)
        and not table.zombies()
        and not table.served_connections(SERVER_PID)
    )


def idle(server: Server) -> None:
    """Wait until the server serves no one: a client of an earlier test may still be leaving
    (CI once counted 101 connections for our 100)."""
    table = poll(lambda: process_table(server.container), all_gone, SETTLE_SECONDS)
    if not all_gone(table):
        peers = sorted(
            f"{row.remote_ip}:{row.remote_port}"
            for pid in table.stats
            for row in table.served_connections(pid)
        )
        pytest.fail(f"{server.service} still serves clients from before this test: {peers}")


def test_fork_server_has_one_child_per_client_and_reaps_them_all(fork_server: Server) -> None:
    idle(fork_server)
    with connected_clients(fork_server.port, CLIENTS, host=fork_server.host):
        table = process_table(fork_server.container)
        assert listens(table, SERVER_PID, SERVERS[fork_server.service]), "PID 1 is not the server"
        ours = children_serving_clients(table)
        assert len(ours) == CLIENTS, f"{len(ours)} children serve the {CLIENTS} clients"
        for pid in ours:
            assert table.stats[pid].ppid == SERVER_PID
            assert table.stats[pid].state != "Z", f"child {pid} died while its client is connected"
            assert len(table.served_connections(pid)) == 1, f"child {pid} serves more than one"
        inodes = {row.inode for pid in ours for row in table.served_connections(pid)}
        assert len(inodes) == CLIENTS, "two children share one connection"
        # The parent closed its copy of every accepted socket after fork().
        assert table.served_connections(SERVER_PID) == []

    table = poll(lambda: process_table(fork_server.container), all_gone, SETTLE_SECONDS)
    assert table.children_of(SERVER_PID) == set(), "children left after every client closed"
    assert table.zombies() == set(), "zombies left after every client closed"
    left = {pid for pid, start in ours.items() if pid in table.stats}
    assert not {pid for pid in left if table.stats[pid].starttime == ours[pid]}, "not reaped"


def test_select_server_holds_every_client_in_one_process(select_server: Server) -> None:
    idle(select_server)
    with connected_clients(select_server.port, CLIENTS, host=select_server.host):
        table = process_table(select_server.container)
        assert listens(table, SERVER_PID, SERVERS[select_server.service]), "PID 1 is not the server"
        assert table.children_of(SERVER_PID) == set(), "the select server forked"
        assert len(table.served_connections(SERVER_PID)) == CLIENTS

    table = poll(lambda: process_table(select_server.container), all_gone, SETTLE_SECONDS)
    assert table.children_of(SERVER_PID) == set()
    assert table.zombies() == set()
    assert table.served_connections(SERVER_PID) == [], "connections left open after the clients"
