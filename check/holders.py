"""Who holds what: the server's end of each of our connections, its processes and zombies."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import TypeVar

from check.target import Target
from probe import procfs
from probe.snapshot import ProcessView, ServerSnapshot

T = TypeVar("T")


def peer_text(sock: socket.socket) -> str:
    """Our end's address as the server's socket names its peer ('ip:port')."""
    host, port = sock.getsockname()[:2]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def holders(snap: ServerSnapshot, sock: socket.socket) -> list[ProcessView]:
    """The server's processes holding the server end of our connection `sock`."""
    peer = peer_text(sock)
    return [p for p in snap.processes if any(s.peer == peer for s in p.connected())]


def sockets_hidden(snap: ServerSnapshot) -> bool:
    """True when some of the server's processes' descriptors are not ours to read."""
    return any(not p.sockets_visible for p in snap.processes)


def poll(probe: Callable[[], T], done: Callable[[T], bool], timeout: float) -> T:
    """Call `probe` until `done(value)` or `timeout` passes; the last value either way."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if done(value) or time.monotonic() >= deadline:
            return value
        time.sleep(0.02)


# The process tree alone is cheap (one stat per process); a snapshot also reads the TCP table,
# which on a busy host lists tens of thousands of TIME_WAIT rows. Count processes from this.


def tree(target: Target) -> list[procfs.Stat]:
    """The server's root first, then every descendant, zombies included ([] once gone)."""
    return procfs.process_tree(target.root_pid, target.proc_root)


def live_children(target: Target) -> set[int]:
    return {s.pid for s in tree(target)[1:] if s.state not in ("Z", "X")}


def zombie_count(target: Target) -> int:
    return sum(1 for s in tree(target)[1:] if s.state == "Z")
