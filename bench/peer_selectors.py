"""A plain selectors echo server: non-blocking sockets, a bytearray of pending echo per client."""

from __future__ import annotations

import selectors
import signal
import socket
import sys

from bench.peers import BUFFER_LIMIT, RECV_SIZE, announce


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
