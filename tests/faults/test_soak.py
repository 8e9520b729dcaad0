"""Soak: 10,000 echo sessions per server, 50 in flight; afterwards nothing is left behind.

Sizes (seeded, the same every run): 5% 0 B, 75% 1 B-4 KiB, 15% 4-64 KiB, 4% 64-512 KiB and
1% exactly 1 MiB: 282 MiB each way per server, every byte verified. The idle level is
measured after a 500-session warm-up with the same mix, so allocator growth that any load
causes once (heap, pymalloc arenas) is in the baseline; after the soak the server must be back
to it: the same descriptors and processes, no zombie, RSS within RSS_SLACK_MIB.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from probe.sessions import SIZE_MIX_TEXT, mixed_sizes, run_sessions
from tests.faults.conftest import forked_children, reaped_children, wait_idle
from tests.faults.figures import mib, record
from tests.host.support import ServerProcess, wait_until

StartServer = Callable[..., ServerProcess]

SESSIONS = 10_000
WARM_UP = 500
IN_FLIGHT = 50
DEADLINE_S = 90.0  # per server; a healthy run takes 3 s (select) to 25 s (fork) here
RSS_SLACK_MIB = 4


@pytest.mark.soak
@pytest.mark.timeout(240)
@pytest.mark.parametrize("model", ["fork", "select", "epoll"])
def test_10000_sessions_leave_no_leak_no_zombie_no_wrong_byte(
    model: str, server_factory: StartServer
) -> None:
    server = server_factory(model)
    warm = run_sessions(server.port, mixed_sizes(WARM_UP, seed=0), IN_FLIGHT, 30)
    assert warm.ok == WARM_UP, warm.summary()
    idle, _ = wait_idle(server)
    mark = server.mark()

    sizes = mixed_sizes(SESSIONS, seed=1)
    assert min(sizes) == 0 and max(sizes) == 1024 * 1024
    load = run_sessions(server.port, sizes, IN_FLIGHT, DEADLINE_S, first_index=WARM_UP)
    after, settle_s = wait_idle(server)
    leaks = after.leaks_against(idle, RSS_SLACK_MIB * 1024)
    forked = reaped = 0
    if model == "fork":
        forked = len(forked_children(server, mark))
        wait_until(
            lambda: len(reaped_children(server, mark)) >= forked, 10, what="every child reaped"
        )
        reaped = len(reaped_children(server, mark))
    record(
        "soak",
        model,
        size_mix=SIZE_MIX_TEXT,
        in_flight=IN_FLIGHT,
        **load.summary(),
        expected_bytes=sum(sizes),
        forked=forked,
        reaped=reaped,
        idle=idle.as_dict(),
        after=after.as_dict(),
        rss_growth_mib=mib(after.rss_kib - idle.rss_kib),
        leaks=leaks,
        zombies=after.zombies,
        recover_s=round(settle_s, 2),
    )

    assert load.unfinished == 0, f"{load.unfinished} sessions unfinished in {DEADLINE_S} s"
    assert load.mismatched == 0, load.summary()
    assert load.ok == SESSIONS, load.summary()
    assert load.bytes_received == load.bytes_sent == sum(sizes)
    assert server.alive()
    assert leaks == {"fds": 0, "processes": 0, "zombies": 0, "rss_kib_over_slack": 0}, (
        f"idle {idle}, after {after}"
    )
    if model == "fork":
        assert forked == reaped == SESSIONS
        assert set(reaped_children(server, mark).values()) == {"exit 0"}
