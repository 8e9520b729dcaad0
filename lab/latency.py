"""The latency experiment (UNP §16.2): the same lines, stop-and-wait versus split I/O.

    python3 -m lab.latency --via delay-proxy:9100 --lines 200

Sends N text lines through the delay proxy twice, once per client mode, verifies every echoed
byte, and prints both times and their ratio next to Stevens' numbers. Stop-and-wait pays one
round trip per line; the split client keeps the pipe full and pays about one in all.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from client import split_io, stop_and_wait
from client.arguments import parse_address, positive
from client.payload import ScriptPayload
from client.split_io import Options

MODES = {"stop-and-wait": stop_and_wait.run, "split": split_io.run}
STEVENS = "UNP §16.2: 2,000 lines over a 175 ms RTT took 354.0 s stop-and-wait, 8.7 s split (41x)"


def make_lines(count: int) -> bytes:
    """Numbered lines of about 60 bytes, like a text file copied to the echo server."""
    return b"".join(
        f"line {n:05d} of {count:05d}: the quick brown fox jumps over the lazy dog\n".encode()
        for n in range(1, count + 1)
    )


def measure(mode: str, address: tuple[str, int], data: bytes, timeout: float) -> dict[str, Any]:
    started = time.monotonic()
    [connection] = MODES[mode](address, [ScriptPayload(data)], Options(timeout=timeout))
    elapsed = time.monotonic() - started
    return {
        "mode": mode,
        "elapsed_s": round(elapsed, 4),
        "ok": connection.ok,
        "error": connection.error,
    }


def print_table(via: str, lines: int, size: int, results: list[dict[str, Any]]) -> None:
    print(f"latency experiment: {lines} lines ({size} bytes) echoed through {via}")
    print()
    print(f"  {'mode':<15}{'elapsed':>12}{'per line':>12}  result")
    for r in results:
        per_line = r["elapsed_s"] / lines * 1000
        verdict = "ok, every byte echoed" if r["ok"] else f"FAILED: {r['error']}"
        print(f"  {r['mode']:<15}{r['elapsed_s']:>10.3f} s{per_line:>9.2f} ms  {verdict}")
    print()
    slow, fast = (r["elapsed_s"] for r in results)
    if fast > 0:
        print(f"stop-and-wait took {slow / fast:.0f}x as long as split")
    print(STEVENS)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m lab.latency",
        description="Copy N lines through the delay proxy with each client mode; print both "
        "times and their ratio.",
    )
    parser.add_argument(
        "--via", required=True, type=parse_address, metavar="HOST:PORT", help="the delay proxy"
    )
    parser.add_argument("--lines", type=positive, default=200, metavar="N")
    parser.add_argument(
        "--timeout", type=float, default=30.0, metavar="S", help="fail after S s without an echo"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object instead")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    data = make_lines(args.lines)
    results = [measure(mode, args.via, data, args.timeout) for mode in MODES]
    via = f"{args.via[0]}:{args.via[1]}"
    if args.json:
        print(json.dumps({"via": via, "lines": args.lines, "bytes": len(data), "runs": results}))
    else:
        print_table(via, args.lines, len(data), results)
    return 0 if all(r["ok"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
