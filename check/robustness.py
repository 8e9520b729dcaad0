"""Peers that misbehave: resets, vanishing and silent peers, and a client that never reads."""

from __future__ import annotations

import contextlib
import socket

from check.context import Context
from check.results import Outcome
from probe import drivers
from probe.peers import SlowPeers, reset_mid_stream, vanish_after_half_close
from probe.sessions import MIB

SILENT_PEERS = 5
HINT_SIGPIPE = (
    "send() to a peer that has reset raises SIGPIPE, whose default action kills the process: "
    "ignore SIGPIPE (signal(SIGPIPE, SIG_IGN), or send with MSG_NOSIGNAL) and drop that client"
)
LATENCY_BOUND_S = 1.0  # a roundtrip beside a stalled client: loopback takes milliseconds


def _served(ctx: Context, timeout: float = 3.0) -> float | None:
    return drivers.roundtrip_seconds(ctx.port, 1024, timeout, ctx.host)


def abrupt_peers(ctx: Context) -> Outcome:
    resets = vanished = 0
    broken: list[str] = []
    silent: list[socket.socket] = []
    try:
        for _ in range(SILENT_PEERS):  # connect and never send, for the whole check
            silent.append(ctx.connect())
        with contextlib.suppress(OSError):  # connect and leave at once: nothing to echo
            ctx.connect().close()
        for i in range(3):
            try:
                reset_mid_stream(ctx.port, 100 + i, ctx.host)
                resets += 1
            except OSError as error:  # ConnectionError too: the stream never started
                broken.append(f"reset peer {i}: {error}")
            vanish_after_half_close(ctx.port, 200 + i, ctx.host)
            vanished += 1
        served = _served(ctx)
    finally:
        for sock in silent:
            sock.close()
    figures = {
        "resets": resets,
        "vanished": vanished,
        "silent": SILENT_PEERS,
        "served_after_s": None if served is None else round(served, 3),
    }
    if not ctx.target.alive():
        return Outcome.fail(
            "the server died among peers that reset or vanished",
            HINT_SIGPIPE,
            **figures,
        )
    if served is None:
        return Outcome.fail(
            f"with {SILENT_PEERS} silent peers connected, after resets and vanished peers, "
            "a new client was not served within 3 s",
            "one peer's silence or error must never hold up another: never wait on one "
            "client's read() while others are connected (fork per client, or select())",
            **figures,
        )
    if broken:
        return Outcome.fail(
            broken[0], "echo before the reset: the server must start echoing at once", **figures
        )
    return Outcome.ok(
        f"{resets} resets mid-stream, {vanished} vanished, {SILENT_PEERS} silent peers: "
        f"still serving ({served * 1000:.0f} ms)",
        **figures,
    )


def no_stall(ctx: Context) -> Outcome:
    rounds = ctx.scale(20, 10)
    latencies: list[float] = []
    stalled = SlowPeers(ctx.port, trickle=0, stalled=2, push_limit=32 * MIB, host=ctx.host)
    with stalled as peers:
        peers.push_until_stuck(quiet_s=0.5, limit_s=8.0)
        pushed = sum(peers.pushed)
        for _ in range(rounds):
            took = _served(ctx, timeout=2.0)
            if took is None:
                break
            latencies.append(took)
    worst = max(latencies) if latencies else None
    figures = {
        "stalled_clients": 2,
        "pushed_bytes": pushed,
        "roundtrips": len(latencies),
        "of": rounds,
        "worst_ms": None if worst is None else round(worst * 1000, 1),
    }
    hint = (
        "a client that never reads fills its socket buffer; a blocking send() to it then "
        "stops the whole loop: make client sockets non-blocking, queue what send() does not "
        "take, wait for writability, and stop reading from that client while its queue is full"
    )
    if len(latencies) < rounds:
        return Outcome.fail(
            f"beside 2 clients that never read, a client waited over 2 s "
            f"({len(latencies)} of {rounds} served)",
            hint,
            **figures,
        )
    if worst is not None and worst > LATENCY_BOUND_S:
        return Outcome.fail(
            f"beside 2 clients that never read, a roundtrip took {worst * 1000:.0f} ms",
            hint,
            **figures,
        )
    assert worst is not None  # every round was served
    return Outcome.ok(
        f"beside 2 clients that never read ({pushed / 1e6:.1f} MB pushed), {rounds} "
        f"roundtrips, the worst {worst * 1000:.0f} ms",
        **figures,
    )
