"""python -m client --server HOST:PORT ...: argument parsing and the report only."""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

from client import split_io, stop_and_wait
from client.arguments import parse_address, positive
from client.payload import GeneratedPayload, Payload, ScriptPayload, TypedPayload
from client.split_io import Connection, Options
from probe.limits import raise_open_files


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m client",
        description="Split-I/O echo client: per connection, a forked child writes and the "
        "parent reads and verifies every echoed byte. Exit 0 only if all connections got "
        "back exactly what they sent.",
    )
    parser.add_argument("--server", required=True, type=parse_address, metavar="HOST:PORT")
    parser.add_argument(
        "--mode",
        choices=("split", "stop-and-wait"),
        default="split",
        help="split: a forked writer and a reader per connection (default); stop-and-wait: "
        "one process sends a line (or chunk) and waits for its echo before the next, one "
        "connection after another",
    )
    parser.add_argument(
        "--connections", type=positive, default=1, metavar="K", help="K connections at once"
    )
    what = parser.add_mutually_exclusive_group()
    what.add_argument(
        "--bytes",
        type=int,
        metavar="N",
        help="send N pseudo-random bytes per connection (default: 65536; 0 is allowed)",
    )
    what.add_argument("--script", type=Path, metavar="FILE", help="send FILE, one line per write")
    what.add_argument(
        "--stdin",
        action="store_true",
        help="the notes' interactive client: send lines typed on stdin, print the echoes; "
        "a line Q or q quits",
    )
    parser.add_argument(
        "--chunk-size", type=positive, default=16384, metavar="B", help="bytes per write"
    )
    parser.add_argument(
        "--interval", type=float, default=0.0, metavar="S", help="pause S seconds between writes"
    )
    parser.add_argument(
        "--repeat", type=positive, default=1, metavar="R", help="send the payload R times"
    )
    parser.add_argument("--seed", type=int, default=1, help="seed for --bytes payloads")
    parser.add_argument(
        "--timeout",
        type=float,
        default=30.0,
        metavar="S",
        help="fail a connection after S seconds without any echo (default: %(default)s)",
    )
    parser.add_argument(
        "--no-half-close",
        action="store_true",
        help="break it: the writer calls close() instead of shutdown(SHUT_WR)",
    )
    report = parser.add_mutually_exclusive_group()
    report.add_argument("--quiet", action="store_true", help="print only failures and the summary")
    report.add_argument("--json", action="store_true", help="print the report as one JSON object")
    args = parser.parse_args(argv)
    if args.bytes is not None and args.bytes < 0:
        parser.error("--bytes must be 0 or more")
    if args.no_half_close and args.mode == "stop-and-wait":
        parser.error("--no-half-close breaks the split writer; stop-and-wait has none")
    if args.stdin and args.connections != 1:
        parser.error("--stdin drives exactly one connection")
    return args


def make_payloads(args: argparse.Namespace) -> list[Payload]:
    if args.stdin:
        return [TypedPayload()]
    if args.script is not None:
        data = args.script.read_bytes()
        return [ScriptPayload(data, args.repeat) for _ in range(args.connections)]
    size = (65536 if args.bytes is None else args.bytes) * args.repeat
    return [GeneratedPayload(size, args.seed, index) for index in range(args.connections)]


def bytes_known_sent(connection: Connection) -> int:
    """A writer that exited 0 sent its whole payload; of any other, count what came back."""
    return connection.payload.total if connection.writer_status == 0 else connection.received


def summarize(connections: list[Connection], elapsed: float) -> dict[str, object]:
    sent = sum(bytes_known_sent(c) for c in connections)
    received = sum(c.received for c in connections)
    failures = [{"connection": c.index, "error": c.error} for c in connections if not c.ok]
    return {
        "connections": len(connections),
        "ok": len(connections) - len(failures),
        "failed": len(failures),
        "bytes_sent": sent,
        "bytes_received": received,
        "elapsed_s": round(elapsed, 4),
        "throughput_mib_s": round((sent + received) / 2**20 / elapsed, 2) if elapsed else 0.0,
        "errors": failures,
    }


def print_report(connections: list[Connection], report: dict, args: argparse.Namespace) -> None:
    for c in connections:
        if c.error is not None:
            print(f"connection {c.index}: FAILED: {c.error}", file=sys.stderr)
        elif not args.quiet and not args.json:
            took = c.finished - c.started
            print(f"connection {c.index}: ok, {c.payload.total} bytes echoed in {took:.3f} s")
    if args.json:
        print(json.dumps(report))
        return
    verdict = "ok" if report["failed"] == 0 else "FAILED"
    print(
        f"{verdict}: {report['ok']}/{report['connections']} connections echoed exactly; "
        f"{report['bytes_sent']} bytes sent, {report['bytes_received']} received "
        f"in {report['elapsed_s']:.3f} s ({report['throughput_mib_s']} MiB/s both ways)"
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    raise_open_files(args.connections + 64)  # K connections need K descriptors
    options = Options(
        chunk_size=args.chunk_size,
        interval=args.interval,
        timeout=math.inf if args.stdin else args.timeout,
        half_close=not args.no_half_close,
        echo_to_stdout=args.stdin,
    )
    if args.stdin and sys.stdin.isatty():
        print("type lines to send; a line Q or q quits", file=sys.stderr)
    started = time.monotonic()
    run = stop_and_wait.run if args.mode == "stop-and-wait" else split_io.run
    connections = run(args.server, make_payloads(args), options)
    report = summarize(connections, time.monotonic() - started)
    print_report(connections, report, args)
    return 0 if report["failed"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
