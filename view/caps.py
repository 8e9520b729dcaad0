"""How many clients a multiplexing server may hold: its cap and select()'s FD_SETSIZE.

The one place the view imports the servers' constants.
"""

from __future__ import annotations

from pathlib import Path

from server.multiplexing import RESERVED_FDS
from server.selecting import FD_SETSIZE

__all__ = ["FD_SETSIZE", "client_cap"]


def open_files_limit(pid: int, proc_root: str = "/proc") -> int | None:
    """The soft RLIMIT_NOFILE of a process, from /proc/<pid>/limits."""
    try:
        text = Path(proc_root, str(pid), "limits").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("Max open files"):
            soft = line.split()[3]
            return None if soft == "unlimited" else int(soft)
    return None


def client_cap(model: str, max_clients: str | None, nofile: int | None) -> int | None:
    """The server's own rule: --max-clients, at most the descriptor ceiling minus the reserve."""
    ceiling = nofile
    if model == "select":
        ceiling = FD_SETSIZE if ceiling is None else min(ceiling, FD_SETSIZE)
    if ceiling is None:
        return None
    allowed = max(1, ceiling - RESERVED_FDS)
    if max_clients and max_clients.isdigit():
        return min(int(max_clients), allowed)
    return allowed
