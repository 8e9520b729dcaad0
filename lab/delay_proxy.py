"""A delay line for TCP: every byte reaches the other side --delay-ms later, in order.

    client <-> delay proxy <-> upstream (an echo server)
    each chunk read is stamped now + delay and written out once due; an EOF is a mark in the
    same queue, so the FIN (shutdown(SHUT_WR) on the other side) follows the delayed data

With the same delay both ways, a round trip through the proxy takes 2 x delay: a long-haul
link inside a compose network, for the latency experiment (python -m lab.latency). One
process, non-blocking sockets, one selector; each direction buffers at most --buffer-kib
and stops reading from its source when full, so a slow reader pushes back on the writer.

    python3 -m lab.delay_proxy --listen 0.0.0.0:9100 --upstream fork-server:9000 --delay-ms 87.5
"""

from __future__ import annotations

import argparse
import errno
import os
import selectors
import socket
import sys
import time
from collections import deque
from dataclasses import dataclass, field

from client.arguments import parse_address
from server.listener import Acceptor, listen_address, open_listener
from server.log import log, set_role
from server.peers import peer_name
from server.stop import StopSignals

RECV_SIZE = 65536
TICK_SECONDS = 1.0


@dataclass(eq=False)
class Direction:
    """One way through the proxy: what was read from `source`, waiting for its time to go."""

    source: socket.socket
    dest: socket.socket
    queue: deque[tuple[float, bytes | None]] = field(default_factory=deque)  # None: the EOF
    queued: int = 0
    forwarded: int = 0
    reading: bool = True  # until the source's EOF
    blocked: bool = False  # the destination's send buffer is full: wait until it is writable
    done: bool = False  # the EOF went out after the data


@dataclass(eq=False)
class Relay:
    peer: str
    client: socket.socket
    upstream: socket.socket
    up: Direction  # client -> upstream
    down: Direction  # upstream -> client
    connecting: bool = True
    started: float = field(default_factory=time.monotonic)
    masks: dict[socket.socket, int] = field(default_factory=dict)


class DelayProxy:
    def __init__(
        self,
        listen: tuple[str, int],
        upstream: tuple[str, int],
        delay_ms: float,
        buffer_limit: int,
    ) -> None:
        set_role("delay-proxy")
        self.listener = open_listener(*listen)
        self.upstream = upstream
        self.delay_ms = delay_ms
        self.delay = delay_ms / 1000
        self.buffer_limit = buffer_limit
        self.acceptor = Acceptor(self.listener)
        self.accepting = True
        self.signals = StopSignals()
        self.selector = selectors.DefaultSelector()
        self.relays: set[Relay] = set()

    def serve_forever(self) -> int:
        host, port = self.upstream
        log(
            f"listening on {listen_address(self.listener)}: to {host}:{port}, "
            f"{self.delay_ms:g} ms each way (RTT {2 * self.delay_ms:g} ms), "
            f"{self.buffer_limit // 1024} KiB buffered at most each way"
        )
        self.selector.register(self.listener, selectors.EVENT_READ, "listener")
        self.selector.register(self.signals.wakeup_fd, selectors.EVENT_READ, "wakeup")
        while not self.signals.requested:
            for key, events in self.selector.select(self.next_timeout()):
                if key.data == "listener":
                    self.accept()
                elif key.data == "wakeup":
                    self.signals.drain()
                else:
                    relay, sock = key.data
                    if relay in self.relays:
                        self.on_ready(relay, sock, events)
            now = time.monotonic()
            for relay in list(self.relays):
                self.pump(relay, now)
            self.update_accepting()
        self.stop()
        return 0

    def next_timeout(self) -> float:
        """Sleep until the earliest chunk is due (a blocked one waits for writability)."""
        dues = [
            d.queue[0][0]
            for relay in self.relays
            for d in (relay.up, relay.down)
            if d.queue and not d.blocked and not (d is relay.up and relay.connecting)
        ]
        if pause := self.acceptor.pause_left():
            dues.append(time.monotonic() + pause)  # wake when accepting may resume
        if not dues:
            return TICK_SECONDS
        return min(max(0.0, min(dues) - time.monotonic()), TICK_SECONDS)

    def accept(self) -> None:
        for client, address in self.acceptor.accept():
            self.open_relay(client, peer_name(address))
        self.update_accepting()

    def update_accepting(self) -> None:
        """Watch the listener except during an accept pause (the relays keep flowing)."""
        should = self.acceptor.pause_left() == 0
        if should == self.accepting:
            return
        self.accepting = should
        if should:
            self.selector.register(self.listener, selectors.EVENT_READ, "listener")
        else:
            self.selector.unregister(self.listener)

    def open_relay(self, client: socket.socket, peer: str) -> None:
        host, port = self.upstream
        try:
            family, kind, proto, _, address = socket.getaddrinfo(
                host, port, type=socket.SOCK_STREAM
            )[0]
            upstream = socket.socket(family, kind, proto)
        except OSError as error:
            log(f"{peer}: cannot reach {host}:{port}: {error}")
            client.close()
            return
        for sock in (client, upstream):
            sock.setblocking(False)
            # Each delayed chunk must leave at once when due, not wait for Nagle's ACK.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        relay = Relay(
            peer, client, upstream, Direction(client, upstream), Direction(upstream, client)
        )
        self.relays.add(relay)
        status = upstream.connect_ex(address)
        if status not in (0, errno.EINPROGRESS):
            self.close(relay, f"connect to {host}:{port} failed: {os.strerror(status)}")
            return
        self.update_interest(relay)

    def on_ready(self, relay: Relay, sock: socket.socket, events: int) -> None:
        if relay.connecting and sock is relay.upstream:
            if not events & selectors.EVENT_WRITE:
                return
            status = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if status:
                host, port = self.upstream
                self.close(relay, f"connect to {host}:{port} failed: {os.strerror(status)}")
                return
            relay.connecting = False
        if events & selectors.EVENT_READ:
            self.read(relay, relay.up if sock is relay.client else relay.down)

    def read(self, relay: Relay, direction: Direction) -> None:
        if not direction.reading or direction.queued >= self.buffer_limit:
            return
        try:
            data = direction.source.recv(min(RECV_SIZE, self.buffer_limit - direction.queued))
        except BlockingIOError:
            return
        except OSError as error:
            self.close(relay, f"lost: {error}")
            return
        # Stamped on arrival: this chunk leaves exactly one delay later, after every older one.
        direction.queue.append((time.monotonic() + self.delay, data or None))
        if data:
            direction.queued += len(data)
        else:
            direction.reading = False

    def pump(self, relay: Relay, now: float) -> None:
        try:
            if not relay.connecting:
                forward(relay.up, now)
            forward(relay.down, now)
        except OSError as error:
            self.close(relay, f"lost: {error}")
            return
        if relay.up.done and relay.down.done:
            self.close(relay)
        else:
            self.update_interest(relay)

    def update_interest(self, relay: Relay) -> None:
        for sock, outgoing, incoming in (
            (relay.client, relay.up, relay.down),
            (relay.upstream, relay.down, relay.up),
        ):
            connecting = relay.connecting and sock is relay.upstream
            mask = 0
            # A full buffer stops the reads: TCP flow control then slows the sender down.
            if outgoing.reading and outgoing.queued < self.buffer_limit and not connecting:
                mask |= selectors.EVENT_READ
            if incoming.blocked or connecting:
                mask |= selectors.EVENT_WRITE
            current = relay.masks.get(sock, 0)
            if mask == current:
                continue
            if not current:
                self.selector.register(sock, mask, (relay, sock))
            elif not mask:
                self.selector.unregister(sock)
            else:
                self.selector.modify(sock, mask, (relay, sock))
            relay.masks[sock] = mask

    def close(self, relay: Relay, problem: str | None = None) -> None:
        for sock in (relay.client, relay.upstream):
            if relay.masks.get(sock):
                self.selector.unregister(sock)
            sock.close()
        self.relays.discard(relay)
        host, port = self.upstream
        took = time.monotonic() - relay.started
        log(
            f"{relay.peer} -> {host}:{port}: {relay.up.forwarded} bytes up, "
            f"{relay.down.forwarded} bytes down in {took:.3f} s"
            + (f" ({problem})" if problem else "")
        )

    def stop(self) -> None:
        log(f"shutting down on {self.signals.requested}: closing {len(self.relays)} connections")
        for relay in list(self.relays):
            self.close(relay, "proxy stopped")
        self.selector.close()
        self.listener.close()
        log("shut down")


