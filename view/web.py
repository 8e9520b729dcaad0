"""The view over HTTP: the page, /api/snapshot (JSON) and /api/events (Server-Sent Events).

http.server with one thread per connection and a cap on how many at once: past the cap a
connection gets one 503 line and is closed, so 100 browsers (or a flood) cannot exhaust the
view's threads or descriptors. A browser that stops reading is dropped after SEND_TIMEOUT.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from view.collector import Collector

PAGE = (Path(__file__).with_name("page.html")).read_bytes()
MAX_CONNECTIONS = 256
SEND_TIMEOUT = 10.0  # seconds a blocked write may take before the browser is dropped
KEEPALIVE_SECONDS = 15.0
BUSY = b"HTTP/1.0 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


class CappedHTTPServer(ThreadingHTTPServer):
    """A thread per connection, at most `max_connections` of them at once."""

    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], handler: type, max_connections: int) -> None:
        self.slots = threading.BoundedSemaphore(max_connections)
        # socketserver's listen backlog is 5: a class opening the page at once (100 browsers)
        # overflowed it, and each dropped connect waited out a SYN retry of 1, 3, 7... seconds.
        self.request_queue_size = max_connections
        self.active = 0
        super().__init__(address, handler)

    def process_request(self, request: socket.socket, client_address: tuple) -> None:
        if not self.slots.acquire(blocking=False):
            with contextlib.suppress(OSError):
                request.sendall(BUSY)
            self.shutdown_request(request)
            return
        self.active += 1
        try:
            super().process_request(request, client_address)
        except BaseException:
            self.active -= 1
            self.slots.release()
            raise

    def process_request_thread(self, request: socket.socket, client_address: tuple) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.active -= 1
            self.slots.release()

    def handle_error(self, request: object, client_address: tuple) -> None:
        pass  # a browser that went away mid-answer is not an error of the view


class QuietHandler(BaseHTTPRequestHandler):
    timeout = SEND_TIMEOUT
    protocol_version = "HTTP/1.1"
    server_version = "echolab-view"
    sys_version = ""

    def log_message(self, format: str, *args: object) -> None:
        pass  # polled twice a second by every browser: one line each would bury the log

    def send_body(self, status: int, kind: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def not_found(self) -> None:
        self.send_body(404, "text/plain; charset=utf-8", b"not found: try / or /api/snapshot\n")

    def do_POST(self) -> None:
        self.close_connection = True
        self.send_body(405, "text/plain; charset=utf-8", b"only GET\n")

    do_PUT = do_DELETE = do_PATCH = do_POST


class ViewHandler(QuietHandler):
    collector: Collector  # set on the subclass serve() makes

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path in ("/", "/index.html"):
            self.send_body(200, "text/html; charset=utf-8", PAGE)
        elif path == "/api/snapshot":
            self.send_body(200, "application/json", self.collector.body)
        elif path == "/api/events":
            self.stream()
        else:
            self.not_found()

    do_HEAD = do_GET

    def stream(self) -> None:
        """One SSE message per new document until the browser leaves or the view stops."""
        self.close_connection = True
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-store")
        self.send_header("Connection", "close")
        self.end_headers()
        if self.command == "HEAD":
            return
        version = -1
        try:
            self.wfile.write(b"retry: 1000\n\n")
            while not self.collector.stopped:
                newer, body = self.collector.wait_newer(version, KEEPALIVE_SECONDS)
                if newer == version:
                    self.wfile.write(b": keep-alive\n\n")
                else:
                    version = newer
                    self.wfile.write(b"data: " + body + b"\n\n")
                self.wfile.flush()
        except OSError:
            pass  # the browser disconnected (or stalled past SEND_TIMEOUT): its thread ends


def make_server(
    collector: Collector, host: str, port: int, max_connections: int = MAX_CONNECTIONS
) -> CappedHTTPServer:
    handler = type("BoundViewHandler", (ViewHandler,), {"collector": collector})
    return CappedHTTPServer((host, port), handler, max_connections)
