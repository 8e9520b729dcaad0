"""python -m server {fork,select,epoll}: parse the command line (server/cli.py), start one model."""

from __future__ import annotations

import gc
import sys
from types import SimpleNamespace

from server.peers import set_quiet_hosts

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing into the server
if TYPE_CHECKING:
    from server.forking import ForkingEchoServer
    from server.multiplexing import MultiplexingEchoServer


def parse_args(argv: list[str]) -> SimpleNamespace:
    """The options as plain values; argparse, and all it imported, gone again.

    Speed and memory: argparse pulls in re, gettext, locale, shutil... (30 modules in the
    image's Python) that serve this step only. Left loaded, a fork server's parent would carry
    them while it serves, and every fork() would copy their pages' tables and every child
    exit tear them down: measured in README's Performance section.
    """
    loaded = set(sys.modules)
    from server import cli

    options = SimpleNamespace(**vars(cli.parse_args(argv)))  # no argparse object survives
    del cli
    for name in set(sys.modules) - loaded:
        del sys.modules[name]
        package, _, child = name.rpartition(".")
        if package in sys.modules:  # `import server.cli` also bound cli on the package
            vars(sys.modules[package]).pop(child, None)
    gc.collect()  # their modules, classes and functions form cycles: free them now
    return options


def build_server(args: SimpleNamespace) -> ForkingEchoServer | MultiplexingEchoServer:
    # Import only the model that runs: a fork server's children copy whatever it loaded.
    if args.model == "fork":
        from server.forking import ForkingEchoServer, Mistakes

        mistakes = Mistakes(
            args.no_reap, args.child_keeps_listener, args.parent_keeps_client, args.single_waitpid
        )
        return ForkingEchoServer(args.host, args.port, args.max_children, mistakes)
    if args.model == "epoll":
        from server.epolling import EpollEchoServer

        return EpollEchoServer(
            args.host, args.port, args.max_clients, blocking_send=args.blocking_send
        )
    from server.selecting import SelectEchoServer

    return SelectEchoServer(
        args.host,
        args.port,
        args.max_clients,
        blocking_send=args.blocking_send,
        fd_cap=not args.no_fd_cap,
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    set_quiet_hosts(args.quiet_peer)
    try:
        server = build_server(args)
    except OSError as error:  # the port is taken, or the address is not ours
        print(
            f"python -m server: cannot listen on {args.host}:{args.port}: {error}", file=sys.stderr
        )
        return 1
    return server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
