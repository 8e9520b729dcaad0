"""What the select and epoll servers share: per-client buffers, backpressure, the loop.

    loop: wait for readiness (the subclass's kernel mechanism)
          listener readable  -> accept, start watching the new client
          client readable    -> read into its buffer (EOF: finish once the buffer is sent)
          client writable    -> send what its buffer holds

Client sockets are non-blocking and each has a bounded output buffer: a client that sends
but never reads fills its own buffer, and the server then stops reading from it (TCP flow
control pushes back on that client alone) instead of blocking everyone in send().

`MultiplexingEchoServer` is abstract, as `selectors.BaseSelector` is: one small subclass per
kernel mechanism (`selecting.SelectEchoServer`, `epolling.EpollEchoServer`) keeps the interest
sets and waits; the per-client logic never knows which one it got.
"""

from __future__ import annotations

import socket
from abc import ABC, abstractmethod
from dataclasses import dataclass, field

from probe.limits import open_files_limit
from server.listener import Acceptor, listen_address, open_listener
from server.log import log, set_role
from server.peers import is_quiet, peer_name
from server.stop import StopSignals

BUFFER_LIMIT = 256 * 1024
RECV_SIZE = 65536
TICK_SECONDS = 1.0
RESERVED_FDS = 16  # stdio, the listener, the signal self-pipe, and room to spare


@dataclass(slots=True)
class Client:
    sock: socket.socket
    peer: str
    pending: bytearray = field(default_factory=bytearray)
    echoed: int = 0
    reading: bool = True  # False once the client half-closed (EOF)
    told_full: bool = False
    quiet: bool = False  # served without connect/disconnect lines (health probes)


