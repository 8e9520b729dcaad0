"""What the kernel shows: processes, their states, their sockets, read from /proc.

Two layers, so the host tier and the docker tier share one parser:

* ``parse_*`` functions take the *text* of a /proc file and return plain data. The docker
  tier feeds them text it read with ``docker exec ... cat /proc/...``.
* The other functions read a live /proc tree (``root``, default ``"/proc"``) and call the
  parsers. A process can vanish between two reads; readers treat that as "gone", never as
  an error.
"""

from __future__ import annotations

import os
import re
import socket
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

PROC = "/proc"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")  # the unit of the CPU times in stat
PF_EXITING = 0x4  # include/linux/sched.h: set at the start of exit(), in stat's flags field

TCP_STATES = {
    0x01: "ESTABLISHED",
    0x02: "SYN_SENT",
    0x03: "SYN_RECV",
    0x04: "FIN_WAIT1",
    0x05: "FIN_WAIT2",
    0x06: "TIME_WAIT",
    0x07: "CLOSE",
    0x08: "CLOSE_WAIT",
    0x09: "LAST_ACK",
    0x0A: "LISTEN",
    0x0B: "CLOSING",
}

_SOCKET_LINK = re.compile(r"^socket:\[(\d+)\]$")


# ---------------------------------------------------------------- parsers (text in, data out)


@dataclass(frozen=True)
class Stat:
    """The fields of /proc/<pid>/stat that say who a process is, what it does, what it cost."""

    pid: int
    comm: str
    state: str  # 'R', 'S', 'D', 'Z', 'T', ...
    ppid: int
    pgrp: int
    num_threads: int
    starttime: int  # ticks after boot: (pid, starttime) names a process; a pid may be reused
    utime: int = 0  # CPU ticks in user mode
    stime: int = 0  # CPU ticks in the kernel
    cutime: int = 0  # user ticks of the children it waited for
    cstime: int = 0  # kernel ticks of the children it waited for
    flags: int = 0  # the kernel's PF_* bits for the task

    @property
    def exiting(self) -> bool:
        """In exit(): its memory freed, its descriptors closed (a zombie keeps the flag)."""
        return bool(self.flags & PF_EXITING)

    @property
    def cpu_ticks(self) -> int:
        return self.utime + self.stime

    @property
    def reaped_ticks(self) -> int:
        """What the children it reaped used: a child's time reaches its parent at waitpid."""
        return self.cutime + self.cstime


def parse_stat(text: str) -> Stat:
    """Parse /proc/<pid>/stat. comm may hold spaces and parentheses: split at the last ')'."""
    head, _, tail = text.rpartition(")")
    pid_text, _, comm = head.partition(" (")
    fields = tail.split()
    # fields[0] is field 3 (state) of proc(5); field n is fields[n - 3].
    return Stat(
        pid=int(pid_text),
        comm=comm,
        state=fields[0],
        ppid=int(fields[1]),
        pgrp=int(fields[2]),
        num_threads=int(fields[17]),
        starttime=int(fields[19]),
        utime=int(fields[11]),
        stime=int(fields[12]),
        cutime=int(fields[13]),
        cstime=int(fields[14]),
        flags=int(fields[6]),
    )


def parse_machine_stat(text: str) -> tuple[int, int]:
    """(busy, total) ticks of all cores since boot, from the 'cpu' line of /proc/stat."""
    ticks = [int(x) for x in text.split("\n", 1)[0].split()[1:9]]
    idle = ticks[3] + ticks[4]  # idle + iowait
    return sum(ticks) - idle, sum(ticks)


