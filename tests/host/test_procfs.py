"""procfs reads what the kernel shows: checked on this test process and its own children."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from typing import Any

from probe import procfs
from tests.host.support import REPO_ROOT, wait_until


def test_parse_stat_survives_a_comm_with_spaces_and_parentheses() -> None:
    text = "4242 (a) b (c) S 1 4242 4242 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 3 0 98765 0 0\n"
    st = procfs.parse_stat(text)
    assert (st.pid, st.comm, st.state, st.ppid, st.pgrp) == (4242, "a) b (c", "S", 1, 4242)
    assert (st.num_threads, st.starttime) == (3, 98765)


def test_parse_net_tcp_reads_v4_and_v4_mapped_v6_rows() -> None:
    tcp = (
        "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt"
        "   uid  timeout inode\n"
        "   0: 0100007F:2328 00000000:0000 0A 00000000:00000002 00:00000000 00000000"
        "     0        0 31337 1 0000000000000000 100 0 0 10 0\n"
        "   1: 0100007F:2328 0100007F:D431 01 00000000:00000000 00:00000000 00000000"
        "    65534        0 31338 1 0000000000000000 20 4 30 10 -1\n"
    )
    listen, est = procfs.parse_net_tcp(tcp)
    assert procfs.parse_net_tcp(tcp, local_port=9000) == [listen, est]
    assert procfs.parse_net_tcp(tcp, local_port=0xD431) == []  # a remote port only
    assert (listen.local_ip, listen.local_port, listen.state) == ("127.0.0.1", 9000, "LISTEN")
    assert (listen.rx_queue, listen.inode) == (2, 31337)
    assert (est.remote_ip, est.remote_port, est.state, est.uid) == (
        "127.0.0.1",
        0xD431,
        "ESTABLISHED",
        65534,
    )
    tcp6 = (
        "  sl  local_address                         remote_address"
        "                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
        "   0: 0000000000000000FFFF00000100007F:2329 00000000000000000000000000000000:0000 0A"
        " 00000000:00000000 00:00000000 00000000 0 0 4711 1 0000000000000000 100 0 0 10 0\n"
        "   1: 00000000000000000000000001000000:232A 00000000000000000000000000000000:0000 0A"
        " 00000000:00000000 00:00000000 00000000 0 0 4712 1 0000000000000000 100 0 0 10 0\n"
    )
    mapped, loopback = procfs.parse_net_tcp(tcp6)
    assert (mapped.local_ip, mapped.local_port, mapped.inode) == ("127.0.0.1", 9001, 4711)
    assert loopback.local_ip == "0000:0000:0000:0000:0000:0000:0000:0001"


def test_socket_inode_reads_only_socket_links() -> None:
    assert procfs.socket_inode("socket:[123]") == 123
    assert procfs.socket_inode("pipe:[123]") is None
    assert procfs.socket_inode("/dev/null") is None


def test_a_live_child_then_a_zombie_then_nothing() -> None:
    pid = os.fork()
    if pid == 0:  # the child waits to be killed; it must never return into pytest
        try:
            time.sleep(30)
        finally:
            os._exit(0)
    try:
        assert pid in procfs.children_of(os.getpid())
        wait_until(lambda: procfs.process_state(pid) == "S", 5, what="the child to sleep")
        assert procfs.zombies_among([pid]) == []
        assert procfs.is_alive(pid) and not procfs.has_exited(pid)
        os.kill(pid, 9)
        wait_until(lambda: procfs.process_state(pid) == "Z", 5, what="the child to be a zombie")
        assert procfs.zombies_among([pid, os.getpid()]) == [pid]
        assert procfs.exists(pid) and not procfs.is_alive(pid) and procfs.has_exited(pid)
        assert pid in procfs.children_of(os.getpid()), "a zombie is still its parent's child"
    finally:
        os.waitpid(pid, 0)
    assert procfs.process_state(pid) is None and procfs.has_exited(pid)
    assert pid not in procfs.children_of(os.getpid())
    assert pid not in procfs.descendants_of(os.getppid())


# Run as someone other than root (an unused uid when we are root): to them an exited
# process's /proc files belong to root, as they do to the image's unprivileged bench.
AS_SOMEONE_ELSE = """
import json, os, time
from probe import footprint, procfs
if os.getuid() == 0:
    os.setgid(54321); os.setuid(54321)
pid = os.fork()
if pid == 0:
    os._exit(3)
deadline = time.monotonic() + 10
while procfs.process_state(pid) != "Z" and time.monotonic() < deadline:
    time.sleep(0.01)
