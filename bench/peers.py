"""The standard library's own echo servers, the peers our servers are measured against.

    python -m bench.peers forking|threading|selectors|asyncio [--host H] [--port P]
                          [--selector default|select|poll|epoll]

Each is the plain, idiomatic version of its model, tuned only where a default would hold it
back for reasons that are not the model's: a listen backlog of SOMAXCONN (socketserver's 5
would drop SYNs under load) and no cap of 40 children on ForkingTCPServer. Like our servers
each logs "listening on HOST:PORT (...)" once to stderr, and nothing per connection.

Each model lives in its own module and only that one is imported: a forking peer must not
carry asyncio in every child it forks.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys

RECV_SIZE = 65536
BUFFER_LIMIT = 256 * 1024  # per client, as in our select server: a non-reader stops its reads


def announce(sock: socket.socket, model: str) -> None:
    host, port = sock.getsockname()[:2]
    os.write(2, f"listening on {host}:{port} ({model} server)\n".encode())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.peers", description=__doc__)
    parser.add_argument("model", choices=("forking", "threading", "selectors", "asyncio"))
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument(
        "--selector",
        choices=("default", "select", "poll", "epoll"),
        default="default",
        help="selectors model: the kernel mechanism",
    )
    args = parser.parse_args(argv)
    if args.model in ("forking", "threading"):
        from bench import peer_socketserver as ss

        cls = ss.ForkingEchoServer if args.model == "forking" else ss.ThreadingEchoServer
        ss.serve_socketserver(cls, args.host, args.port)
    elif args.model == "selectors":
        from bench.peer_selectors import serve_selectors

        serve_selectors(args.host, args.port, args.selector)
    else:
        import asyncio

        from bench.peer_asyncio import serve_asyncio

        asyncio.run(serve_asyncio(args.host, args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
