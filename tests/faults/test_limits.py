"""Limits on the host: FD_SETSIZE, RLIMIT_NOFILE (the cap, and EMFILE on accept), and a storm
of 2,000 connects in about a second against each server.

At a limit the servers neither crash nor spin: clients past it wait in the listen backlog (or
are closed cleanly) and are served once others leave. "No busy loop" is measured: the server's
own CPU time (utime + stime from /proc) while clients wait stays under IDLE_CPU_S per 2 s.
"""

from __future__ import annotations

import re
import resource
import time
from collections.abc import Callable

import pytest

from probe import procfs
from probe.footprint import cpu_seconds, footprint
from probe.sessions import Crowd
from tests.faults.conftest import forked_children, reaped_children, wait_idle
from tests.faults.figures import record
from tests.host.support import ServerProcess, wait_until

StartServer = Callable[..., ServerProcess]

FD_SETSIZE = 1024
IDLE_CPU_S = 0.2  # over WATCH_S: a busy loop would burn all of it
WATCH_S = 2.0
EMFILE_LINE = re.compile(r"accept failed \(\[Errno 24\] Too many open files\)")


def cpu_over(pid: int, seconds: float) -> float:
    before = cpu_seconds(pid)
    time.sleep(seconds)
    return cpu_seconds(pid) - before


def no_leak(after_leaks: dict[str, int]) -> bool:
    return after_leaks == {"fds": 0, "processes": 0, "zombies": 0, "rss_kib_over_slack": 0}


@pytest.mark.timeout(120)
def test_select_server_at_fd_setsize_with_1100_clients(
    many_fds: int, server_factory: StartServer
) -> None:
    assert many_fds > 1100 + 64, "this process needs a descriptor per connection"
    server = server_factory("select")
    assert server.limit < FD_SETSIZE
    idle = footprint(server.pid)
    crowd = Crowd(server.port)
    try:
        connect_s = crowd.connect(1100)
        crowd.send_all()
        crowd.drive(quiet_s=1.0, limit_s=30, close_served=False)
        served_at_once, waiting = crowd.count("served"), crowd.count("pending")
        highest_fd = max(procfs.socket_fds(server.pid))
        cpu_waiting = cpu_over(server.pid, WATCH_S)
        released_at = time.monotonic()
        crowd.close("served", most=waiting + 20)
        crowd.drive(quiet_s=5.0, limit_s=30)
        drained_s = time.monotonic() - released_at
    finally:
        crowd.close()
    after, _ = wait_idle(server)
    leaks = after.leaks_against(idle, 8 * 1024)
    record(
        "select at FD_SETSIZE",
        "select",
        sessions=len(crowd.socks),
        served_at_once=served_at_once,
        waited_in_backlog=waiting,
        connect_s=round(connect_s, 3),
        highest_fd=highest_fd,
        served=crowd.count("served"),
        bytes=crowd.size * crowd.count("served"),
        refused=crowd.count("refused"),
        cpu_while_waiting_s=round(cpu_waiting, 3),
        leaks=leaks,
        zombies=after.zombies,
        recover_s=round(drained_s, 2),
    )
    assert len(crowd.socks) == 1100, crowd.connect_failures
    assert served_at_once == server.limit, "served up to the cap, not one more"
    assert waiting == 1100 - server.limit, "the rest wait in the accept queue"
    assert highest_fd < FD_SETSIZE
    assert cpu_waiting < IDLE_CPU_S, "no busy loop while clients wait"
    server.wait_for_log(rf"at the limit of {server.limit} clients")
    assert crowd.count("pending") == crowd.count("mismatched") == 0
    assert server.alive()
    assert no_leak(leaks)


@pytest.mark.timeout(60)
def test_select_server_started_with_rlimit_nofile_64(server_factory: StartServer) -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    server = server_factory("select", rlimits={"RLIMIT_NOFILE": (64, hard)})
    assert server.limit == 64 - 16, "the cap leaves room under RLIMIT_NOFILE"
    idle = footprint(server.pid)
    crowd = Crowd(server.port)
    try:
        crowd.connect(100)
        crowd.send_all()
        crowd.drive(quiet_s=1.0, limit_s=20, close_served=False)
        served_at_once, waiting = crowd.count("served"), crowd.count("pending")
        cpu_waiting = cpu_over(server.pid, WATCH_S)
        released_at = time.monotonic()
        crowd.close("served")
        crowd.drive(quiet_s=5.0, limit_s=20)
        drained_s = time.monotonic() - released_at
    finally:
        crowd.close()
    after, _ = wait_idle(server)
    leaks = after.leaks_against(idle, 4096)
    emfile = [line for line in server.log_lines() if EMFILE_LINE.search(line)]
    record(
        "RLIMIT_NOFILE 64 (cap)",
        "select",
        sessions=100,
        served_at_once=served_at_once,
        waited_in_backlog=waiting,
        emfile_lines=len(emfile),
        cpu_while_waiting_s=round(cpu_waiting, 3),
        served=crowd.count("served"),
        bytes=crowd.size * crowd.count("served"),
        leaks=leaks,
        zombies=after.zombies,
        recover_s=round(drained_s, 2),
    )
    assert (served_at_once, waiting) == (48, 52)
    assert emfile == [], "the cap keeps accept() from ever hitting EMFILE"
    assert cpu_waiting < IDLE_CPU_S
    assert crowd.count("pending") == crowd.count("mismatched") == 0
    assert crowd.count("refused") == 0
    assert no_leak(leaks)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("model", ["select", "epoll"])
