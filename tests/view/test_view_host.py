"""The view over servers on this host: what /api/snapshot shows, and the view under abuse."""

from __future__ import annotations

import socket
import threading
import time

from probe.limits import raise_open_files
from tests.host.support import wait_until
from tests.view.conftest import HOST, held_clients


def children(doc: dict) -> list[dict]:
    return [p for p in doc["processes"] if p["role"] != "parent"]


def kinds(process: dict) -> list[str]:
    return [s["kind"] for s in process["sockets"]]


def first_message(sock: socket.socket) -> bytes:
    """What a stream sent up to its first `data:` line (the headers may arrive alone)."""
    got = b""
    while b"data: " not in got:
        chunk = sock.recv(65536)  # bounded by the socket's timeout
        if not chunk:
            break
        got += chunk
    return got


def test_twenty_clients_are_twenty_children_each_with_one_connection_then_gone(
    server_factory, view_factory
) -> None:
    server = server_factory("fork")
    view = view_factory(("fork-server", server.port))
    with held_clients(server.port, 20):
        doc = view.wait_server("fork-server", lambda d: len(children(d)) == 20)
        for child in children(doc):
            assert kinds(child) == ["connected"], f"child {child['pid']} holds {kinds(child)}"
        assert kinds(doc["processes"][0]) == ["listen"], "the parent holds the listener only"
    view.wait_server("fork-server", lambda d: not children(d), what="the children to go")
    events = view.snapshot()["events"]
    assert any("reaped" in e["text"] for e in events), events


def test_a_no_reap_servers_exited_children_are_zombies(server_factory, view_factory) -> None:
    server = server_factory("fork", "--no-reap")
    view = view_factory(("fork-server", server.port))
    with held_clients(server.port, 3):
        pass
    doc = view.wait_server("fork-server", lambda d: len(children(d)) == 3)
    doc = view.wait_server("fork-server", lambda d: all(p["role"] == "zombie" for p in children(d)))
    assert all(p["state"] == "zombie" and p["sockets"] == [] for p in children(doc))
    assert doc["flags"] == ["--no-reap"]


def test_the_select_panel_counts_its_clients_against_its_cap(server_factory, view_factory):
    server = server_factory("select", "--max-clients", "50")
    view = view_factory(("select-server", server.port))
    with held_clients(server.port, 7):
        doc = view.wait_server(
            "select-server", lambda d: kinds(d["processes"][0]).count("connected") == 7
        )
        assert doc["cap"] == 50 and doc["fd_setsize"] == 1024 and not children(doc)


def test_the_snapshot_api_under_load_with_500_clients(server_factory, view_factory) -> None:
    raise_open_files(4096)
    server = server_factory("fork", "--max-children", "600")
    view = view_factory(("fork-server", server.port))
    failures: list[str] = []
    stop = threading.Event()

    def hammer() -> None:
        while not stop.is_set():
            status, _ = view.get("/api/snapshot")
            if status != 200:
                failures.append(str(status))

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for t in threads:
        t.start()
    try:
        with held_clients(server.port, 500):
            view.wait_server("fork-server", lambda d: len(children(d)) == 500, timeout=60)
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    assert not failures


def test_bad_input_stalled_and_vanishing_browsers_leak_nothing(server_factory, view_factory):
    server = server_factory("fork")
    view = view_factory(("fork-server", server.port))
    view.wait_server("fork-server", lambda d: True)
    assert view.get("/nope")[0] == 404
    assert view.get("/../../etc/passwd")[0] == 404
    threads0, fds0 = view.threads(), view.fds()
    # 100 browsers on the stream at once; each reads a first message, then half just vanish.
    streams = []
    slowest_connect = 0.0
    for _ in range(100):
        started = time.monotonic()
        sock = socket.create_connection((HOST, int(view.url.rsplit(":", 1)[1])), timeout=10)
        slowest_connect = max(slowest_connect, time.monotonic() - started)
        sock.sendall(b"GET /api/events HTTP/1.1\r\nHost: x\r\n\r\n")
        streams.append(sock)
    # A connect the listen backlog dropped waits for the kernel's SYN retry, 1 s at the least.
    assert slowest_connect < 1.0, f"a browser's connect was dropped ({slowest_connect:.1f} s)"
    for sock in streams:
        assert b"data: " in first_message(sock)
    wait_until(lambda: view.threads() >= threads0 + 90, 20, what="100 streams served at once")
    for sock in streams[:50]:
        sock.close()  # disconnect mid-stream
    garbage = socket.create_connection((HOST, int(view.url.rsplit(":", 1)[1])), timeout=10)
    garbage.sendall(b"\x00\xff not http\r\n\r\n")
    assert b"400" in garbage.recv(4096), "garbage gets one clear answer: 400"
    garbage.close()
    for sock in streams[50:]:
        sock.close()
    wait_until(lambda: view.threads() <= threads0, 30, what="every stream thread to end")
    wait_until(lambda: view.fds() <= fds0, 30, what="every descriptor to be closed")
    assert view.get("/api/snapshot")[0] == 200, "and the view keeps going"


def test_a_server_restarting_is_unseen_then_seen_under_its_new_pid(server_factory, view_factory):
    first = server_factory("fork")
    view = view_factory(("fork-server", first.port))
    old = view.wait_server("fork-server", lambda d: True)["root"]
    first.cleanup()
    wait_until(
        lambda: (d := view.server("fork-server")) and d.get("error"), 20, what="the view to say"
    )
    assert "no process listens on port" in view.server("fork-server")["error"]
    time.sleep(0.3)
    second = server_factory("fork", "--port", str(first.port))
    new = view.wait_server("fork-server", lambda d: d["root"] == second.pid)["root"]
    assert new != old
