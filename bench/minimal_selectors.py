"""The simplest correct selectors echo server: the reference for our select and epoll servers.

    python -m bench.minimal_selectors HOST PORT select|epoll

One non-blocking loop: echo what arrives at once; what the socket does not take waits in a
per-client remainder, and that client is not read again until it has gone out.
"""

import selectors
import socket
import sys


def main() -> None:
    sel = selectors.SelectSelector() if sys.argv[3] == "select" else selectors.EpollSelector()
    listener = socket.create_server((sys.argv[1], int(sys.argv[2])), backlog=socket.SOMAXCONN)
    listener.setblocking(False)
    sel.register(listener, selectors.EVENT_READ)
    host, port = listener.getsockname()[:2]
    print(f"listening on {host}:{port} (minimal {sys.argv[3]} server)", file=sys.stderr, flush=True)
    unsent: dict[socket.socket, bytes] = {}
    while True:
        for key, _ in sel.select():
            sock = key.fileobj
            if sock is listener:
                try:
                    client, _ = listener.accept()
                except BlockingIOError:
                    continue
                client.setblocking(False)
                client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                sel.register(client, selectors.EVENT_READ)
                continue
            try:
                data = unsent.pop(sock, b"") or sock.recv(65536)
                if not data:  # EOF, and everything read was echoed
                    raise ConnectionResetError
                sent = sock.send(data)
            except BlockingIOError:
                continue
            except OSError:
                sel.unregister(sock)
                sock.close()
                continue
            if sent < len(data):
                unsent[sock] = data[sent:]
                sel.modify(sock, selectors.EVENT_WRITE)
            elif key.events == selectors.EVENT_WRITE:
                sel.modify(sock, selectors.EVENT_READ)


if __name__ == "__main__":
    main()