try:
    procfs.fd_targets(os.getppid())  # pytest's: root's when we were root
    root_refused = False
except PermissionError:
    root_refused = True
print(json.dumps({"fds": procfs.fd_targets(pid), "fp_fds": footprint.footprint(pid).fds,
                  "refused": root_refused}))
"""


def run_as_someone_else(script: str) -> Any:
    """Run `script` in a Python of its own (it drops root itself) and parse the JSON it prints."""
    run = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True, timeout=30
    )
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)


def test_a_zombie_holds_no_descriptors_even_where_its_fd_directory_is_not_ours() -> None:
    # A live process not ours still refuses; one exists only where we dropped from root.
    refused = os.geteuid() == 0
    assert run_as_someone_else(AS_SOMEONE_ELSE) == {"fds": {}, "fp_fds": 0, "refused": refused}


# The same, for a process in the middle of exiting: once exit() has dropped its memory, its /proc
# files are root's while it is still "R", not yet a zombie. A child that touched 256 MiB takes
# tens of milliseconds to free them: the window the checker's image mode once read as "another
# user's processes" and skipped a check for.
EXITING_AS_SOMEONE_ELSE = """
import json, os, signal, time
from probe import procfs
from tests.host.support import exiting_window
if os.getuid() == 0:
    os.setgid(54321); os.setuid(54321)
ready_r, ready_w = os.pipe()
pid = os.fork()
if pid == 0:
    big = bytearray(256 << 20)
    for i in range(0, len(big), 4096):
        big[i] = 1
    os.write(ready_w, b"x")
    time.sleep(60)
    os._exit(0)
os.read(ready_r, 1)
os.kill(pid, signal.SIGKILL)
seen = {"exiting": 0, "alive": 0, "refused": 0, "held": 0}
for st in exiting_window(pid, timeout=10):
    seen["exiting"] += 1
    seen["alive"] += procfs.is_alive(pid)
    try:
        seen["held"] += len(procfs.fd_targets(pid))
    except PermissionError:
        seen["refused"] += 1