def test_emfile_on_accept_pauses_accepting_without_a_busy_loop(
    model: str, server_factory: StartServer
) -> None:
    server = server_factory(model)
    in_use = procfs.open_fd_count(server.pid)
    _, hard = resource.prlimit(server.pid, resource.RLIMIT_NOFILE)
    # Lowered under the running server, below its cap: accept() itself fails with EMFILE.
    resource.prlimit(server.pid, resource.RLIMIT_NOFILE, (32, hard))
    idle = footprint(server.pid)
    crowd = Crowd(server.port)
    try:
        crowd.connect(60)
        crowd.send_all()
        crowd.drive(quiet_s=1.5, limit_s=20, close_served=False)
        served_at_once, waiting = crowd.count("served"), crowd.count("pending")
        mark = server.mark()
        cpu_waiting = cpu_over(server.pid, WATCH_S)
        retries = sum(bool(EMFILE_LINE.search(line)) for line in server.log_lines()[mark:])
        released_at = time.monotonic()
        crowd.close("served")
        crowd.drive(quiet_s=5.0, limit_s=20)
        drained_s = time.monotonic() - released_at
    finally:
        crowd.close()
    after, _ = wait_idle(server)
    leaks = after.leaks_against(idle, 4096)
    record(
        "EMFILE on accept",
        model,
        rlimit_nofile=32,
        sessions=60,
        served_at_once=served_at_once,
        waited_in_backlog=waiting,
        accept_retries_in_2s=retries,
        cpu_while_waiting_s=round(cpu_waiting, 3),
        served=crowd.count("served"),
        bytes=crowd.size * crowd.count("served"),
        refused=crowd.count("refused"),
        leaks=leaks,
        zombies=after.zombies,
        recover_s=round(drained_s, 2),
    )
    assert served_at_once == 32 - in_use, "every descriptor up to the limit serves a client"
    assert waiting == 60 - served_at_once
    server.wait_for_log(EMFILE_LINE)
    assert retries <= 2 * WATCH_S + 1, "one accept() retry per 1 s tick, not a spin"
    assert cpu_waiting < IDLE_CPU_S, "no busy loop on EMFILE"
    assert server.alive()
    assert crowd.count("pending") == crowd.count("mismatched") == 0
    assert crowd.count("refused") == 0, "the waiting clients were served, not dropped"
    assert no_leak(leaks)


STORM = 2000


@pytest.mark.timeout(180)
@pytest.mark.parametrize("model", ["fork", "select", "epoll"])
def test_a_storm_of_2000_connects(model: str, many_fds: int, server_factory: StartServer) -> None:
    assert many_fds > STORM + 64, "this process needs a descriptor per connection"
    server = server_factory(model)
    idle = footprint(server.pid)
    mark = server.mark()
    crowd = Crowd(server.port)
    started = time.monotonic()
    try:
        connect_s = crowd.connect(STORM)
        crowd.send_all()
        crowd.drive(quiet_s=5.0, limit_s=90)
        served_s = time.monotonic() - started
    finally:
        crowd.close()
    after, settle_s = wait_idle(server, timeout=30)
    leaks = after.leaks_against(idle, 8 * 1024)
    forked = reaped = 0
    if model == "fork":
        forked = len(forked_children(server, mark))
        wait_until(lambda: len(reaped_children(server, mark)) >= forked, 10, what="reaping")
        reaped = len(reaped_children(server, mark))
    record(
        "connection storm",
        model,
        sessions=len(crowd.socks),
        connect_s=round(connect_s, 3),
        connect_failures=crowd.connect_failures,
        all_served_s=round(served_s, 2),
        served=crowd.count("served"),
        bytes=crowd.size * crowd.count("served"),
        refused=crowd.count("refused"),
        mismatched=crowd.count("mismatched"),
        forked=forked,
        reaped=reaped,
        leaks=leaks,
        zombies=after.zombies,
        recover_s=round(settle_s, 2),
    )
    assert len(crowd.socks) == STORM, crowd.connect_failures
    assert crowd.count("pending") == crowd.count("mismatched") == 0
    assert crowd.count("served") + crowd.count("refused") == STORM
    assert crowd.count("served") == STORM, "the backlog holds a storm: no one is refused"
    assert server.alive()
    assert no_leak(leaks)
    if model == "fork":
        assert forked == reaped == STORM
