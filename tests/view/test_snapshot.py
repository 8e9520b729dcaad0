"""Unit: probe.snapshot over a fake /proc: roles, zombies, break-it servers, vanishing processes."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable
from pathlib import Path

import pytest

from probe import procfs, snapshot

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


def test_a_server_restarted_on_its_port_is_found_under_its_new_pid(tmp_path: Path) -> None:
    root = fake_proc(tmp_path)
    assert snapshot.on_ports([9009], str(root))[9009].root == 20  # remembered as the holder
    broken = ["python3", "-m", "server", "fork", "--port", "9009", "--no-reap"]
    fake_process(root, 30, 0, "S", broken, [200])  # the restarted server, same listener
    (root / "30" / "net").symlink_to(root / "20" / "net")
    for fd in (root / "20" / "fd").iterdir():
        fd.unlink()  # the old one closed its listener (then exits)
    assert snapshot.on_ports([9009], str(root))[9009].root == 30
    (root / "20" / "stat").unlink()  # gone: its pid is no longer in /proc
    assert snapshot.on_ports([9009], str(root))[9009].root == 30


def test_a_reused_pid_has_its_own_command_line(tmp_path: Path) -> None:
    root = fake_proc(tmp_path)
    assert snapshot.take(1, str(root)).model == "fork"
    (root / "1" / "cmdline").write_bytes(b"python3\0-m\0server\0select\0--port\x009000\0")
    assert snapshot.take(1, str(root)).model == "fork", "same pid, same start: not re-read"
    stat = (root / "1" / "stat").read_text().split()
    stat[21] = "777"  # field 22, starttime: another process under the same pid
    (root / "1" / "stat").write_text(" ".join(stat) + "\n")
    assert snapshot.take(1, str(root)).model == "select"


def test_netlink_and_proc_net_tcp_give_the_same_snapshot(monkeypatch: pytest.MonkeyPatch) -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    client = socket.create_connection(listener.getsockname())
    accepted, _ = listener.accept()
    try:
        calls: list[int] = []
        real_diag = procfs.diag_tcp_sockets

        def counted(states: int, ports: Iterable[int] = ()) -> list[procfs.TcpSocket]:
            calls.append(states)
            return real_diag(states, ports)

        monkeypatch.setattr(procfs, "diag_tcp_sockets", counted)
        by_netlink = snapshot.as_json(snapshot.take(os.getpid()))
        assert calls, "the live /proc of this namespace is read over netlink"

        def refused(states: int, ports: Iterable[int] = ()) -> list[procfs.TcpSocket]:
            raise PermissionError(13, "sock_diag refused")  # a locked-down sandbox

        monkeypatch.setattr(procfs, "diag_tcp_sockets", refused)
        by_text = snapshot.as_json(snapshot.take(os.getpid()))
        assert by_text == by_netlink
        kinds = sorted(s["kind"] for s in by_text["processes"][0]["sockets"])
        assert kinds == ["connected", "listen"], "the client's end is not on the server's port"
    finally:
        for s in (client, accepted, listener):
            s.close()


def _open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def test_a_pass_walks_no_path_from_the_root_per_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The tree is opened once and read relative to it: a path from "/" per file would pay a
    search check there on each call (a FUSE round trip in a container on fuse-overlayfs)."""
    root = str(fake_proc(tmp_path))
    walked: list[str] = []
    real_open, real_readlink = os.open, os.readlink

    def opened(path, flags, mode=0o777, *, dir_fd=None):  # type: ignore[no-untyped-def]
        if dir_fd is None:
            walked.append(str(path))
        return real_open(path, flags, mode, dir_fd=dir_fd)

    def read_link(path, *, dir_fd=None):  # type: ignore[no-untyped-def]
        if dir_fd is None:
            walked.append(str(path))
        return real_readlink(path, dir_fd=dir_fd)

    monkeypatch.setattr(os, "open", opened)
    monkeypatch.setattr(os, "readlink", read_link)
    found = snapshot.servers(root)
    assert sorted(s.root for s in found) == [1, 20]
    assert [p for p in walked if p.startswith(root)] == [root], "only the tree itself"


def test_a_pass_leaves_no_descriptor_open(tmp_path: Path) -> None:
    root = fake_proc(tmp_path)
    before = _open_fds()
    snapshot.servers(str(root))
    snapshot.on_ports([9000, 9999], str(root))
    snapshot.take(4242, str(root))
    with pytest.raises(FileNotFoundError):
        snapshot.take(1, str(tmp_path / "no-such-proc"))
    assert procfs.fd_targets(7, str(root)) == {3: "socket:[101]"}
    assert _open_fds() == before


V6_ANY = "0" * 32


def _tcp6_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    reads: list[str] = []
    real_open = os.open

    def opened(path, flags, mode=0o777, *, dir_fd=None):  # type: ignore[no-untyped-def]
        if str(path).endswith("net/tcp6"):
            reads.append(str(path))
        return real_open(path, flags, mode, dir_fd=dir_fd)

    monkeypatch.setattr(os, "open", opened)
    return reads


def test_tcp6_is_read_only_when_a_socket_is_in_neither_tcp_nor_unix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each read of tcp6 walks the kernel's whole TCP hash: skipped when every socket held is
    an IPv4 TCP socket (in tcp) or a UNIX one (in unix), never when one may be IPv6."""
    root = fake_proc(tmp_path)
    os.symlink("socket:[300]", root / "1" / "fd" / "9")  # the signal self-pipe: UNIX
    for pid in (1, 7, 20, 21):
        unix = "Num       RefCount Protocol Flags    Type St Inode Path\n"
        unix += "0000000000000000: 00000003 00000000 00000000 0001 03   300\n"
        (root / str(pid) / "net" / "unix").write_text(unix)
    reads = _tcp6_reads(monkeypatch)
    before = [snapshot.as_json(s) for s in snapshot.servers(str(root))]
    assert reads == [], "every socket is in tcp or unix: tcp6 cannot hold one of them"
    assert [s["port"] for s in before] == [9000, 9009]

    (root / "1" / "fd" / "9").unlink()
    os.symlink("socket:[301]", root / "1" / "fd" / "9")  # UDP, say: in neither table
    after = [snapshot.as_json(s) for s in snapshot.servers(str(root))]
    assert reads, "a socket in neither table may be in tcp6: it is read"
    assert after == before


def test_a_server_listening_on_ipv6_only_is_found_through_tcp6(tmp_path: Path) -> None:
    root = fake_proc(tmp_path)
    six = ["python3", "-m", "server", "select", "--host", "::", "--port", "9006"]
    fake_process(root, 40, 0, "S", six, [600])
    (root / "40" / "net").mkdir()
    (root / "40" / "net" / "tcp").write_text(TCP_HEADER)  # no IPv4 socket in this namespace
    (root / "40" / "net" / "tcp6").write_text(
        TCP_HEADER
        + tcp_row(0, f"{V6_ANY}:232E", f"{V6_ANY}:0000", "0A", 600)
        + tcp_row(1, f"{'0' * 24}01000000:232E", f"{'0' * 24}01000000:C351", "01", 602)
    )
    found = {s.root: snapshot.as_json(s) for s in snapshot.servers(str(root))}
    assert found[40]["listen"] == ["[0000:0000:0000:0000:0000:0000:0000:0000]:9006"]
    assert found[40]["processes"][0]["sockets"][0]["kind"] == "listen"
