"""A server's process model at one instant: its processes, their states, who holds which socket.

This is what the notes draw on the whiteboard, read from /proc: the parent and its children
(or the one select process), each process's state (a zombie is 'Z' until its parent reaps it),
and each process's TCP sockets, the listening one and the connected ones. After fork() both
processes hold every socket until each closes the one it does not serve; a snapshot shows
exactly that. The checker's process-model checks and the live view both read these.

A process may exit between two reads of /proc: it is then simply not in the snapshot. A zombie
holds no descriptors (its files were closed when it exited), so its fd directory is not read.
A process whose descriptors this reader may not see (another user's, without CAP_SYS_PTRACE) is
listed with `sockets_visible=False`, so a consumer can say what it cannot see instead of guessing.

`servers()` finds every server in a /proc tree (each process holding a listening TCP socket its
parent does not hold: a break-it server started beside the real one is a server of its own);
`python3 -m probe.snapshot` prints them as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from probe import procfs

STATE_NAMES = {
    "R": "running",
    "S": "sleeping",
    "D": "disk wait",
    "Z": "zombie",
    "T": "stopped",
    "t": "traced",
    "X": "dead",
    "I": "idle",
}


@dataclass(frozen=True)
class SocketView:
    kind: str  # "listen" or "connected"
    local: str  # "ip:port"
    peer: str | None  # "ip:port" for a connected socket
    state: str  # TCP state name, e.g. "ESTABLISHED", "CLOSE_WAIT"
    fd: int
    inode: int

    def as_json(self) -> dict[str, object]:
        return {"kind": self.kind, "local": self.local, "peer": self.peer, "state": self.state}


@dataclass(frozen=True)
class ProcessView:
    pid: int
    ppid: int
    state: str  # one letter from /proc/<pid>/stat: 'R', 'S', 'Z', ...
    role: str  # "parent" (the server's first process), "child", or "zombie" (an exited child)
    comm: str
    sockets: tuple[SocketView, ...] = ()
    sockets_visible: bool = True

    @property
    def state_name(self) -> str:
        return STATE_NAMES.get(self.state, self.state)

    @property
    def zombie(self) -> bool:
        return self.state == "Z"

    def holds_listener(self) -> bool:
        return any(s.kind == "listen" for s in self.sockets)

    def connected(self) -> list[SocketView]:
        return [s for s in self.sockets if s.kind == "connected"]

    def as_json(self) -> dict[str, object]:
        return {
            "pid": self.pid,
            "ppid": self.ppid,
            "state": self.state_name,
            "role": self.role,
            "comm": self.comm,
            "sockets_visible": self.sockets_visible,
            "sockets": [s.as_json() for s in self.sockets],
        }


@dataclass(frozen=True)
class ServerSnapshot:
    root: int
    processes: tuple[ProcessView, ...] = field(default_factory=tuple)
    argv: tuple[str, ...] = ()  # the first process's command line ((), once it is gone)

    @property
    def model(self) -> str:
        """'fork', 'select', 'epoll' for `python3 -m server MODEL`; else guessed from the tree."""
        argv = list(self.argv)
        for i in range(len(argv) - 2):
            if argv[i : i + 2] == ["-m", "server"]:
                return argv[i + 2]
        return "fork" if self.children else "single process"

    def option(self, name: str) -> str | None:
        """The value of `--name VALUE` or `--name=VALUE` on the command line, if given."""
        argv = list(self.argv)
        for i, arg in enumerate(argv):
            if arg == name and i + 1 < len(argv):
                return argv[i + 1]
            if arg.startswith(name + "="):
                return arg.partition("=")[2]
        return None

    def flags(self) -> list[str]:
        """The break-it switches it runs with (--no-reap, --child-keeps-listener, ...)."""
        return [a for a in self.argv if a in BREAK_IT_FLAGS]

    def listeners(self) -> list[SocketView]:
        parent = self.parent
        return [s for s in parent.sockets if s.kind == "listen"] if parent else []

    @property
    def alive(self) -> bool:
        return any(p.pid == self.root for p in self.processes)

    @property
    def parent(self) -> ProcessView | None:
        return next((p for p in self.processes if p.pid == self.root), None)

    @property
    def children(self) -> list[ProcessView]:
        return [p for p in self.processes if p.pid != self.root]

    def live_children(self) -> list[ProcessView]:
        return [p for p in self.children if not p.zombie]

    def zombies(self) -> list[ProcessView]:
        return [p for p in self.processes if p.zombie]

    def as_json(self) -> list[dict[str, object]]:
        return [p.as_json() for p in self.processes]


BREAK_IT_FLAGS = ("--no-reap", "--child-keeps-listener", "--parent-keeps-client")


def _address(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def _socket_views(fds: dict[int, int], tcp: dict[int, procfs.TcpSocket]) -> tuple[SocketView, ...]:
    views = []
    for fd, inode in sorted(fds.items()):
        row = tcp.get(inode)
        if row is None:  # a UNIX socket (the signal self-pipe) or UDP: not part of the lesson
            continue
        listening = row.state == "LISTEN"
        views.append(
            SocketView(
                kind="listen" if listening else "connected",
                local=_address(row.local_ip, row.local_port),
                peer=None if listening else _address(row.remote_ip, row.remote_port),
                state=row.state,
                fd=fd,
                inode=inode,
            )
        )
    return tuple(views)


def _readable_socket_fds(pid: int, root: str, dir_fd: int | None) -> dict[int, int] | None:
    """{fd: inode} of a process's sockets; None when its descriptors are not ours to see."""
    try:
        return procfs.socket_fds(pid, root, dir_fd)
    except PermissionError:
        return None


