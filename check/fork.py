"""The fork model: a child per client, children reaped, each side closing what it does not serve.

Each check reads the server's process tree and descriptors in /proc (probe.snapshot) while
its own clients are connected, and finds the server's end of each connection by its peer
address, so earlier checks' leftovers do not count against it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import time

from check.backlog import CONNECT_LIMIT_S, ListenQueue, could_not_connect, shortfall_hint
from check.context import Context
from check.holders import holders, live_children, poll, sockets_hidden, zombie_count
from check.results import Outcome
from probe.sessions import Crowd
from probe.snapshot import ProcessView, ServerSnapshot

CLIENTS = 5
SETTLE_S = 2.0  # how long exited children may take to be reaped, under a loaded CPU
HIDDEN = "skipped: the server's descriptors are not readable here (another user's processes)"
HINT_REAP = (
    "an exited child stays a zombie until its parent waits for it: handle SIGCHLD with a loop "
    "on waitpid(-1, WNOHANG) until it returns 0"
)


def _served_by(
    ctx: Context, socks: list[socket.socket], timeout: float = SETTLE_S
) -> tuple[ServerSnapshot, list[list[ProcessView]]]:
    """A snapshot once every connection has a holder among the children (or `timeout`)."""

    def read() -> tuple[ServerSnapshot, list[list[ProcessView]]]:
        snap = ctx.target.snapshot()
        return snap, [holders(snap, sock) for sock in socks]

    def done(value: tuple[ServerSnapshot, list[list[ProcessView]]]) -> bool:
        snap, held = value
        return all(any(p.pid != snap.root for p in h) for h in held)

    return poll(read, done, timeout)


def _zombies(ctx: Context) -> int:
    return zombie_count(ctx.target)


def one_child_per_client(ctx: Context) -> Outcome:
    with ctx.echoed_clients(CLIENTS) as socks:
        snap, held = _served_by(ctx, socks)
    if sockets_hidden(snap):
        return Outcome.skip(HIDDEN)
    serving = [{p.pid for p in h if p.pid != snap.root} for h in held]
    by_parent_only = sum(1 for h, kids in zip(held, serving, strict=True) if h and not kids)
    children = set().union(*serving)
    figures = {
        "clients": CLIENTS,
        "serving_children": len(children),
        "served_by_parent": by_parent_only,
        "live_children": len(snap.live_children()),
    }
    if by_parent_only or not all(serving):
        return Outcome.fail(
            f"{CLIENTS} clients connected, {len(children)} of them served by a child of "
            f"their own ({by_parent_only} by the parent itself)",
            "the parent only accepts: fork() after each accept() and let the child serve "
            "that client, so a slow client holds up no one",
            **figures,
        )
    if len(children) < CLIENTS:
        return Outcome.fail(
            f"{CLIENTS} clients connected, served by {len(children)} children",
            "one child per connection: each child serves the client it was forked for",
            **figures,
        )
    return Outcome.ok(f"{CLIENTS} clients, {CLIENTS} children, one each", **figures)


def _new_child(ctx: Context, before: set[int]) -> set[int]:
    """The children that appeared since `before` (a client was just served)."""
    return poll(lambda: live_children(ctx.target) - before, bool, 1.0)


def _settled(ctx: Context) -> int:
    """The zombie count once earlier checks' children have all exited (or SETTLE_S passed)."""
    poll(lambda: live_children(ctx.target), lambda kids: not kids, SETTLE_S)
    return _zombies(ctx)


def reaping(ctx: Context) -> Outcome:
    # Children of the previous checks may still be exiting; counted before they are done, their
    # zombies would be blamed on the exits this check makes one at a time.
    before = _settled(ctx)
    served: set[int] = set()
    figures: dict[str, object] = {"clients": CLIENTS, "zombies_before": before}
    for n in range(1, CLIENTS + 1):
        kids = live_children(ctx.target)
        with ctx.echoed_clients(1):
            new = _new_child(ctx, kids)
        served |= new
        # One exit at a time, each with a SIGCHLD of its own: the next client waits for it.
        poll(lambda gone=new: live_children(ctx.target) & gone, lambda alive: not alive, SETTLE_S)
        left = poll(lambda: _zombies(ctx), lambda z: z <= before, SETTLE_S)
        figures["zombies"] = left
        if left > before:
            return Outcome.fail(
                f"{left - before} zombies {SETTLE_S:g} s after client {n} of {CLIENTS} left "
                "(clients leave one by one)",
                HINT_REAP,
                **figures,
            )
    if not served:
        return Outcome.skip("skipped: no child served a client (see one-child-per-client)")
    if not ctx.target.can_signal:
        return Outcome.ok(
            f"{CLIENTS} clients left, every child reaped (SIGKILL part skipped: no signals)",
            **figures,
        )
    kids = live_children(ctx.target)
    with ctx.echoed_clients(1):
        new = _new_child(ctx, kids)
        for pid in new:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        left = poll(lambda: _zombies(ctx), lambda z: z <= before, SETTLE_S)
    figures["killed"] = len(new)
    figures["zombies"] = left
    if left > before:
        return Outcome.fail(
            f"a child killed with SIGKILL is still a zombie after {SETTLE_S:g} s",
            HINT_REAP + " (a child that dies of a signal sends SIGCHLD too)",
            **figures,
        )
    extra = f" ({before} zombies from earlier bursts remain)" if before else ""
    return Outcome.ok(
        f"{CLIENTS} clients left one by one and a child killed with SIGKILL: all reaped{extra}",
        **figures,
    )


