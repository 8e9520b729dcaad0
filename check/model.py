"""--model auto: a child per connection (fork), or one process serving all (select)."""

from __future__ import annotations

import contextlib
import time

from check.holders import live_children
from check.target import Target
from probe.sockets import connect, recv_exactly

PROBE_CONNECTIONS = 3
SETTLE_S = 1.0  # for the children to show when the echo did not come back


def decide_model(target: Target) -> tuple[str, str]:
    """Open a few connections, echo on each, and count the server's new live processes."""
    before = live_children(target)
    socks = []
    echoed = 0
    try:
        for _ in range(PROBE_CONNECTIONS):
            with contextlib.suppress(OSError):
                socks.append(connect(target.port, 5.0, target.host))
        for sock in socks:
            with contextlib.suppress(OSError):
                sock.sendall(b"?")
                echoed += recv_exactly(sock, 1, 1.0) == b"?"
        # Once each connection echoed, its server side is in place: a fork server's child
        # exists by then. Without the echo, give the children a moment to appear.
        deadline = time.monotonic() + (0.1 if echoed == len(socks) else SETTLE_S)
        while True:
            new = len(live_children(target) - before)
            if (socks and new >= len(socks)) or time.monotonic() >= deadline:
                break
            time.sleep(0.05)
    finally:
        for sock in socks:
            sock.close()
    if socks and new >= len(socks):
        return "fork", f"{len(socks)} connections made {new} new processes"
    return "select", f"{len(socks)} connections made {new} new processes: one process serves"