# A process's command line does not change while it runs one program: read once per process,
# named by (pid, starttime) since a pid may be reused, and comm, which an exec changes.
_ARGV_CACHE: dict[tuple[str, int, int, str], tuple[str, ...]] = {}
_ARGV_CACHE_MAX = 4096  # dropped whole when full: nothing grows over a day of demos


def _argv(
    pid: int, root: str, st: procfs.Stat | None = None, dir_fd: int | None = None
) -> tuple[str, ...]:
    key = (root, pid, st.starttime, st.comm) if st is not None else None
    if key is not None and key in _ARGV_CACHE:
        return _ARGV_CACHE[key]
    raw = _read_bytes(root, f"{pid}/cmdline", dir_fd)
    if raw is None:
        return ()
    argv = tuple(raw.decode(errors="replace").split("\0")[:-1])
    if key is not None and argv:  # a zombie's is empty, and so is a gone process's
        if len(_ARGV_CACHE) >= _ARGV_CACHE_MAX:
            _ARGV_CACHE.clear()
        _ARGV_CACHE[key] = argv
    return argv


def _read_bytes(root: str, rel: str, dir_fd: int | None) -> bytes | None:
    try:
        fd = os.open(procfs.at(root, rel, dir_fd), os.O_RDONLY, dir_fd=dir_fd)
    except OSError:
        return None  # gone, or not ours to read
    try:
        with open(fd, "rb") as f:
            return f.read()
    except OSError:
        return None


def _read_text(root: str, rel: str, dir_fd: int | None) -> str:
    raw = _read_bytes(root, rel, dir_fd)
    return raw.decode(errors="replace") if raw else ""  # gone, or not ours: no rows


def _own_netns(root: str) -> str | None:
    """This process's network namespace, when `root` is the live /proc (netlink sees only it)."""
    if os.path.realpath(root) != procfs.PROC:
        return None
    try:
        return os.readlink("/proc/self/ns/net")
    except OSError:
        return None


def _body(text: str) -> str:
    return text.split("\n", 1)[1] if "\n" in text else ""  # the rows, without the header


