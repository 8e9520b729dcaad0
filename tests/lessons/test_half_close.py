"""The split client's writer must half-close: close() there leaves the reader hanging.

After fork() the reader holds a descriptor to the same socket, so the writer's close() sends
no FIN: the server never sees EOF, never closes, and the reader waits for an EOF that never
comes. shutdown(SHUT_WR) sends the FIN whatever the count of descriptors.
"""

from __future__ import annotations

from collections.abc import Callable

from tests.host.support import ClientResult, ServerProcess

Client = Callable[..., ClientResult]


def test_a_writer_that_closes_hangs_the_client_until_its_timeout(
    fork_server: ServerProcess, client: Client
) -> None:
    result = client(fork_server.port, "--bytes", "10000", "--no-half-close", "--timeout", "2")
    assert result.returncode == 1, result
    # Every byte came back; the EOF never did, so the reader gave up.
    expected = "FAILED: no EOF for 2 s: all 10000 bytes came back, the connection stayed open"
    assert expected in result.stderr, result
    assert "FAILED: 0/1 connections" in result.stdout, result


def test_a_writer_that_half_closes_ends_the_conversation(
    fork_server: ServerProcess, client: Client
) -> None:
    result = client(fork_server.port, "--bytes", "10000", "--timeout", "2", "--json")
    assert result.returncode == 0, result
    report = result.report()
    assert (report["ok"], report["failed"]) == (1, 0), result
    assert report["bytes_sent"] == report["bytes_received"] == 10000
    fork_server.wait_for_log(r"client disconnected\.\.\. \S+ \(10000 bytes echoed\)")
