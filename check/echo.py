"""Echo itself: every byte back in order, many clients at once, and the half-close."""

from __future__ import annotations

from check.backlog import CONNECT_LIMIT_S, ListenQueue, could_not_connect, shortfall_hint
from check.context import Context
from check.results import Outcome
from probe import drivers
from probe.sessions import Crowd, payload_of

MIB = 1024 * 1024
HINT_EXACT = (
    "write back every byte read, in order: send() may take only part of a buffer, so loop "
    "until all of it is sent, and keep reading until read() returns 0 (EOF)"
)
HINT_HALF_CLOSE = (
    "read() returning 0 means only that the client will send no more: first send what is "
    "still to be echoed, then close; and the connection ends only when every process holding "
    "it closes (a fork server's parent must close its copy)"
)


def echo_exact(ctx: Context) -> Outcome:
    # (case, payload, bytes per send, pause between sends, wait for EOF after)
    cases = (
        ("0 B", b"", 1, 0.0, 0.5),
        ("1 B", b"\x00", 1, 0.0, 0.0),
        ("all 256 byte values", bytes(range(256)) * 4, 65536, 0.0, 0.0),
        ("one byte per send", bytes(range(255, 127, -1)), 1, 0.001, 0.0),
    )
    for name, payload, chunk, pause_s, eof_wait_s in cases:
        got = drivers.exchange(
            ctx.port, payload, chunk, pause_s, eof_wait_s=eof_wait_s, limit_s=5.0, host=ctx.host
        )
        if not got.exact:  # a 0 B exchange is exact unless bytes came back
            return Outcome.fail(f"{name}: {got.describe(len(payload))}", HINT_EXACT, case=name)
    stream_size = 8 * MIB
    figures: dict[str, object] = {}
    got = drivers.stream(ctx.port, stream_size, limit_s=15.0, host=ctx.host)
    figures["stream_bytes"] = stream_size
    figures["stream_s"] = round(got.seconds, 2)
    if not got.exact:
        return Outcome.fail(
            f"8 MiB in one connection: {got.describe(stream_size)}",
            HINT_EXACT,
            case="8 MiB",
            **figures,
        )
    rate = stream_size / MIB / max(got.seconds, 1e-6)
    figures["stream_mib_s"] = round(rate, 1)
    return Outcome.ok(
        f"0 B, 1 B, 256 values, byte by byte, 8 MiB in {got.seconds:.2f} s: all exact", **figures
    )


def concurrent_clients(ctx: Context) -> Outcome:
    count = ctx.scale(120, 100)
    crowd = Crowd(ctx.port, size=4096, host=ctx.host)
    queue = ListenQueue(ctx.target)
    try:
        took = crowd.connect(count, limit_s=CONNECT_LIMIT_S)
        connected = len(crowd.socks)
        overflows = queue.overflows()
        crowd.send_all()
        crowd.drive(quiet_s=3.0, limit_s=12.0, close_served=False)
    finally:
        crowd.close()
    figures = {
        "clients": count,
        "connected": connected,
        "served": crowd.count("served"),
        "mismatched": crowd.count("mismatched"),
        "refused": crowd.count("refused"),
        "waiting": crowd.count("pending"),
        "connect_s": round(took, 2),
        "listen_overflows": overflows,
    }
    if crowd.count("mismatched"):
        return Outcome.fail(
            f"{crowd.count('mismatched')} of {count} clients got bytes that were not theirs",
            "keep one buffer per client: bytes read from one connection go back to it only",
            **figures,
        )
    if crowd.count("served") < count:
        return Outcome.fail(
            f"{crowd.count('served')} of {count} clients connected at once were served "
            f"({crowd.count('pending')} waiting, {crowd.count('refused')} refused, "
            f"{could_not_connect(count - connected, CONNECT_LIMIT_S, overflows)})",
            shortfall_hint(
                count - connected,
                overflows,
                "a server that serves one client until it leaves keeps the rest waiting: "
                "fork a child per client, or watch every socket with select()",
            ),
            **figures,
        )
    return Outcome.ok(f"{count} clients at once, each got its own 4 KiB back", **figures)


def half_close(ctx: Context) -> Outcome:
    size = MIB
    got = drivers.exchange(
        ctx.port,
        bytes(payload_of(3, size)),
        read_delay_s=0.3,  # our EOF arrives while the echo is still in flight
        eof_wait_s=3.0,
        limit_s=10.0,
        host=ctx.host,
    )
    figures = {"bytes": size, "echoed": got.received, "eof": bool(got.eof)}
    if not got.exact:
        return Outcome.fail(
            f"after shutdown(SHUT_WR): {got.describe(size)}", HINT_HALF_CLOSE, **figures
        )
    if not got.eof:
        return Outcome.fail(
            "all 1 MiB echoed after shutdown(SHUT_WR), but no EOF within 3 s",
            HINT_HALF_CLOSE,
            **figures,
        )
    return Outcome.ok("1 MiB in flight at shutdown(SHUT_WR): all echoed, then EOF", **figures)