class _NetTables:
    """One network namespace's /proc/<pid>/net tables, read as far as one pass needs them.

    Each read of tcp or tcp6 walks the kernel's whole TCP hash table (shared by every
    namespace: ~5 ms a walk here, two walks a file) however few rows it has, so tcp6 is read
    only when a socket asked about is in neither tcp nor unix. A socket is in one table only,
    so the rows found are the ones reading both files would give.
    """

    def __init__(self, read: Callable[[int, str], str], pid: int) -> None:
        self._read = read
        self.v4 = _body(read(pid, "tcp"))
        rows = (ln.split() for ln in self.v4.splitlines())
        self.v4_inodes = {int(f[9]) for f in rows if len(f) > 9 and f[9].isdigit()}
        self.v6: str | None = None
        self._unix: set[int] | None = None

    def cover(self, pid: int, inodes: Iterable[int]) -> None:
        """Read tcp6 (from `pid`, alive: its descriptors were just read) if one of `inodes`
        may be an IPv6 TCP socket."""
        if self.v6 is not None:
            return
        missing = [i for i in inodes if i not in self.v4_inodes]
        if not missing:
            return
        if self._unix is None:  # the signal self-pipe: a UNIX socket each server holds
            rows = (ln.split() for ln in _body(self._read(pid, "unix")).splitlines())
            self._unix = {int(f[6]) for f in rows if len(f) > 6 and f[6].isdigit()}
        if any(i not in self._unix for i in missing):
            self.v6 = _body(self._read(pid, "tcp6"))

    def text(self) -> str:
        return self.v4 + "\n" + self.v6 if self.v6 else self.v4