class MultiplexingEchoServer(ABC):
    """The per-client logic; a subclass names the kernel mechanism that waits."""

    model = "multiplexing"
    descriptor_limit: int | None = None  # the wait mechanism's own ceiling, if any

    def __init__(
        self, host: str, port: int, max_clients: int | None = None, blocking_send: bool = False
    ) -> None:
        set_role(f"{self.model}-server")
        self.blocking_send = blocking_send  # break it: one stuck reader stalls everyone
        self.listener = open_listener(host, port)
        self.acceptor = Acceptor(self.listener)
        self.signals = StopSignals()
        self.clients: dict[int, Client] = {}
        self.max_clients = self.clamp_max_clients(max_clients)
        self.accepting = True

    def clamp_max_clients(self, requested: int | None) -> int:
        ceiling = open_files_limit()
        if self.descriptor_limit is not None:
            ceiling = min(ceiling, self.descriptor_limit)
        allowed = max(1, ceiling - RESERVED_FDS)
        if requested is None:
            return allowed
        if requested > allowed:
            log(f"--max-clients {requested} lowered to {allowed}: descriptors stop at {ceiling}")
            return allowed
        return requested

    def announce_mistakes(self) -> None:
        if self.blocking_send:
            log("BREAK-IT --blocking-send: echoes go out with a blocking sendall()")

    # The wait mechanism: a subclass keeps the interest sets and waits on them.
    @abstractmethod
    def watch(self, fd: int, read: bool, write: bool) -> None:
        """Watch `fd` for reading and/or writing (both False: keep it, watch nothing)."""

    @abstractmethod
    def forget(self, fd: int) -> None:
        """Stop watching `fd` (before it is closed)."""

    @abstractmethod
    def wait_ready(self, timeout: float) -> tuple[list[int], list[int]]:
        """Block until something is ready or `timeout` passes: (readable, writable)."""

    def serve_forever(self) -> int:
        log(
            f"listening on {listen_address(self.listener)} "
            f"({self.model} server, max {self.max_clients} clients)"
        )
        self.announce_mistakes()
        wakeup_fd, listener_fd = self.signals.wakeup_fd, self.listener.fileno()
        self.watch(wakeup_fd, read=True, write=False)
        self.watch(listener_fd, read=True, write=False)
        while not self.signals.requested:
            readable, writable = self.wait_ready(self.next_timeout())
            for fd in readable:
                if fd == wakeup_fd:
                    self.signals.drain()
                elif fd == listener_fd:
                    self.accept_clients()
                elif client := self.clients.get(fd):
                    self.on_readable(fd, client)
            for fd in writable:
                if client := self.clients.get(fd):
                    self.flush(fd, client)
            self.housekeeping()
        self.stop()
        return 0

    def accept_clients(self) -> None:
        for sock, address in self.acceptor.accept(room=self.max_clients - len(self.clients)):
            peer = peer_name(address)
            fd = sock.fileno()
            if self.descriptor_limit is not None and fd >= self.descriptor_limit:
                sock.close()
                log(f"refused {peer}: descriptor {fd} is beyond what {self.model}() can watch")
                continue
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.clients[fd] = client = Client(sock, peer, quiet=is_quiet(address))
            self.watch(fd, read=True, write=False)
            if not client.quiet:
                log(f"new client connected... {peer} fd {fd} ({len(self.clients)} clients)")
        self.update_accepting()

    def update_accepting(self) -> None:
        """Watch the listener only while there is room; waiting clients sit in the backlog."""
        paused = self.acceptor.pause_left() > 0
        should = not paused and len(self.clients) < self.max_clients
        if should == self.accepting:
            return
        self.accepting = should
        self.watch(self.listener.fileno(), read=should, write=False)
        if len(self.clients) >= self.max_clients:
            log(f"at the limit of {self.max_clients} clients: new connections wait in the backlog")
        elif should:
            log(f"below the limit of {self.max_clients} clients again: accepting")

    def on_readable(self, fd: int, client: Client) -> None:
        room = min(RECV_SIZE, BUFFER_LIMIT - len(client.pending))
        if room <= 0:
            return  # recv(0) would read as EOF
        try:
            data = client.sock.recv(room)
        except BlockingIOError:
            return
        except OSError as error:
            self.drop(fd, client, error)
            return
        if not data:
            client.reading = False  # half-closed: echo what is left, then close
        elif not client.pending:
            # Nothing queued (the usual case): echo recv()'s bytes as they are and buffer
            # only what send() leaves; the interest sets change only if something is left.
            sent = self.send_some(fd, client, data)
            if sent is not None and sent < len(data):
                client.pending += memoryview(data)[sent:]
                self.watch(fd, read=True, write=True)
            return
        else:
            client.pending += data  # behind what is queued: the echo keeps its order
        self.flush(fd, client)

    def send_some(self, fd: int, client: Client, data: bytes | bytearray) -> int | None:
        """send() what the socket takes now; None if the connection broke (and was dropped)."""
        try:
            if self.blocking_send:
                client.sock.setblocking(True)  # waits for this one client, however long
                client.sock.sendall(data)
                client.sock.setblocking(False)
                sent = len(data)
            else:
                sent = client.sock.send(data)
        except BlockingIOError:
            return 0
        except OSError as error:
            self.drop(fd, client, error)
            return None
        client.echoed += sent
        return sent

    def flush(self, fd: int, client: Client) -> None:
        if client.pending:
            sent = self.send_some(fd, client, client.pending)
            if sent is None:
                return
            del client.pending[:sent]
        if not client.reading and not client.pending:
            self.close_client(fd, client)
            if not client.quiet:
                log(f"client disconnected... {client.peer} fd {fd} ({client.echoed} bytes echoed)")
            return
        full = len(client.pending) >= BUFFER_LIMIT
        if full and not client.told_full:
            client.told_full = True
            log(
                f"client {client.peer} fd {fd} is not reading its echo: "
                f"{BUFFER_LIMIT // 1024} KiB buffered, pausing reads from it"
            )
        self.watch(fd, read=client.reading and not full, write=bool(client.pending))

    def drop(self, fd: int, client: Client, error: OSError) -> None:
        self.close_client(fd, client)
        log(f"client lost... {client.peer} fd {fd} after {client.echoed} bytes echoed: {error}")

    def close_client(self, fd: int, client: Client) -> None:
        self.forget(fd)
        del self.clients[fd]
        client.sock.close()
        self.update_accepting()

    def next_timeout(self) -> float:
        """The tick, cut short when an accept pause ends sooner."""
        pause_left = self.acceptor.pause_left()
        return min(TICK_SECONDS, pause_left) if pause_left > 0 else TICK_SECONDS

    def housekeeping(self) -> None:
        if not self.accepting:
            self.update_accepting()  # an accept pause may be over (no system call if not)

    def stop(self) -> None:
        log(
            f"shutting down on {self.signals.requested}: "
            f"closing the listener and {len(self.clients)} clients"
        )
        for client in self.clients.values():
            client.sock.close()
        self.clients.clear()
        self.listener.close()
        log("shut down")