def reaping_burst(ctx: Context) -> Outcome:
    count = ctx.scale(210, 200)
    before = _zombies(ctx)
    crowd = Crowd(ctx.port, size=64, host=ctx.host)
    queue = ListenQueue(ctx.target)
    try:
        crowd.connect(count, limit_s=CONNECT_LIMIT_S)
        overflows = queue.overflows()
        crowd.send_all()
        crowd.drive(quiet_s=3.0, limit_s=15.0, close_served=False)
        served = crowd.count("served")
        live = poll(lambda: len(live_children(ctx.target)), lambda n: n >= served, SETTLE_S)
    finally:
        crowd.close()  # every client hangs up in the same instant
    closed_at = time.monotonic()
    time.sleep(1.0)
    zombies = _zombies(ctx)
    left = poll(lambda: _zombies(ctx), lambda z: z <= before, SETTLE_S - 1.0)
    waited = time.monotonic() - closed_at
    figures = {
        "clients": count,
        "served": served,
        "children_seen": live,
        "zombies_after_1s": max(0, zombies - before),
        "zombies": max(0, left - before),
        "waited_s": round(waited, 1),
        "listen_overflows": overflows,
    }
    # The zombies first: a burst of fewer clients than asked for still shows that lesson.
    if left > before:
        return Outcome.fail(
            f"{left - before} zombies {waited:.0f} s after {served} clients closed at once",
            "one SIGCHLD can stand for many exits; loop on waitpid(-1, WNOHANG)",
            **figures,
        )
    if served < count:
        connected = len(crowd.socks)
        return Outcome.fail(
            f"only {served} of {count} clients were served before the burst "
            f"({could_not_connect(count - connected, CONNECT_LIMIT_S, overflows)})",
            shortfall_hint(
                count - connected,
                overflows,
                "every connected client needs its child: check what limits your forks",
            ),
            **figures,
        )
    return Outcome.ok(f"{count} clients closed at once: every child reaped", **figures)


def listener_closed_in_child(ctx: Context) -> Outcome:
    with ctx.echoed_clients(3) as socks:
        snap, held = _served_by(ctx, socks)
    if sockets_hidden(snap):
        return Outcome.skip(HIDDEN)
    kids = {p.pid: p for h in held for p in h if p.role == "child"}
    keeping = [p for p in kids.values() if p.holds_listener()]
    figures = {"children": len(kids), "holding_listener": len(keeping)}
    if not kids:
        return Outcome.skip("skipped: no child served a client (see one-child-per-client)")
    if keeping:
        return Outcome.fail(
            f"{len(keeping)} of {len(kids)} children hold the listening socket",
            "a child serves one client: close(listen_sock) right after fork(), or the port "
            "stays open while any child lives",
            **figures,
        )
    return Outcome.ok(f"none of {len(kids)} children holds the listening socket", **figures)


def client_closed_in_parent(ctx: Context) -> Outcome:
    def read(socks: list[socket.socket]) -> tuple[ServerSnapshot, int, int]:
        snap = ctx.target.snapshot()
        held = [holders(snap, sock) for sock in socks]
        by_child = sum(1 for h in held if any(p.pid != snap.root for p in h))
        by_parent = sum(1 for h in held if any(p.pid == snap.root for p in h))
        return snap, by_child, by_parent

    count = 3
    with ctx.echoed_clients(count) as socks:  # the parent closes its copy just after fork()
        snap, by_child, kept = poll(
            lambda: read(socks), lambda v: v[1] == count and v[2] == 0, SETTLE_S
        )
    if sockets_hidden(snap):
        return Outcome.skip(HIDDEN)
    parent = snap.parent
    figures = {
        "clients": count,
        "served_by_children": by_child,
        "held_by_parent": kept,
        "parent_connected": len(parent.connected()) if parent else 0,
    }
    if kept:
        return Outcome.fail(
            f"the parent still holds {kept} of {count} client sockets its children serve",
            "after fork() both processes hold the client socket: the parent must close its "
            "copy, or the client never sees EOF and the parent runs out of descriptors",
            **figures,
        )
    return Outcome.ok(f"the parent holds none of {count} served clients", **figures)
