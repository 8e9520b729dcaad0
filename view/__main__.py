"""python3 -m view: the live page of the lab's servers.

python3 -m view --local fork-server=9000 --local select-server=9001      (servers on this host)
python3 -m view --agent fork-server=http://fork-view-agent:7070/snapshot  (the compose stack)
"""

from __future__ import annotations

import argparse
import signal
import sys
from types import FrameType

from view.collector import Collector
from view.sources import AgentSource, ProcSource
from view.web import MAX_CONNECTIONS, make_server


def _named(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name or not value:
        raise argparse.ArgumentTypeError(f"{text!r} is not NAME=VALUE")
    return name, value


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python3 -m view",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--listen", default="127.0.0.1:8080", metavar="HOST:PORT")
    parser.add_argument(
        "--local",
        type=_named,
        action="append",
        default=[],
        metavar="SERVICE=PORT[,PORT]",
        help="the servers listening on these ports of this machine",
    )
    parser.add_argument(
        "--agent",
        type=_named,
        action="append",
        default=[],
        metavar="SERVICE=URL",
        help="a view agent's /snapshot URL",
    )
    parser.add_argument(
        "--interval",
        type=float,
        default=0.4,
        help="seconds between two snapshots (default: %(default)s)",
    )
    parser.add_argument("--max-connections", type=int, default=MAX_CONNECTIONS)
    args = parser.parse_args(argv)
    if not args.local and not args.agent:
        parser.error("give at least one --local or --agent")
    if not 0.05 <= args.interval <= 10:
        parser.error("--interval must be between 0.05 and 10 seconds")
    try:
        args.local = [(n, [int(p) for p in v.split(",")]) for n, v in args.local]
    except ValueError:
        parser.error("--local takes SERVICE=PORT[,PORT...] with numeric ports")
    return args


def _stop(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    sources: list[ProcSource | AgentSource] = [ProcSource(args.local)] if args.local else []
    sources += [AgentSource(n, url) for n, url in args.agent]
    host, _, port = args.listen.rpartition(":")
    collector = Collector(sources, args.interval)
    try:
        server = make_server(collector, host, int(port), args.max_connections)
    except (OSError, ValueError) as error:
        print(f"python3 -m view: cannot listen on {args.listen}: {error}", file=sys.stderr)
        return 1
    signal.signal(signal.SIGTERM, _stop)
    collector.start()
    bound = server.server_address
    print(f"view on http://{bound[0]}:{bound[1]}/ ({len(sources)} sources)", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        collector.stop()
        server.server_close()
    print("view stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
