"""SIGTERM and SIGINT with clients connected: exit 0 within 2 s, nothing outlives the server."""

from __future__ import annotations

import signal
import subprocess

import pytest

from probe import procfs
from probe.sockets import connect, roundtrip, sees_close
from tests.host.support import ServerProcess, payload_for

SHUTDOWN_SECONDS = 2.0  # the contract
SLACK_SECONDS = 1.0  # this test's own scheduling on a busy 2-core machine


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_with_clients_connected_ends_everything_cleanly(
    server: ServerProcess, signum: signal.Signals
) -> None:
    socks = [connect(server.port) for _ in range(5)]
    for i, sock in enumerate(socks):
        assert roundtrip(sock, payload_for(i, 100)) == payload_for(i, 100)
    kids = server.wait_children(5) if server.model == "fork" else []
    starts = {k: procfs.stat(k).starttime for k in kids}  # type: ignore[union-attr]
    listening = procfs.listening_inodes(server.port)
    assert listening

    server.proc.send_signal(signum)
    try:
        code = server.proc.wait(SHUTDOWN_SECONDS + SLACK_SECONDS)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the {server.model} server still runs {SHUTDOWN_SECONDS} s after {signum!r}")
    assert code == 0
    server.wait_for_log(rf"shutting down on {signum.name}")
    server.wait_for_log(r"\bshut down$")

    survivors = [k for k in kids if procfs.exists(k, starts[k])]
    assert survivors == [], "no child outlives the server (not even as a zombie)"
    assert procfs.listening_inodes(server.port) == set(), "the port is closed"
    for i, sock in enumerate(socks):
        assert sees_close(sock, timeout=2), f"client {i} sees its connection end"
        sock.close()