def parse_status(text: str) -> dict[str, str]:
    """Parse /proc/<pid>/status into {key: raw value}."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            out[key.strip()] = value.strip()
    return out


def parse_children(text: str) -> list[int]:
    """Parse /proc/<pid>/task/<tid>/children: space-separated pids."""
    return [int(p) for p in text.split()]


def socket_inode(link: str) -> int | None:
    """The inode of an fd link target like 'socket:[12345]', else None."""
    m = _SOCKET_LINK.match(link)
    return int(m.group(1)) if m else None


@dataclass(frozen=True)
class TcpSocket:
    """One row of /proc/net/tcp or /proc/net/tcp6."""

    local_ip: str
    local_port: int
    remote_ip: str
    remote_port: int
    state: str  # name from TCP_STATES, e.g. 'LISTEN'
    tx_queue: int
    rx_queue: int  # for a LISTEN socket: connections waiting in the accept queue
    uid: int
    inode: int


def _hex_ip(text: str) -> str:
    raw = bytes.fromhex(text)
    if len(raw) == 4:
        return ".".join(str(b) for b in raw[::-1])
    # IPv6: four 32-bit words, each in host (little-endian) order.
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))
    if words[:12] == b"\0" * 10 + b"\xff\xff":
        return ".".join(str(b) for b in words[12:])  # v4-mapped: report the v4 address
    return ":".join(words[i : i + 2].hex() for i in range(0, 16, 2))


def parse_net_tcp(text: str, local_port: int | None = None) -> list[TcpSocket]:
    """Parse /proc/net/tcp or /proc/net/tcp6 (the header line is skipped).

    With `local_port`, only rows bound to that local port: a cheap text test first, since a
    busy host lists tens of thousands of TIME_WAIT rows.
    """
    out: list[TcpSocket] = []
    needle = f":{local_port:04X} " if local_port is not None else ""
    for line in text.splitlines()[1:]:
        if needle not in line:
            continue
        f = line.split()
        if len(f) < 10:
            continue
        lip, lport = f[1].split(":")
        rip, rport = f[2].split(":")
        tx, rx = f[4].split(":")
        state = int(f[3], 16)
        if local_port is not None and int(lport, 16) != local_port:
            continue
        out.append(
            TcpSocket(
                local_ip=_hex_ip(lip),
                local_port=int(lport, 16),
                remote_ip=_hex_ip(rip),
                remote_port=int(rport, 16),
                state=TCP_STATES.get(state, hex(state)),
                tx_queue=int(tx, 16),
                rx_queue=int(rx, 16),
                uid=int(f[7]),
                inode=int(f[9]),
            )
        )
    return out


def parse_netstat(text: str, group: str = "TcpExt") -> dict[str, int]:
    """One group of /proc/net/netstat (or snmp): a line of names, then a line of values."""
    rows = [line.split() for line in text.splitlines() if line.startswith(f"{group}:")]
    if len(rows) < 2:
        return {}
    names, values = rows[0][1:], rows[1][1:]
    return {name: int(value) for name, value in zip(names, values, strict=False)}


def parse_smaps_rollup(text: str) -> dict[str, int]:
    """Parse /proc/<pid>/smaps_rollup into {field: kB}, e.g. {'Rss': 10240, 'Pss': 4096}."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        f = line.split()
        if len(f) >= 2 and f[0].endswith(":") and f[1].isdigit():
            out[f[0][:-1]] = int(f[1])
    return out


# ---------------------------------------------------------------- readers (a live /proc tree)