os.waitpid(pid, 0)
print(json.dumps(seen))
"""


def test_an_exiting_process_is_not_alive_and_holds_no_descriptors_even_where_not_ours() -> None:
    seen = run_as_someone_else(EXITING_AS_SOMEONE_ELSE)
    assert seen["exiting"] > 0, f"never caught the child between exit() and zombie: {seen}"
    assert seen["alive"] == seen["refused"] == seen["held"] == 0, seen


def test_starttime_tells_a_reused_pid_apart() -> None:
    me = procfs.stat(os.getpid())
    assert me is not None
    assert procfs.is_alive(os.getpid(), me.starttime)
    assert not procfs.is_alive(os.getpid(), me.starttime + 1)


def test_sockets_of_this_process_and_the_listening_inode() -> None:
    with socket.create_server(("127.0.0.1", 0), backlog=8) as listener:
        port = listener.getsockname()[1]
        inode = os.fstat(listener.fileno()).st_ino
        assert procfs.listening_inodes(port) == {inode}
        assert inode in procfs.socket_inodes(os.getpid())
        assert procfs.socket_fds(os.getpid())[listener.fileno()] == inode
        assert procfs.accepted_inodes(port) == set()

        a = socket.create_connection(("127.0.0.1", port))
        b = socket.create_connection(("127.0.0.1", port))
        try:
            # Not accepted yet: both wait in the accept queue, which rx_queue shows.
            backlog = wait_until(
                lambda: procfs.listening_sockets(port)[0].rx_queue == 2, 5, what="backlog 2"
            )
            assert backlog
            conn, _ = listener.accept()
            with conn:
                assert procfs.listening_sockets(port)[0].rx_queue == 1
                conn_inode = os.fstat(conn.fileno()).st_ino
                # The connection still in the accept queue has no file yet (inode 0): not listed.
                assert procfs.accepted_inodes(port) == {conn_inode}
                assert conn_inode in procfs.socket_inodes(os.getpid())
                assert os.fstat(a.fileno()).st_ino not in procfs.accepted_inodes(port)
        finally:
            a.close()
            b.close()


def test_open_fd_count_follows_open_and_close() -> None:
    before = procfs.open_fd_count(os.getpid())
    fd = os.open(os.devnull, os.O_RDONLY)
    try:
        assert procfs.open_fd_count(os.getpid()) == before + 1
        assert procfs.fd_targets(os.getpid())[fd] == os.devnull
    finally:
        os.close(fd)
    assert procfs.open_fd_count(os.getpid()) == before


def test_thread_count_and_memory_of_this_process() -> None:
    before = procfs.thread_count(os.getpid())
    assert before is not None and before >= 1
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait, daemon=True)
    thread.start()
    try:
        assert procfs.thread_count(os.getpid()) == before + 1
    finally:
        stop.set()
        thread.join()
    rss, pss = procfs.rss_kb(os.getpid()), procfs.pss_kb(os.getpid())
    assert rss is not None and pss is not None
    assert 0 < pss <= rss
    assert procfs.tasks_of_uid(os.getuid()) >= before


def test_readers_say_gone_for_a_missing_process() -> None:
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    assert procfs.stat(pid) is None
    assert procfs.fd_targets(pid) == {}
    assert procfs.memory_kb(pid) is None
    assert procfs.children_of(pid) == []


def test_readers_take_another_proc_root(tmp_path: os.PathLike[str]) -> None:
    """A copied /proc subset parses the same way (the docker tier reads text it copied out)."""
    fake = os.path.join(tmp_path, "proc")
    os.makedirs(os.path.join(fake, "77"))
    os.makedirs(os.path.join(fake, "78"))
    with open(os.path.join(fake, "77", "stat"), "w") as f:
        f.write("77 (python3) S 1 77 77 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 500 0 0\n")
    with open(os.path.join(fake, "78", "stat"), "w") as f:
        f.write("78 (python3) Z 77 77 77 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 600 0 0\n")
    assert procfs.all_pids(fake) == [77, 78]
    assert procfs.children_of(77, fake) == [78]
    assert procfs.zombies_among([77, 78], fake) == [78]


def test_netlink_gives_the_rows_proc_net_tcp_gives_on_the_ports_asked() -> None:
    listeners = [socket.create_server(("127.0.0.1", 0)) for _ in range(3)]
    ports = [s.getsockname()[1] for s in listeners]
    client = socket.create_connection(("127.0.0.1", ports[1]))
    accepted, _ = listeners[1].accept()
    try:
        asked = [ports[0], ports[1]]
        by_netlink = procfs.diag_tcp_sockets(procfs.HELD_STATES, asked)
        by_text = [
            s for p in asked for s in procfs.tcp_sockets(local_port=p) if s.state != "TIME_WAIT"
        ]
        assert sorted(by_netlink, key=lambda s: s.inode) == sorted(by_text, key=lambda s: s.inode)
        assert {(s.local_port, s.state) for s in by_netlink} == {
            (ports[0], "LISTEN"),
            (ports[1], "LISTEN"),
            (ports[1], "ESTABLISHED"),
        }, "the third listener and the client's end (remote port only) are filtered out"
        listening = procfs.diag_tcp_sockets(procfs.LISTEN_STATES)
        assert {s.local_port for s in listening} >= set(ports)
        assert all(s.state == "LISTEN" for s in listening)
    finally:
        for s in (client, accepted, *listeners):
            s.close()


def test_socket_fds_reads_the_links_and_nothing_of_a_gone_process() -> None:
    with socket.socket() as sock:
        fds = procfs.socket_fds(os.getpid())
        inode = os.stat(f"/proc/self/fd/{sock.fileno()}").st_ino
        assert fds[sock.fileno()] == inode
    assert procfs.socket_fds(2**22 + 1) == {}, "a pid that is not there: no descriptors"


def test_parse_netstat_pairs_a_groups_names_with_its_values() -> None:
    text = (
        "TcpExt: SyncookiesSent ListenOverflows ListenDrops\n"
        "TcpExt: 0 17 19\n"
        "IpExt: InNoRoutes InTruncatedPkts\n"
        "IpExt: 1 2\n"
    )
    assert procfs.parse_netstat(text) == {
        "SyncookiesSent": 0,
        "ListenOverflows": 17,
        "ListenDrops": 19,
    }
    assert procfs.parse_netstat(text, "IpExt") == {"InNoRoutes": 1, "InTruncatedPkts": 2}
    assert procfs.parse_netstat("") == {}


def test_a_full_listen_queue_counts_as_overflows() -> None:
    before = procfs.listen_overflows(os.getpid())
    assert before is not None
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)  # room for one connection waiting for accept(), which never comes
        crowd = []
        try:
            for _ in range(4):
                sock = socket.socket()
                sock.setblocking(False)
                sock.connect_ex(listener.getsockname())
                crowd.append(sock)
            assert wait_until(lambda: (procfs.listen_overflows() or 0) > before, 3.0)
        finally:
            for sock in crowd:
                sock.close()
    assert procfs.listen_overflows(999_999_999) is None  # a process that is not there
