"""Fault-suite plumbing: what the logs say about children, and idle checks.

Servers come from the shared fixtures in tests/host/fixtures.py (server_factory, many_fds).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable

from probe import procfs
from probe.footprint import Footprint, footprint
from tests.host.support import ServerProcess, wait_until

StartServer = Callable[..., ServerProcess]

NEW_CHILD = re.compile(r"new client connected\.\.\. \S+ -> child (?P<pid>\d+)")
REMOVED = re.compile(r"removed proc id: (?P<pid>\d+) \((?P<how>.*)\)$")


def forked_children(server: ServerProcess, start: int = 0) -> list[int]:
    lines = server.log_lines()[start:]
    return [int(m["pid"]) for line in lines if (m := NEW_CHILD.search(line))]


def reaped_children(server: ServerProcess, start: int = 0) -> dict[int, str]:
    """pid -> how it ended ('exit 0', 'killed by signal 9 (SIGKILL)'), from the log."""
    lines = server.log_lines()[start:]
    return {int(m["pid"]): m["how"] for line in lines if (m := REMOVED.search(line))}


def server_holds_clients(server: ServerProcess) -> int:
    """Client connections the server process (or its children) still hold open."""
    return procfs.held_connections(server.pid, server.port)


def wait_idle(server: ServerProcess, timeout: float = 20.0) -> tuple[Footprint, float]:
    """Wait until the server has no child and holds no client socket; (footprint, seconds)."""
    started = time.monotonic()

    def idle() -> bool:
        return not procfs.descendants_of(server.pid) and server_holds_clients(server) == 0

    wait_until(idle, timeout, interval=0.05, what=f"the {server.model} server to be idle")
    return footprint(server.pid), time.monotonic() - started
