"""A server's process model at one instant: its processes, their states, who holds which socket.

This is what the notes draw on the whiteboard, read from /proc: the parent and its children
(or the one select process), each process's state (a zombie is 'Z' until its parent reaps it),
and each process's TCP sockets, the listening one and the connected ones. After fork() both
processes hold every socket until each closes the one it does not serve; a snapshot shows
exactly that. The checker's process-model checks and the live view both read these.

A process may exit between two reads of /proc: it is then simply not in the snapshot. A process
whose descriptors this reader may not see (another user's, without CAP_SYS_PTRACE) is listed
with `sockets_visible=False`, so a consumer can say what it cannot see instead of guessing.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

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
    role: str  # "parent" (the server's first process) or "child"
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


def _readable_socket_fds(pid: int, root: str) -> dict[int, int] | None:
    """{fd: inode} of a process's sockets; None when its descriptors are not ours to see."""
    try:
        os.listdir(Path(root, str(pid), "fd"))
    except PermissionError:
        return None
    except (FileNotFoundError, ProcessLookupError):
        return {}
    try:
        return procfs.socket_fds(pid, root)
    except PermissionError:
        return None


def take(root_pid: int, proc_root: str = procfs.PROC) -> ServerSnapshot:
    """The server whose first process is `root_pid`, with every descendant; empty if gone."""
    pids = [root_pid, *procfs.descendants_of(root_pid, proc_root)]
    # One read of the TCP tables, from the server's own network namespace.
    tcp = {row.inode: row for row in procfs.tcp_sockets(proc_root, pid=root_pid) if row.inode}
    processes = []
    for pid in pids:
        stat = procfs.stat(pid, proc_root)
        if stat is None:
            continue  # exited (and was reaped) between two reads
        fds = _readable_socket_fds(pid, proc_root)
        processes.append(
            ProcessView(
                pid=pid,
                ppid=stat.ppid,
                state=stat.state,
                role="parent" if pid == root_pid else "child",
                comm=stat.comm,
                sockets=_socket_views(fds or {}, tcp),
                sockets_visible=fds is not None,
            )
        )
    return ServerSnapshot(root=root_pid, processes=tuple(processes))