def _read(path: Path | str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except (FileNotFoundError, ProcessLookupError, NotADirectoryError):
        return None  # the process is gone


def all_pids(root: str = PROC) -> list[int]:
    return sorted(int(name) for name in os.listdir(root) if name.isdigit())


def at(root: str, rel: str, dir_fd: int | None) -> str:
    """The path of `rel` (e.g. "42/stat") in the /proc tree `root`, or `rel` itself when the
    tree is already open as `dir_fd`: pass both to os.open/os.readlink(..., dir_fd=dir_fd).

    Why a directory fd: a path from "/" checks the right to search "/" on every call, and a
    container's "/" may be FUSE (Docker's fuse-overlayfs storage driver), where a non-owner's
    check asks the FUSE daemon for the directory's ACL: a round trip to user space per call,
    ~17 µs of every readlink() in a locked-down view agent, against ~5 µs for the rest.
    """
    return rel if dir_fd is not None else f"{root}/{rel}"


def open_tree(root: str = PROC) -> int:
    """The /proc tree `root` as a directory fd, for the `dir_fd` of the readers below."""
    return os.open(root, os.O_RDONLY | os.O_DIRECTORY)


def stat(pid: int, root: str = PROC, dir_fd: int | None = None) -> Stat | None:
    # os.open/os.read on a plain string: this runs for every process, several times a second.
    try:
        fd = os.open(at(root, f"{pid}/stat", dir_fd), os.O_RDONLY, dir_fd=dir_fd)
    except (FileNotFoundError, ProcessLookupError, NotADirectoryError):
        return None  # the process is gone
    try:
        raw = os.read(fd, 4096)  # one line of at most ~1 kB
    except ProcessLookupError:
        return None
    finally:
        os.close(fd)
    return parse_stat(raw.decode(errors="replace")) if raw else None


def status(pid: int, root: str = PROC) -> dict[str, str] | None:
    text = _read(Path(root, str(pid), "status"))
    return parse_status(text) if text else None


def process_state(pid: int, root: str = PROC) -> str | None:
    """'R', 'S', 'Z', ... or None when no such process exists (zombies do exist)."""
    s = stat(pid, root)
    return s.state if s else None


def is_alive(
    pid: int, starttime: int | None = None, root: str = PROC, dir_fd: int | None = None
) -> bool:
    """True while the process exists, is not exiting and is not a zombie; starttime guards
    against pid reuse. An exiting process has begun to close its descriptors (a server's
    listener refuses connections) before its state turns Z."""
    s = stat(pid, root, dir_fd)
    if s is None or s.state in ("Z", "X") or s.exiting:
        return False
    return starttime is None or s.starttime == starttime


def has_exited(pid: int, starttime: int | None = None, root: str = PROC) -> bool:
    """True once its exit is done (a zombie, or gone): every descriptor it held is closed."""
    s = stat(pid, root)
    return (
        s is None or s.state in ("Z", "X") or (starttime is not None and s.starttime != starttime)
    )


def exists(pid: int, starttime: int | None = None, root: str = PROC) -> bool:
    """True while the kernel still has the process, zombies included."""
    s = stat(pid, root)
    return s is not None and (starttime is None or s.starttime == starttime)


def children_of(pid: int, root: str = PROC) -> list[int]:
    """Direct children, zombies included (a zombie keeps its parent until reaped).

    /proc/<pid>/task/*/children needs CONFIG_PROC_CHILDREN; without it, scan every stat's ppid.
    """
    task_dir = Path(root, str(pid), "task")
    files = list(task_dir.glob("*/children"))
    if files:
        kids: set[int] = set()
        for f in files:
            text = _read(f)
            if text:
                kids.update(parse_children(text))
        return sorted(kids)
    return sorted(_scan_children(pid, root))


def _scan_children(pid: int, root: str) -> set[int]:
    kids: set[int] = set()
    for p in all_pids(root):
        s = stat(p, root)
        if s is not None and s.ppid == pid:
            kids.add(p)
    return kids


def process_tree(pid: int, root: str = PROC) -> list[Stat]:
    """The stat of `pid` first, then of all its descendants, zombies included, in one scan.

    [] when `pid` is gone.
    """
    by_parent: dict[int, list[Stat]] = {}
    top: Stat | None = None
    for p in all_pids(root):
        s = stat(p, root)
        if s is None:
            continue
        if s.pid == pid:
            top = s
        by_parent.setdefault(s.ppid, []).append(s)
    if top is None:
        return []
    tree, todo = [top], [pid]
    while todo:
        kids = by_parent.get(todo.pop(), [])
        tree.extend(kids)
        todo.extend(k.pid for k in kids)
    return tree


def descendants_of(pid: int, root: str = PROC) -> list[int]:
    """Children, grandchildren, ... in one scan of /proc."""
    return sorted(s.pid for s in process_tree(pid, root)[1:])


def group_members(pgid: int, root: str = PROC) -> list[int]:
    """Every process (zombies included) in process group `pgid`."""
    out = []
    for p in all_pids(root):
        s = stat(p, root)
        if s is not None and s.pgrp == pgid:
            out.append(p)
    return out


def zombies_among(pids: Iterable[int], root: str = PROC) -> list[int]:
    return [p for p in pids if process_state(p, root) == "Z"]


def thread_count(pid: int, root: str = PROC) -> int | None:
    s = stat(pid, root)
    return s.num_threads if s else None


def tasks_of_uid(uid: int, root: str = PROC) -> int:
    """Threads whose real uid is `uid`: what RLIMIT_NPROC counts against."""
    total = 0
    for p in all_pids(root):
        st = status(p, root)
        if st and int(st.get("Uid", "-1 ").split()[0]) == uid:
            total += int(st.get("Threads", "1"))
    return total


def fd_targets(pid: int, root: str = PROC, dir_fd: int | None = None) -> dict[int, str]:
    """{fd: link target} for every open descriptor ({} once the process is gone).

    PermissionError when the descriptors are not ours to see. The fd directory is opened
    once and each link read relative to it (readlinkat): a fork server with 500 children has
    thousands of links, and each path walked from "/" costs a search check there (see `at`).
    Held open, the directory stays that process's: a pid reused meanwhile is not read.
    """
    out: dict[int, str] = {}
    try:
        fd_dir = os.open(at(root, f"{pid}/fd", dir_fd), os.O_RDONLY | os.O_DIRECTORY, dir_fd=dir_fd)
    except (FileNotFoundError, ProcessLookupError, NotADirectoryError):
        return out
    except PermissionError:
        # A process that is exiting hands its /proc files to root once its memory is gone: to
        # anyone else its fd directory is unreadable, through the teardown (milliseconds, more
        # for a large process) and as a zombie, yet it serves no one (exit closes every one).
        if not is_alive(pid, root=root, dir_fd=dir_fd):
            return out
        raise
    try:
        names = os.listdir(fd_dir)
        for name in names:
            try:
                out[int(name)] = os.readlink(name, dir_fd=fd_dir)
            except (FileNotFoundError, ProcessLookupError):
                continue  # closed meanwhile
    except (FileNotFoundError, ProcessLookupError):
        return {}  # gone while being read
    finally:
        os.close(fd_dir)
    return out


def open_fd_count(pid: int, root: str = PROC) -> int:
    return len(fd_targets(pid, root))


def socket_fds(pid: int, root: str = PROC, dir_fd: int | None = None) -> dict[int, int]:
    """{fd: socket inode} for the descriptors that are sockets."""
    return {
        fd: int(target[8:-1])
        for fd, target in fd_targets(pid, root, dir_fd).items()
        if target.startswith("socket:[")  # what socket_inode matches, without a regex per link
    }


def socket_inodes(pid: int, root: str = PROC) -> set[int]:
    return set(socket_fds(pid, root).values())


def tree_socket_inodes(pid: int, root: str = PROC) -> set[int]:
    """The sockets `pid` and all its descendants hold open (a fork server and its children)."""
    held = socket_inodes(pid, root)
    for kid in descendants_of(pid, root):
        held |= socket_inodes(kid, root)
    return held


def tcp_sockets(
    root: str = PROC, pid: int | str = "self", local_port: int | None = None
) -> list[TcpSocket]:
    """Rows of tcp and tcp6 as seen from the network namespace of `pid` (all, or one port's)."""
    out: list[TcpSocket] = []
    for name in ("tcp", "tcp6"):
        text = _read(Path(root, str(pid), "net", name))
        if text:
            out.extend(parse_net_tcp(text, local_port))
    return out


# ---------------------------------------------------------------- the same rows, by netlink

# A busy host's /proc/net/tcp lists tens of thousands of TIME_WAIT rows the kernel must format
# as text on every read. NETLINK_SOCK_DIAG (inet_diag, what `ss` uses) asks the kernel for the
# sockets of given states and ports only, of the reader's own network namespace.
NETLINK_SOCK_DIAG = 4
TCPDIAG_GETSOCK = 18
NLM_F_REQUEST, NLM_F_DUMP = 0x1, 0x300
NLMSG_ERROR, NLMSG_DONE = 2, 3
INET_DIAG_REQ_BYTECODE = 1
INET_DIAG_BC_JMP, INET_DIAG_BC_S_GE, INET_DIAG_BC_S_LE = 1, 2, 3
LISTEN_STATES = 1 << 0x0A
HELD_STATES = 0xFFE & ~(1 << 0x06)  # every TCP state but TIME_WAIT: a process holds none of those
_DIAG_MSG = struct.Struct("=BBBB2s2s16s16sI8sIIIII")  # struct inet_diag_msg (72 bytes)


def _port_bytecode(ports: list[int]) -> bytes:
    """inet_diag filter 'local port is one of ports': per port, sport >= p and sport <= p;
    a miss falls through to the next port's test, past the JMP that ends a match."""
    code = b""
    for i, port in enumerate(reversed(ports)):
        # [S_GE yes:next no:reject][0 0 p] [S_LE yes:accept no:reject][0 0 p]; reject: len + 4
        test = struct.pack("=BBHBBH", INET_DIAG_BC_S_GE, 8, 20, 0, 0, port)
        test += struct.pack("=BBHBBH", INET_DIAG_BC_S_LE, 8, 12, 0, 0, port)
        if i:  # an earlier port: on a match, jump over the ones after it
            test += struct.pack("=BBH", INET_DIAG_BC_JMP, 4, len(code) + 4)
        code = test + code
    return code


def _diag_address(family: int, raw: bytes) -> str:
    if family == socket.AF_INET:
        return socket.inet_ntop(socket.AF_INET, raw[:4])
    if raw[:12] == b"\0" * 10 + b"\xff\xff":
        return socket.inet_ntop(socket.AF_INET, raw[12:])  # v4-mapped: as parse_net_tcp does
    return ":".join(raw[i : i + 2].hex() for i in range(0, 16, 2))  # as parse_net_tcp does


def diag_tcp_sockets(states: int, ports: Iterable[int] = ()) -> list[TcpSocket]:
    """TCP sockets of this process's network namespace in `states` (a bit mask, 1 << state),
    bound to one of `ports` (all when empty), over netlink: the rows tcp_sockets would give.

    OSError when the kernel refuses (no netlink in a locked-down sandbox): read /proc instead.
    """
    wanted = sorted(set(ports))
    attr = b""
    if wanted:
        code = _port_bytecode(wanted)
        attr = struct.pack("=HH", 4 + len(code), INET_DIAG_REQ_BYTECODE) + code
    # TCPDIAG_GETSOCK with struct inet_diag_req (family AF_UNSPEC): IPv4 and IPv6 in one walk
    # of the kernel's table, which is shared by every namespace (a container's too).
    body = struct.pack("=BBBB48sII", socket.AF_UNSPEC, 0, 0, 0, bytes(48), states, 0) + attr
    head = struct.pack("=IHHII", 16 + len(body), TCPDIAG_GETSOCK, NLM_F_REQUEST | NLM_F_DUMP, 1, 0)
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_SOCK_DIAG) as nl:
        nl.settimeout(2.0)
        nl.send(head + body)
        return _diag_replies(nl, 1, TCPDIAG_GETSOCK)


