"""Abrupt peers: a reset mid-stream, a peer that vanishes after half-closing, a silent peer.

None of them disturbs the normal clients served meanwhile, and each ends as the notes say:
the fork server's child for a reset exits 1 (`client lost`), for a clean EOF 0, and is reaped
either way; the multiplexing servers drop the socket and log it. Nothing is left behind.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Callable

import pytest

from probe import procfs
from probe.footprint import footprint
from probe.peers import reset_mid_stream, vanish_after_half_close
from probe.sessions import BackgroundLoad
from probe.sockets import connect, peer_of, recv_exactly
from tests.faults.conftest import reaped_children, server_holds_clients, wait_idle
from tests.faults.figures import record
from tests.host.support import ServerProcess, wait_until

StartServer = Callable[..., ServerProcess]
EACH = 5  # peers of each kind


def child_for(server: ServerProcess, peer: str) -> int:
    m = server.wait_for_log(rf"new client connected\.\.\. {re.escape(peer)} -> child (\d+)")
    return int(m[1])


@pytest.mark.timeout(90)
@pytest.mark.parametrize("model", ["fork", "select", "epoll"])
def test_abrupt_peers_disturb_no_one_and_leave_nothing(
    model: str, server_factory: StartServer
) -> None:
    server = server_factory(model)
    idle = footprint(server.pid)
    mark = server.mark()
    with BackgroundLoad(server.port) as normal:
        normal.wait_for_sessions(20)
        silent = [connect(server.port) for _ in range(EACH)]
        silent_peers = [peer_of(sock) for sock in silent]
        resets = [reset_mid_stream(server.port, 100 + i) for i in range(EACH)]
        vanished = [vanish_after_half_close(server.port, 200 + i) for i in range(EACH)]
        # The silent peers are still served: each has its own child, or its own socket.
        for sock in silent:
            sock.settimeout(5)
            sock.sendall(b"still there?")
            assert recv_exactly(sock, 12) == b"still there?"
        for sock in silent:
            sock.close()
        last_event = time.monotonic()
        normal.wait_for_sessions(normal.result.sessions + 20)  # service goes on after that
    wait_idle(server)
    recover_s = time.monotonic() - last_event
    after = footprint(server.pid)

    outcomes: dict[str, str] = {}
    if model == "fork":
        children = {p: child_for(server, p) for p in [*silent_peers, *resets, *vanished]}
        wait_until(
            lambda: set(children.values()) <= set(reaped_children(server, mark)),
            10,
            what="every abrupt peer's child reaped",
        )
        reaped = reaped_children(server, mark)
        outcomes = {peer: reaped[pid] for peer, pid in children.items()}
    else:
        for peer in [*silent_peers, *resets, *vanished]:
            server.wait_for_log(rf"client (?:lost|disconnected)\.\.\. {re.escape(peer)} ", 10)
    lines = server.log_lines()[mark:]
    result = normal.result
    record(
        "abrupt peers",
        model,
        resets=EACH,
        vanished=EACH,
        silent=EACH,
        normal_sessions=result.ok,
        normal_failed=result.failed,
        bytes=result.bytes_received,
        p50_ms=round(result.percentile_ms(0.5), 2),
        p99_ms=round(result.percentile_ms(0.99), 2),
        child_exits={
            kind: dict(Counter(outcomes[p] for p in peers))
            for kind, peers in (("reset", resets), ("vanished", vanished), ("silent", silent_peers))
        }
        if outcomes
        else None,
        leaks=after.leaks_against(idle, 4096),
        zombies=after.zombies,
        recover_s=round(recover_s, 2),
    )

    assert result.failed == 0 and result.unfinished == 0, result.summary()
    assert result.ok >= 20
    assert server.alive()
    assert after.leaks_against(idle, 4096) == {
        "fds": 0,
        "processes": 0,
        "zombies": 0,
        "rss_kib_over_slack": 0,
    }
    assert server_holds_clients(server) == 0
    assert procfs.children_of(server.pid) == []

    def said(peer: str) -> str:
        ended = re.compile(rf"client (?:lost|disconnected)\.\.\. {re.escape(peer)} ")
        found = [line for line in lines if ended.search(line)]
        assert found, f"nothing logged for {peer}"
        return found[-1]

    for peer in resets:
        assert "client lost..." in said(peer), "a reset is a lost connection"
        if model == "fork":
            assert outcomes[peer] == "exit 1", f"the child for reset {peer}"
    for peer in silent_peers:
        assert "client disconnected..." in said(peer)
        if model == "fork":
            assert outcomes[peer] == "exit 0"
    for peer in vanished:
        # Its FIN came first: the server saw EOF (exit 0), unless its echo met the RST that
        # closing with unread data sends, before it was done writing (exit 1). Either way the
        # log and the status agree.
        line = said(peer)
        if model == "fork":
            expected = "exit 0" if "client disconnected..." in line else "exit 1"
            assert outcomes[peer] == expected, line
