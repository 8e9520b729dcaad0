"""A command for ad-hoc loads: one mode against one target, its tally as one JSON line.

    python -m bench.loadgen rr|rate|hold|stream --target HOST:PORT [-n N] [-m M] [-t T] ...

The load generator itself is probe.load; see its docstring for the modes.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict

from probe.load import MODES, Load, run_load


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.loadgen", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("mode", choices=MODES)
    parser.add_argument("--target", required=True, metavar="HOST:PORT")
    parser.add_argument("-n", "--connections", type=int, default=100)
    parser.add_argument("-m", "--size", type=int, default=64)
    parser.add_argument("-t", "--duration", type=float, default=2.0)
    parser.add_argument("--hold", type=float, default=1.0)
    parser.add_argument("-w", "--workers", type=int, default=0)
    args = parser.parse_args(argv)
    host, _, port = args.target.rpartition(":")
    load = Load(
        args.mode, args.connections, args.size, args.duration, args.hold, workers=args.workers
    )
    tally = run_load(host, int(port), load)
    print(json.dumps(asdict(tally)))
    return 1 if tally.mismatches or tally.errors else 0


if __name__ == "__main__":
    sys.exit(main())
