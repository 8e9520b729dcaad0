"""The select model: one process serves every client, also past select()'s FD_SETSIZE."""

from __future__ import annotations

import time

from check.backlog import ListenQueue, could_not_connect, shortfall_hint
from check.context import Context
from check.holders import holders, sockets_hidden, tree
from check.results import Outcome
from probe.sessions import Crowd

FD_SETSIZE = 1024
PAST_FD_SETSIZE = 1100
CONNECT_S = 15.0  # for 1,100 clients to connect, some waiting in the backlog


def single_process(ctx: Context) -> Outcome:
    count = 20
    with ctx.echoed_clients(count) as socks:
        processes = [s for s in tree(ctx.target) if s.state not in ("Z", "X")]
        snap = ctx.target.snapshot()
        by_root = sum(1 for sock in socks if any(p.pid == snap.root for p in holders(snap, sock)))
    threads = sum(s.num_threads for s in processes)
    figures = {"clients": count, "processes": len(processes), "threads": threads}
    if len(processes) > 1:
        return Outcome.fail(
            f"{count} clients connected, {len(processes)} processes serving them",
            "a select server forks nothing: one process watches the listener and every "
            "client with select() and serves whichever is ready",
            **figures,
        )
    if not sockets_hidden(snap) and by_root < count:
        return Outcome.fail(
            f"the server process holds {by_root} of {count} connected clients",
            "every accepted client stays in the one process's watched set until it leaves",
            **figures,
        )
    extra = f", {threads} threads" if threads > 1 else ""
    return Outcome.ok(f"{count} clients served by one process{extra}", **figures)


def past_fd_setsize(ctx: Context) -> Outcome:
    count = PAST_FD_SETSIZE
    crowd = Crowd(ctx.port, size=64, host=ctx.host)
    queue = ListenQueue(ctx.target)
    started = time.monotonic()
    try:
        crowd.connect(count, limit_s=CONNECT_S)
        connected = len(crowd.socks)
        overflows = queue.overflows()
        crowd.send_all()
        # The served stay connected until no one else is being served, so the server holds as
        # many clients at once as it will take: past FD_SETSIZE unless it stops accepting.
        # (A crowd that hung up as it went could keep a careless server below 1024 by luck.)
        crowd.drive(quiet_s=1.0, limit_s=15.0, close_served=False)
        held = crowd.count("served")
        # Then they hang up, freeing places for those still waiting in the backlog.
        crowd.close(only="served")
        crowd.drive(quiet_s=3.0, limit_s=20.0, close_served=True)
    finally:
        crowd.close()
    took = time.monotonic() - started
    alive = ctx.target.alive()
    figures = {
        "clients": count,
        "connected": connected,
        "held_at_once": held,
        "served": crowd.count("served"),
        "refused": crowd.count("refused"),
        "waiting": crowd.count("pending"),
        "mismatched": crowd.count("mismatched"),
        "server_alive": alive,
        "seconds": round(took, 1),
        "listen_overflows": overflows,
    }
    hint = (
        f"select() watches descriptors below FD_SETSIZE ({FD_SETSIZE}) only: stop accepting "
        "while the next descriptor would pass it (new clients wait in the listen backlog) "
        "and accept again as clients leave; or use poll()/epoll, which have no such limit"
    )
    if not alive:
        return Outcome.fail(
            f"the server died with {count} clients connecting at once", hint, **figures
        )
    if crowd.count("served") < count:
        return Outcome.fail(
            f"{crowd.count('served')} of {count} clients at once were served "
            f"({crowd.count('refused')} refused, {crowd.count('pending')} still waiting, "
            f"{could_not_connect(count - connected, CONNECT_S, overflows)})",
            shortfall_hint(count - connected, overflows, hint),
            **figures,
        )
    return Outcome.ok(
        f"{count} clients at once: all served ({held} held at once), in {took:.1f} s", **figures
    )