class _Reader:
    """One pass over a /proc tree: every stat read once, TCP tables once per network namespace.

    The tree is opened once and every file read relative to it (see procfs.at): a context
    manager, so that directory is closed when the pass is done.
    """

    def __init__(self, proc_root: str) -> None:
        self.root = proc_root
        self.dir_fd = procfs.open_tree(proc_root)
        try:
            self._scan()
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> _Reader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self.dir_fd >= 0:
            os.close(self.dir_fd)
            self.dir_fd = -1

    def _scan(self) -> None:
        proc_root = self.root
        self.stats: dict[int, procfs.Stat] = {}
        self.by_parent: dict[int, list[int]] = {}
        for pid in procfs.all_pids(proc_root):
            st = procfs.stat(pid, proc_root, self.dir_fd)
            if st is None:
                continue  # exited between the listing and the read
            self.stats[pid] = st
            self.by_parent.setdefault(st.ppid, []).append(pid)
        self._tables: dict[str, _NetTables] = {}
        self._netns_of: dict[int, str] = {}
        self._rows: dict[tuple[str, frozenset[int] | None, bool], dict[int, procfs.TcpSocket]] = {}
        self._fds: dict[int, dict[int, int] | None] = {}
        self._own_netns = _own_netns(proc_root)
        self._roots: list[int] | None = None

    def _netns(self, pid: int) -> str:
        if pid not in self._netns_of:
            try:
                self._netns_of[pid] = os.readlink(f"{pid}/ns/net", dir_fd=self.dir_fd)
            except OSError:
                self._netns_of[pid] = f"pid {pid}"
        return self._netns_of[pid]

    def _read_net(self, pid: int, name: str) -> str:
        return _read_text(self.root, f"{pid}/net/{name}", self.dir_fd)

    def _diag(self, netns: str, wanted: frozenset[int] | None) -> list[procfs.TcpSocket] | None:
        """The rows from netlink, filtered by state and port in the kernel; None when netlink
        cannot answer for `netns` (another namespace, a fake /proc, or refused)."""
        if netns != self._own_netns:
            return None
        try:
            if wanted is None:
                return procfs.diag_tcp_sockets(procfs.LISTEN_STATES)
            if not wanted:
                return []
            return procfs.diag_tcp_sockets(procfs.HELD_STATES, wanted)
        except OSError:
            self._own_netns = None  # refused (a locked-down sandbox): /proc/net/tcp from now on
            return None

    @staticmethod
    def _table_rows(text: str, wanted: frozenset[int] | None) -> list:
        needles = [f":{p:04X} " for p in wanted] if wanted is not None else [":0000 0A "]
        if len(needles) == 1:  # the usual case: one port, one substring test per row
            lines = [ln for ln in text.splitlines() if needles[0] in ln]
        else:
            lines = [ln for ln in text.splitlines() if any(n in ln for n in needles)]
        return procfs.parse_net_tcp("header\n" + "\n".join(lines))

    def tcp(
        self, pid: int, ports: Iterable[int] | None = None, inodes: Iterable[int] = ()
    ) -> dict[int, procfs.TcpSocket]:
        """{inode: row} of the listening sockets in `pid`'s network namespace, or of every
        socket bound to one of `ports` there; complete for the sockets `inodes` (those of
        the descriptors about to be looked up).

        Over netlink when `pid` shares this reader's network namespace: the kernel sends only
        the listeners, or only the sockets on `ports`. Else /proc/<pid>/net/tcp (and tcp6 if
        `inodes` need it, see _NetTables) is read once per namespace and only the rows asked
        for are parsed: a busy host lists tens of thousands of TIME_WAIT rows that are
        nobody's lesson.
        """
        netns = self._netns(pid)
        wanted = frozenset(ports) if ports is not None else None
        if netns not in self._tables:
            key = (netns, wanted, True)
            if key not in self._rows:
                rows = self._diag(netns, wanted)
                if rows is not None:
                    self._rows[key] = self._kept(rows, wanted)
            if key in self._rows:
                return self._rows[key]
            self._tables[netns] = _NetTables(self._read_net, pid)
        tables = self._tables[netns]
        tables.cover(pid, inodes)
        key = (netns, wanted, tables.v6 is not None)
        if key not in self._rows:
            self._rows[key] = self._kept(self._table_rows(tables.text(), wanted), wanted)
        return self._rows[key]

    @staticmethod
    def _kept(
        rows: list[procfs.TcpSocket], wanted: frozenset[int] | None
    ) -> dict[int, procfs.TcpSocket]:
        return {
            r.inode: r
            for r in rows
            if r.inode and (r.local_port in wanted if wanted is not None else r.state == "LISTEN")
        }

    def fds(self, pid: int) -> dict[int, int] | None:
        if pid not in self._fds:
            st = self.stats.get(pid)
            # A zombie's descriptors were closed when it exited: there is nothing to read.
            zombie = st is not None and st.state in ("Z", "X")
            self._fds[pid] = {} if zombie else _readable_socket_fds(pid, self.root, self.dir_fd)
        return self._fds[pid]

    def listen_inodes(self, pid: int) -> set[int]:
        fds = self.fds(pid) or {}
        if not fds:
            return set()
        tcp = self.tcp(pid, inodes=fds.values())
        return {i for i in fds.values() if i in tcp and tcp[i].state == "LISTEN"}

    def tree(self, root_pid: int, stop: Iterable[int] = ()) -> list[int]:
        """`root_pid` and its descendants, not descending into the processes in `stop`."""
        stop = set(stop)
        out, todo = [root_pid], [root_pid]
        while todo:
            for kid in sorted(self.by_parent.get(todo.pop(), [])):
                if kid not in stop:
                    out.append(kid)
                    todo.append(kid)
        return out

    def snapshot(self, root_pid: int, stop: Iterable[int] = ()) -> ServerSnapshot:
        if root_pid not in self.stats:
            return ServerSnapshot(root=root_pid)
        held = self.listen_inodes(root_pid)
        listeners = self.tcp(root_pid, inodes=held)
        ports = {listeners[i].local_port for i in held}
        tree = self.tree(root_pid, stop)
        inodes = {i for pid in tree for i in (self.fds(pid) or {}).values()}
        tcp = self.tcp(root_pid, ports, inodes)
        processes = []
        for pid in tree:
            st = self.stats[pid]
            fds = self.fds(pid)
            role = "parent" if pid == root_pid else "zombie" if st.state == "Z" else "child"
            processes.append(
                ProcessView(
                    pid=pid,
                    ppid=st.ppid,
                    state=st.state,
                    role=role,
                    comm=st.comm,
                    sockets=_socket_views(fds or {}, tcp),
                    sockets_visible=fds is not None,
                )
            )
        argv = _argv(root_pid, self.root, self.stats[root_pid], self.dir_fd)
        return ServerSnapshot(root=root_pid, processes=tuple(processes), argv=argv)

    def server_roots(self, exclude: Iterable[int] = ()) -> list[int]:
        """Processes holding a listening TCP socket their parent does not hold."""
        skip = set(exclude)
        if not skip and self._roots is not None:
            return self._roots
        holders = {
            pid: inodes
            for pid in self.stats
            if pid not in skip and (inodes := self.listen_inodes(pid))
        }
        roots = sorted(
            pid
            for pid, inodes in holders.items()
            if not inodes & holders.get(self.stats[pid].ppid, set())
        )
        if not skip:
            self._roots = roots  # one pass answers every port asked about
        return roots

    def holder_of_port(self, port: int) -> int | None:
        """The first process (lowest in the tree) holding the socket listening on `port`.

        Finding it means reading every process's descriptors; the one found last time is
        asked first: if that same process (pid and start time) still holds a listener on
        `port` that its parent does not hold, it is still the first holder.
        """
        key = (self.root, port)
        known = _HOLDERS.get(key)
        if known is not None and self._still_first_holder(*known, port):
            return known[0]
        for pid in self.server_roots():
            if self._listens_on(pid, port):
                if len(_HOLDERS) >= _HOLDERS_MAX:
                    _HOLDERS.clear()
                _HOLDERS[key] = (pid, self.stats[pid].starttime)
                return pid
        _HOLDERS.pop(key, None)
        return None

    def _listens_on(self, pid: int, port: int) -> set[int]:
        held = self.listen_inodes(pid)
        tcp = self.tcp(pid, inodes=held)
        return {i for i in held if tcp[i].local_port == port}

    def _still_first_holder(self, pid: int, starttime: int, port: int) -> bool:
        st = self.stats.get(pid)
        if st is None or st.starttime != starttime or st.state in ("Z", "X"):
            return False
        held = self._listens_on(pid, port)
        return bool(held) and not held & self.listen_inodes(st.ppid)


