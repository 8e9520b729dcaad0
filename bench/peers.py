"""The standard library's own echo servers, the peers our servers are measured against.

    python -m bench.peers forking|threading|selectors|asyncio [--host H] [--port P]
                          [--selector default|select|poll|epoll]

Each is the plain, idiomatic version of its model, tuned only where a default would hold it
back for reasons that are not the model's: a listen backlog of SOMAXCONN (socketserver's 5
would drop SYNs under load) and no cap of 40 children on ForkingTCPServer. Like our servers
each logs "listening on HOST:PORT (...)" once to stderr, and nothing per connection.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import selectors
import signal
import socket
import socketserver
import sys

RECV_SIZE = 65536
BUFFER_LIMIT = 256 * 1024  # per client, as in our select server: a non-reader stops its reads


def announce(sock: socket.socket, model: str) -> None:
    host, port = sock.getsockname()[:2]
    os.write(2, f"listening on {host}:{port} ({model} server)\n".encode())


# ---------------------------------------------------------------- socketserver


class EchoHandler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        sock: socket.socket = self.request
        while data := sock.recv(RECV_SIZE):
            sock.sendall(data)


class ForkingEchoServer(socketserver.ForkingTCPServer):
    allow_reuse_address = True
    request_queue_size = socket.SOMAXCONN
    max_children = 4096  # the default 40 would make the 41st client wait for a waitpid()


class ThreadingEchoServer(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    request_queue_size = socket.SOMAXCONN
    daemon_threads = True


def serve_socketserver(cls: type[socketserver.TCPServer], host: str, port: int) -> None:
    with cls((host, port), EchoHandler) as server:
        announce(server.socket, cls.__name__)
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        server.serve_forever()


# ---------------------------------------------------------------- selectors


class Client:
    __slots__ = ("pending", "reading")

    def __init__(self) -> None:
        self.pending = bytearray()
        self.reading = True  # False after EOF: finish sending, then close


def serve_selectors(host: str, port: int, mechanism: str) -> None:
    """One process, non-blocking sockets, a bytearray of pending echo per client."""
    sel: selectors.BaseSelector = {
        "default": selectors.DefaultSelector,
        "select": selectors.SelectSelector,
        "poll": selectors.PollSelector,
        "epoll": getattr(selectors, "EpollSelector", selectors.DefaultSelector),
    }[mechanism]()
    listener = socket.create_server((host, port), backlog=socket.SOMAXCONN)
    listener.setblocking(False)
    sel.register(listener, selectors.EVENT_READ, None)
    announce(listener, f"selectors/{type(sel).__name__}")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    while True:
        for key, events in sel.select():
            if key.data is None:
                accept(sel, listener)
            else:
                serve_client(sel, key.fileobj, key.data, events)  # type: ignore[arg-type]


def accept(sel: selectors.BaseSelector, listener: socket.socket) -> None:
    try:
        sock, _ = listener.accept()
    except BlockingIOError:
        return
    sock.setblocking(False)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sel.register(sock, selectors.EVENT_READ, Client())


def serve_client(
    sel: selectors.BaseSelector, sock: socket.socket, client: Client, events: int
) -> None:
    pending = client.pending
    try:
        if events & selectors.EVENT_READ:
            data = sock.recv(RECV_SIZE)
            if data:
                pending += data
            else:
                client.reading = False
        if pending:
            del pending[: sock.send(pending)]
    except BlockingIOError:
        pass
    except OSError:
        sel.unregister(sock)
        sock.close()
        return
    if not client.reading and not pending:
        sel.unregister(sock)
        sock.close()
        return
    wanted = selectors.EVENT_WRITE if pending else 0
    if client.reading and len(pending) < BUFFER_LIMIT:
        wanted |= selectors.EVENT_READ
    if wanted != sel.get_key(sock).events:
        sel.modify(sock, wanted, client)


# ---------------------------------------------------------------- asyncio


class EchoProtocol(asyncio.Protocol):
    """data_received -> write; the transport buffers, pause_writing stops our reads."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)

    def pause_writing(self) -> None:
        self.transport.pause_reading()

    def resume_writing(self) -> None:
        self.transport.resume_reading()

    def eof_received(self) -> bool:
        return False  # close once the write buffer has drained


async def serve_asyncio(host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(EchoProtocol, host, port, backlog=socket.SOMAXCONN)
    announce(server.sockets[0], "asyncio")
    stop = loop.create_future()
    loop.add_signal_handler(signal.SIGTERM, stop.set_result, None)
    async with server:
        await stop


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
    if args.model == "forking":
        serve_socketserver(ForkingEchoServer, args.host, args.port)
    elif args.model == "threading":
        serve_socketserver(ThreadingEchoServer, args.host, args.port)
    elif args.model == "selectors":
        serve_selectors(args.host, args.port, args.selector)
    else:
        asyncio.run(serve_asyncio(args.host, args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