def forward(direction: Direction, now: float) -> None:
    """Send what is due, oldest first; stop at the first chunk not yet due."""
    direction.blocked = False
    while direction.queue and direction.queue[0][0] <= now:
        due, data = direction.queue[0]
        if data is None:
            direction.queue.popleft()
            # The peer half-closed: pass the FIN on, and keep the other direction open.
            direction.dest.shutdown(socket.SHUT_WR)
            direction.done = True
            return
        try:
            sent = direction.dest.send(data)
        except BlockingIOError:
            sent = 0
        direction.forwarded += sent
        direction.queued -= sent
        if sent < len(data):
            direction.queue[0] = (due, data[sent:])
            direction.blocked = True
            return
        direction.queue.popleft()


def listen_address_arg(text: str) -> tuple[str, int]:
    """HOST:PORT to listen on; port 0 asks the kernel for a free one (the tests use it)."""
    host, sep, port = text.rpartition(":")
    if sep and port == "0":
        return host.strip("[]") or "0.0.0.0", 0
    return parse_address(text)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m lab.delay_proxy",
        description="TCP proxy that delays every byte by the same time in each direction, "
        "keeping byte order and passing half-closes on: round trip = 2 x delay.",
    )
    parser.add_argument(
        "--listen",
        type=listen_address_arg,
        default=("0.0.0.0", 9100),
        metavar="HOST:PORT",
        help="where clients connect; port 0 picks a free one and logs it (default: 0.0.0.0:9100)",
    )
    parser.add_argument(
        "--upstream", type=parse_address, required=True, metavar="HOST:PORT", help="the server"
    )
    parser.add_argument(
        "--delay-ms",
        type=float,
        default=87.5,
        metavar="MS",
        help="one-way delay in milliseconds (default: %(default)s, a 175 ms RTT as in UNP §16.2)",
    )
    parser.add_argument(
        "--buffer-kib",
        type=int,
        default=1024,
        metavar="KIB",
        help="at most this much waits in each direction (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    if args.delay_ms < 0:
        parser.error("--delay-ms must be 0 or more")
    if args.buffer_kib < 1:
        parser.error("--buffer-kib must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    proxy = DelayProxy(args.listen, args.upstream, args.delay_ms, args.buffer_kib * 1024)
    return proxy.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
