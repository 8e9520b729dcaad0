"""Slow consumers: peers that read one byte a second and peers that never read.

They fill every buffer on their path and then stay. Normal clients keep being served meanwhile
(their latency is printed beside a baseline taken without the slow peers), and the server's
memory stays bounded: the select/epoll servers keep at most BUFFER_LIMIT (256 KiB) per client,
so their RSS may grow by at most SLOW x 256 KiB + SLACK_MIB; a fork server's child keeps one
64 KiB buffer, so each slow peer's child may hold at most CHILD_PRIVATE_MIB of its own memory.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from probe import procfs
from probe.footprint import private_kib
from probe.peers import SlowPeers
from probe.sessions import MIB, payload_of, run_sessions
from server.multiplexing import BUFFER_LIMIT
from tests.faults.conftest import wait_idle
from tests.faults.figures import mib, record
from tests.host.support import ServerProcess

StartServer = Callable[..., ServerProcess]

TRICKLE = 4  # read one byte a second
STALLED = 4  # never read
SLOW = TRICKLE + STALLED
PUSH_LIMIT = 64 * MIB  # per slow peer: an unbounded server would swallow all of it
SLACK_MIB = 4
CHILD_PRIVATE_MIB = 4
NORMAL_SESSIONS = 300
NORMAL_SIZE = 16 * 1024


def slow_children(server: ServerProcess) -> list[int]:
    return procfs.children_of(server.pid)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("model", ["fork", "select", "epoll"])
def test_slow_consumers_stall_only_themselves_and_memory_stays_bounded(
    model: str, server_factory: StartServer
) -> None:
    server = server_factory(model)
    sizes = [NORMAL_SIZE] * NORMAL_SESSIONS
    run_sessions(server.port, sizes[:50], 10, 30, first_index=10_000)  # warm-up
    baseline = run_sessions(server.port, sizes, 10, 60)
    assert baseline.ok == NORMAL_SESSIONS, baseline.summary()
    idle, _ = wait_idle(server)

    with SlowPeers(server.port, TRICKLE, STALLED, PUSH_LIMIT) as slow:
        slow.push_until_stuck()
        slow.start()
        loaded = run_sessions(server.port, sizes, 10, 60, first_index=NORMAL_SESSIONS)
        time.sleep(2.5)  # the tricklers read a few bytes more
        rss_kib = procfs.rss_kb(server.pid) or 0
        children = slow_children(server)
        child_private = [private_kib(kid) for kid in children]
        stuck = [slow.pushed[i] for i in range(SLOW)]
        trickled = [bytes(t) for t in slow.trickled]
    after, recover_s = wait_idle(server)

    growth_kib = rss_kib - idle.rss_kib
    bound_kib = SLOW * BUFFER_LIMIT // 1024 + SLACK_MIB * 1024
    record(
        "slow consumers",
        model,
        trickle=TRICKLE,
        stalled=STALLED,
        pushed_mib_each=[round(n / MIB, 1) for n in stuck],
        normal_sessions=loaded.ok,
        normal_failed=loaded.failed,
        bytes=loaded.bytes_received,
        baseline_p50_ms=round(baseline.percentile_ms(0.5), 2),
        baseline_p99_ms=round(baseline.percentile_ms(0.99), 2),
        p50_ms=round(loaded.percentile_ms(0.5), 2),
        p99_ms=round(loaded.percentile_ms(0.99), 2),
        rss_growth_mib=mib(growth_kib),
        rss_bound_mib=mib(bound_kib) if model != "fork" else None,
        child_private_mib=[mib(k) for k in child_private] if model == "fork" else None,
        leaks=after.leaks_against(idle, SLACK_MIB * 1024),
        zombies=after.zombies,
        recover_s=round(recover_s, 2),
    )

    assert loaded.ok == NORMAL_SESSIONS and loaded.failed == 0, loaded.summary()
    assert loaded.percentile_ms(0.99) < 2000, "normal clients kept a usable latency"
    assert all(n < PUSH_LIMIT for n in stuck), "the server stopped taking from slow peers"
    for i, got in enumerate(trickled):
        assert 2 <= len(got) <= 30, f"trickler {i} read {len(got)} bytes"
        assert got == bytes(payload_of(i, len(got))), "the trickle is the echo, in order"
    if model == "fork":
        assert len(children) == SLOW, "one child per slow peer, blocked in its own send()"
        assert max(child_private) < CHILD_PRIVATE_MIB * 1024, child_private
        assert growth_kib < SLACK_MIB * 1024, "the parent holds no client data"
    else:
        assert growth_kib <= bound_kib, f"RSS grew {mib(growth_kib)} MiB, bound {bound_kib}"
    assert after.leaks_against(idle, SLACK_MIB * 1024) == {
        "fds": 0,
        "processes": 0,
        "zombies": 0,
        "rss_kib_over_slack": 0,
    }