# (proc root, port) -> (pid, starttime) of the process found listening there last time.
_HOLDERS: dict[tuple[str, int], tuple[int, int]] = {}
_HOLDERS_MAX = 1024


def take(root_pid: int, proc_root: str = procfs.PROC) -> ServerSnapshot:
    """The server whose first process is `root_pid`, with every descendant; empty if gone."""
    with _Reader(proc_root) as reader:
        return reader.snapshot(root_pid)


def servers(
    proc_root: str = procfs.PROC, exclude: Iterable[int] = (), roots: Iterable[int] = ()
) -> list[ServerSnapshot]:
    """Every server in the tree (or the ones whose first processes are `roots`), in one pass.

    A server's tree stops at another server's first process: a break-it server started from a
    shell inside the real server's container is listed once, as itself.
    """
    with _Reader(proc_root) as reader:
        found = list(roots) or reader.server_roots(exclude)
        return [reader.snapshot(pid, stop=found) for pid in found]


def on_ports(
    ports: Iterable[int], proc_root: str = procfs.PROC
) -> dict[int, ServerSnapshot | None]:
    """{port: the server listening on it, or None}, in this reader's network namespace, found
    afresh on every call, so a restarted server is found under its new pid."""
    with _Reader(proc_root) as reader:
        roots = {port: reader.holder_of_port(port) for port in ports}
        found = [pid for pid in roots.values() if pid is not None]
        return {
            port: None if pid is None else reader.snapshot(pid, stop=found)
            for port, pid in roots.items()
        }


def as_json(snapshot: ServerSnapshot) -> dict[str, object]:
    """One server as the live view and `python3 -m probe.snapshot` show it."""
    listeners = snapshot.listeners()
    return {
        "root": snapshot.root,
        "model": snapshot.model,
        "listen": [s.local for s in listeners],
        "port": int(listeners[0].local.rpartition(":")[2]) if listeners else None,
        "flags": snapshot.flags(),
        "argv": list(snapshot.argv),
        "processes": snapshot.as_json(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python3 -m probe.snapshot",
        description="Print the servers in this /proc (processes, states, sockets) as JSON.",
    )
    parser.add_argument("--pid", type=int, action="append", default=[], help="a server's pid")
    parser.add_argument("--port", type=int, action="append", default=[], help="a listening port")
    parser.add_argument("--proc", default=procfs.PROC, help="the /proc tree to read")
    args = parser.parse_args(argv)
    if args.port:
        found = [s for s in on_ports(args.port, args.proc).values() if s is not None]
    else:
        found = servers(args.proc, exclude=[os.getpid()], roots=args.pid)
    json.dump({"servers": [as_json(s) for s in found]}, sys.stdout, indent=1)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
