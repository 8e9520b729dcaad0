"""socketserver's ForkingTCPServer and ThreadingTCPServer with a five-line echo handler."""

from __future__ import annotations

import signal
import socket
import socketserver
import sys

from bench.peers import RECV_SIZE, announce


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
