"""A clean stop: SIGTERM with clients connected ends the server, and everything it started."""

from __future__ import annotations

import contextlib
import time

from check.context import Context
from check.holders import poll
from check.results import Outcome
from probe.sockets import recv_exactly

STOP_LIMIT_S = 2.0


def clean_stop(ctx: Context) -> Outcome:
    target = ctx.target
    if not target.can_signal:
        return Outcome.skip("skipped: the checker may not signal this server")
    socks = []
    try:
        for i in range(3):  # connected, each with a line sent: clients in the middle of it
            with contextlib.suppress(OSError):
                sock = ctx.connect()
                socks.append(sock)
                sock.sendall(f"client {i}\n".encode())
        for sock in socks:
            with contextlib.suppress(OSError):
                recv_exactly(sock, 9, 0.5)
        started = time.monotonic()
        status = target.terminate(STOP_LIMIT_S)
        took = time.monotonic() - started
        stopped = not target.alive()
        # Orphans are reparented and reaped by init: give that a moment before counting.
        left = poll(target.leftovers, lambda pids: not pids, 1.0) if stopped else []
    finally:
        for sock in socks:
            sock.close()
    figures = {
        "clients": len(socks),
        "exit_status": status,
        "seconds": round(took, 2),
        "left_running": len(left),
    }
    hint = (
        "catch SIGTERM: stop accepting, close the listener and the clients, end (and reap) "
        "the children, then exit 0"
    )
    if not stopped:
        return Outcome.fail(
            f"still running {STOP_LIMIT_S:g} s after SIGTERM with {len(socks)} clients",
            hint,
            **figures,
        )
    if left:
        return Outcome.fail(
            f"the server exited, but {len(left)} of its processes were left running",
            "children outlive their parent unless it ends them: on SIGTERM, signal the "
            "children, then wait for them",
            **figures,
        )
    if status is not None and status != 0:
        how = f"exit {status}" if status > 0 else f"killed by signal {-status}"
        return Outcome.fail(
            f"stopped in {took:.2f} s, but with {how}: a clean stop exits 0", hint, **figures
        )
    shown = "exit 0" if status == 0 else "exit status not visible from here"
    return Outcome.ok(f"SIGTERM with {len(socks)} clients: {shown} in {took:.2f} s", **figures)
