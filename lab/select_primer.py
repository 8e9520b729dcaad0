"""The notes' select() primer: watch standard input, with a timeout re-armed every loop.

reads = {0}
loop: temps = copy of reads; timeout = 5 s; select(temps, timeout)
      nothing ready -> "Time-out!"
      0 is ready    -> read it, print "message from console: ..."; EOF ends the loop

python3 -m lab.select_primer            (type lines; Ctrl-D ends)
docker compose run --rm select-primer
"""

from __future__ import annotations

import argparse
import os
import select
import sys

STDIN = 0  # standard input (the console) is descriptor 0
BUF_SIZE = 1024


def watch_console(seconds: float) -> int:
    reads = {STDIN}
    while True:
        # select() overwrites the set it is given with the ready descriptors, and the timeout
        # with the time left: so each call gets a fresh copy of the set and a re-armed timeout.
        temps = set(reads)
        timeout = seconds
        ready, _, _ = select.select(temps, [], [], timeout)
        if not ready:
            print("Time-out!", flush=True)
            continue
        if STDIN in ready:
            data = os.read(STDIN, BUF_SIZE)
            if not data:  # end of input: read() returned 0
                return 0
            text = data.decode(errors="replace")
            end = "" if text.endswith("\n") else "\n"
            print(f"message from console: {text}", end=end, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m lab.select_primer",
        description="select() on standard input: echo each line as 'message from console: ...', "
        "print 'Time-out!' after each quiet period, stop at end of input.",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=5.0,
        metavar="S",
        help="seconds select() waits for input before 'Time-out!' (default: %(default)s)",
    )
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if args.timeout < 0:
        parser.error("--timeout must be 0 or more")
    if sys.stdin.isatty():
        print(
            f"type a line; {args.timeout:g} s of quiet prints Time-out!; Ctrl-D ends",
            file=sys.stderr,
        )
    try:
        return watch_console(args.timeout)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