def _diag_replies(nl: socket.socket, seq: int, kind_wanted: int) -> list[TcpSocket]:
    out: list[TcpSocket] = []
    while True:
        data = nl.recv(1 << 16)
        if not data:
            raise OSError("netlink closed before the end of the dump")
        offset = 0
        while offset + 16 <= len(data):
            length, kind, _, got_seq, _ = struct.unpack_from("=IHHII", data, offset)
            if length < 16:
                raise OSError("malformed netlink reply")
            if got_seq == seq:
                if kind == NLMSG_DONE:
                    return out
                if kind == NLMSG_ERROR:
                    errno = -struct.unpack_from("=i", data, offset + 16)[0]
                    raise OSError(errno, f"sock_diag refused: {os.strerror(errno)}")
                if kind == kind_wanted:
                    out.append(_diag_row(data, offset + 16))
            offset += (length + 3) & ~3


def _diag_row(data: bytes, at: int) -> TcpSocket:
    family, state, _, _, sport, dport, src, dst, _, _, _, rq, wq, uid, inode = (
        _DIAG_MSG.unpack_from(data, at)
    )
    listening = state == 0x0A  # inet_diag gives a listener's backlog as wqueue; /proc gives 0
    return TcpSocket(
        local_ip=_diag_address(family, src),
        local_port=int.from_bytes(sport, "big"),
        remote_ip=_diag_address(family, dst),
        remote_port=int.from_bytes(dport, "big"),
        state=TCP_STATES.get(state, hex(state)),
        tx_queue=0 if listening else wq,
        rx_queue=rq,
        uid=uid,
        inode=inode,
    )


