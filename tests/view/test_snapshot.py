"""Unit: probe.snapshot over a fake /proc: roles, zombies, break-it servers, vanishing processes."""

from __future__ import annotations

import os
from pathlib import Path

from probe import snapshot

TCP_HEADER = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid\n"


def tcp_row(n: int, local: str, remote: str, state: str, inode: int) -> str:
    rest = f"00000000:00000000 00:00000000 00000000 10001 0 {inode} 1"
    return f"   {n}: {local} {remote} {state} {rest}\n"


def fake_process(
    root: Path, pid: int, ppid: int, state: str, argv: list[str], sockets: list[int]
) -> None:
    d = root / str(pid)
    (d / "fd").mkdir(parents=True)
    fields = [state, str(ppid), str(pid)] + ["0"] * 40
    (d / "stat").write_text(f"{pid} (python3) {' '.join(fields)}\n")
    (d / "cmdline").write_bytes("\0".join(argv).encode() + b"\0")
    for fd, inode in enumerate(sockets, start=3):
        os.symlink(f"socket:[{inode}]", d / "fd" / str(fd))


def fake_proc(tmp_path: Path) -> Path:
    root = tmp_path / "proc"
    fork = ["python3", "-m", "server", "fork", "--port", "9000"]
    broken = ["python3", "-m", "server", "fork", "--port", "9009", "--no-reap"]
    fake_process(root, 1, 0, "S", fork, [100])  # the real server: its listener
    fake_process(root, 7, 1, "S", fork, [101])  # a child: one client, no listener
    fake_process(root, 20, 0, "S", broken, [200])  # a break-it server beside it
    fake_process(root, 21, 20, "Z", broken, [])  # its exited child: a zombie
    (root / "22").mkdir()  # listed, then gone before its stat was read
    for pid in (1, 7, 20, 21):
        net = root / str(pid) / "net"
        net.mkdir()
        (net / "tcp").write_text(
            TCP_HEADER
            + tcp_row(0, "00000000:2328", "00000000:0000", "0A", 100)
            + tcp_row(1, "0100007F:2328", "0100007F:C350", "01", 101)
            + tcp_row(2, "00000000:2331", "00000000:0000", "0A", 200)
            + tcp_row(3, "0100007F:9999", "0100007F:2328", "06", 0)
        )
        (net / "tcp6").write_text(TCP_HEADER)
    return root


def test_every_server_in_the_namespace_with_roles_and_sockets(tmp_path: Path) -> None:
    found = {s.root: s for s in snapshot.servers(str(fake_proc(tmp_path)))}
    assert sorted(found) == [1, 20], "the break-it server is a server of its own"
    real = snapshot.as_json(found[1])
    assert real["model"] == "fork" and real["port"] == 9000 and real["flags"] == []
    roles = {p["pid"]: (p["role"], [s["kind"] for s in p["sockets"]]) for p in real["processes"]}
    assert roles == {1: ("parent", ["listen"]), 7: ("child", ["connected"])}
    child = real["processes"][1]
    assert child["sockets"][0]["peer"] == "127.0.0.1:50000"
    broken = snapshot.as_json(found[20])
    assert broken["flags"] == ["--no-reap"]
    zombie = broken["processes"][1]
    assert (zombie["role"], zombie["state"], zombie["sockets"]) == ("zombie", "zombie", [])
    assert zombie["sockets_visible"] is True, "a zombie holds nothing; that is not 'unseen'"


def test_by_port_and_a_port_nobody_listens_on(tmp_path: Path) -> None:
    found = snapshot.on_ports([9009, 9999], str(fake_proc(tmp_path)))
    assert found[9009] is not None and found[9009].root == 20
    assert found[9999] is None


def test_a_process_that_exits_between_two_reads_is_skipped(tmp_path: Path) -> None:
    root = fake_proc(tmp_path)
    snap = snapshot.take(1, str(root))
    (root / "7" / "fd" / "3").unlink()  # the child closed its socket meanwhile
    assert [p.pid for p in snap.processes] == [1, 7]
    assert 22 not in [p.pid for s in snapshot.servers(str(root)) for p in s.processes]
    assert snapshot.take(4242, str(root)).processes == (), "a server that is gone: empty"
