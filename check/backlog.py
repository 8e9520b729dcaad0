"""A crowd that could not get in: attempts the kernel turned away at a full listen queue.

listen(sock, 5) queues 5 connections that wait for accept(). Past that the kernel drops a
client's SYN, and the client tries again only 1 s, then 3 s, then 7 s later: a crowd on a
fast network trickles in at a few clients a second. The kernel counts every such drop
(TcpExt ListenOverflows, per network namespace); a crowd check reads it before and after.
"""

from __future__ import annotations

from check.target import Target
from probe import procfs

CONNECT_LIMIT_S = 10.0  # for a crowd to connect: a listen queue that drops SYNs shows in it
HINT_BACKLOG = (
    "a full listen queue makes the kernel drop a connection attempt, and the client retries "
    "only 1 s, then 3 s later: give listen() a backlog for a crowd (SOMAXCONN, not 5)"
)


class ListenQueue:
    """Counts the connection attempts turned away while a crowd connects (in the server's
    network namespace: on a host, other servers' drops in the same instants count too)."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.start = self._read()

    def _read(self) -> int | None:
        return procfs.listen_overflows(self.target.root_pid, self.target.proc_root)

    def overflows(self) -> int | None:
        """Drops since this was made (None when the counter cannot be read)."""
        now = self._read()
        return None if now is None or self.start is None else max(0, now - self.start)


def could_not_connect(missing: int, limit_s: float, overflows: int | None) -> str:
    """How many of a crowd could not connect, and why when the kernel says so."""
    said = f"{missing} could not connect within {limit_s:g} s"
    if overflows:
        said += f"; the listen queue was full: {overflows} connection attempts dropped"
    return said


def shortfall_hint(missing: int, overflows: int | None, otherwise: str) -> str:
    """The backlog's lesson when clients could not connect and the kernel dropped attempts;
    else the check's own."""
    return HINT_BACKLOG if missing and overflows else otherwise