def listening_sockets(port: int, root: str = PROC) -> list[TcpSocket]:
    return [s for s in tcp_sockets(root, local_port=port) if s.state == "LISTEN"]


def listening_inodes(port: int, root: str = PROC) -> set[int]:
    return {s.inode for s in listening_sockets(port, root)}


def accepted_inodes(port: int, root: str = PROC) -> set[int]:
    """Server-side ends of connections to `port` (local port == port, not listening).

    Client-side ends of a connection to `port` have remote_port == port and are not included.
    Inode 0 means no process holds the socket any more (TIME_WAIT and friends): left out.
    """
    return {
        s.inode for s in tcp_sockets(root, local_port=port) if s.state != "LISTEN" and s.inode != 0
    }


def listen_overflows(pid: int | str = "self", root: str = PROC) -> int | None:
    """Connection attempts dropped because a listen queue was full, since boot, in the network
    namespace of `pid` (TcpExt ListenOverflows; None once the process is gone)."""
    text = _read(Path(root, str(pid), "net", "netstat"))
    return parse_netstat(text).get("ListenOverflows") if text else None


def machine_ticks(root: str = PROC) -> tuple[int, int]:
    """(busy, total) CPU ticks of the whole machine since boot."""
    return parse_machine_stat(Path(root, "stat").read_text())


def held_connections(pid: int, port: int, root: str = PROC) -> int:
    """Connections accepted on `port` that `pid` or its descendants still hold open."""
    return len(accepted_inodes(port, root) & tree_socket_inodes(pid, root))


def memory_kb(pid: int, root: str = PROC) -> dict[str, int] | None:
    """Rss, Pss, ... in kB from smaps_rollup (None once the process is gone)."""
    text = _read(Path(root, str(pid), "smaps_rollup"))
    return parse_smaps_rollup(text) if text else None


def rss_kb(pid: int, root: str = PROC) -> int | None:
    m = memory_kb(pid, root)
    return m.get("Rss") if m else None


def pss_kb(pid: int, root: str = PROC) -> int | None:
    m = memory_kb(pid, root)
    return m.get("Pss") if m else None
