"""--model auto: a child per connection (fork), or one process serving all (select)."""

from __future__ import annotations

import contextlib
import time

from check.holders import live_children
from check.target import Target
from probe.sockets import connect

PROBE_CONNECTIONS = 3
SETTLE_S = 2.0


def decide_model(target: Target) -> tuple[str, str]:
    """Open a few connections, echo on each, and count the server's new live processes."""
    before = live_children(target)
    socks = []
    try:
        for _ in range(PROBE_CONNECTIONS):
            with contextlib.suppress(OSError):
                socks.append(connect(target.port, 5.0, target.host))
        for sock in socks:
            with contextlib.suppress(OSError):
                sock.settimeout(2)
                sock.sendall(b"?")
                sock.recv(16)
        new = 0
        deadline = time.monotonic() + SETTLE_S
        while time.monotonic() < deadline:
            new = len(live_children(target) - before)
            if socks and new >= len(socks):
                break
            time.sleep(0.05)
    finally:
        for sock in socks:
            sock.close()
    if socks and new >= len(socks):
        return "fork", f"{len(socks)} connections made {new} new processes"
    return "select", f"{len(socks)} connections made {new} new processes: one process serves"
