"""probe.footprint: a process tree's CPU, memory, zombies and held sockets, as /proc shows them."""

from __future__ import annotations

import os
import socket
import time

from probe import footprint, procfs
from tests.host.support import wait_until


def burn(seconds: float) -> None:
    """Use `seconds` of CPU (not of the clock: on a busy machine the two differ)."""
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


def test_parse_stat_reads_the_cpu_times_and_parse_machine_stat_the_busy_ticks() -> None:
    text = "7 (x) S 1 7 7 0 -1 0 0 0 0 0 11 22 33 44 20 0 1 0 555 0 0\n"
    st = procfs.parse_stat(text)
    assert (st.utime, st.stime, st.cutime, st.cstime) == (11, 22, 33, 44)
    assert (st.cpu_ticks, st.reaped_ticks) == (33, 77)
    busy, total = procfs.parse_machine_stat("cpu  10 1 20 100 5 2 3 0 0 0\ncpu0 1 2 3 4\n")
    assert (busy, total) == (36, 141)  # idle and iowait are not busy


def test_the_tree_counts_a_child_then_its_zombie_and_its_cpu_once_reaped() -> None:
    me = os.getpid()
    before = footprint.footprint(me)
    pid = os.fork()
    if pid == 0:  # the child burns CPU, then waits to be killed; it never returns into pytest
        try:
            burn(0.3)
            time.sleep(30)
        finally:
            os._exit(0)
    try:
        wait_until(lambda: procfs.process_state(pid) == "S", 10, what="the child to sleep")
        live = footprint.footprint(me)
        assert live.processes == before.processes + 1
        assert live.children_rss_kib > 0 and live.pss_kib > 0
        assert live.tree_rss_kib == live.rss_kib + live.children_rss_kib
        assert footprint.private_kib(pid) > 0
        child_cpu = footprint.cpu_seconds(pid)
        assert child_cpu >= 0.1, "the child's own burn shows in its stat"
        tree_before_reap = footprint.tree_cpu_seconds(me)
        os.kill(pid, 9)
        wait_until(lambda: procfs.process_state(pid) == "Z", 5, what="the child to be a zombie")
        assert footprint.zombies(me) == 1
        assert footprint.footprint(me).zombies == 1
    finally:
        os.waitpid(pid, 0)
    assert footprint.zombies(me) == 0
    # Reaped: the child's time moved into our cutime/cstime, and the tree still counts it.
    assert footprint.tree_cpu_seconds(me) >= tree_before_reap - 0.02
    assert footprint.tree_cpu_seconds(me) - footprint.cpu_seconds(me) >= child_cpu - 0.02


def test_a_gone_process_has_an_empty_footprint() -> None:
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    assert footprint.footprint(pid) == footprint.Footprint(0, 0, 0, 0, 0, 0, 0, 0)
    assert footprint.cpu_seconds(pid) == footprint.tree_cpu_seconds(pid) == 0.0
    assert footprint.machine_busy_seconds() > 0


def test_held_connections_counts_the_accepted_sockets_a_tree_still_holds() -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        client = socket.create_connection(("127.0.0.1", port))
        accepted, _ = listener.accept()
        assert procfs.held_connections(os.getpid(), port) == 1
        pid = os.fork()
        if pid == 0:  # a child that holds its inherited copy, as a fork server's child does
            try:
                time.sleep(30)
            finally:
                os._exit(0)
        try:
            accepted.close()
            assert procfs.tree_socket_inodes(os.getpid()) >= procfs.socket_inodes(pid)
            assert procfs.held_connections(os.getpid(), port) == 1, "the child's copy counts"
            assert procfs.held_connections(pid, port) == 1
        finally:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
        assert procfs.held_connections(os.getpid(), port) == 0
        client.close()
