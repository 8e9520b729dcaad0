"""The select echo server: one process watches every socket and serves whichever is ready.

    loop: copy the watched sets, re-arm the timeout, select()
          listener readable  -> accept, start watching the new client
          client readable    -> read into its buffer (EOF: finish once the buffer is sent)
          client writable    -> send what its buffer holds

Client sockets are non-blocking and each has a bounded output buffer: a client that sends
but never reads fills its own buffer, and the server then stops reading from it (TCP flow
control pushes back on that client alone) instead of blocking everyone in send().

`MultiplexingEchoServer` holds the per-client logic; a subclass names the kernel mechanism
that waits (select() here, epoll in `epolling.py`), as the selectors module does.
"""

from __future__ import annotations

import errno
import resource
import select
import socket
import time
from dataclasses import dataclass, field

from probe.limits import raise_open_files
from server.listener import (
    FD_SETSIZE,
    Shutdown,
    is_quiet,
    listen_address,
    log,
    open_listener,
    peer_name,
    set_role,
)

BUFFER_LIMIT = 256 * 1024
RECV_SIZE = 65536
TICK_SECONDS = 1.0
ACCEPTS_PER_WAKEUP = 64
RESERVED_FDS = 16  # stdio, the listener, the signal self-pipe, and room to spare
WANTED_DESCRIPTORS = 65536  # --no-fd-cap: room to go past FD_SETSIZE
EXIT_SELECT_FAILED = 70  # EX_SOFTWARE: select() refused a descriptor (--no-fd-cap)


@dataclass(slots=True)
class Client:
    sock: socket.socket
    peer: str
    pending: bytearray = field(default_factory=bytearray)
    echoed: int = 0
    reading: bool = True  # False once the client half-closed (EOF)
    told_full: bool = False
    quiet: bool = False  # served without connect/disconnect lines (health probes)


def descriptor_ceiling() -> int:
    """How many descriptors this process may open (RLIMIT_NOFILE's soft limit)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return soft if soft != resource.RLIM_INFINITY else 1 << 20


class MultiplexingEchoServer:
    model = "multiplexing"
    descriptor_limit: int | None = None  # the wait mechanism's own ceiling, if any

    def __init__(
        self, host: str, port: int, max_clients: int | None, blocking_send: bool = False
    ) -> None:
        set_role(f"{self.model}-server")
        self.blocking_send = blocking_send  # break it: one stuck reader stalls everyone
        self.listener = open_listener(host, port)
        self.shutdown = Shutdown()
        self.clients: dict[int, Client] = {}
        self.max_clients = self.clamp_max_clients(max_clients)
        self.accepting = True
        self.accept_paused_until = 0.0  # after EMFILE: monotonic time to resume accepting

    def clamp_max_clients(self, requested: int | None) -> int:
        ceiling = descriptor_ceiling()
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
    def watch(self, fd: int, read: bool, write: bool) -> None:
        raise NotImplementedError

    def forget(self, fd: int) -> None:
        raise NotImplementedError

    def wait_ready(self, timeout: float) -> tuple[list[int], list[int]]:
        raise NotImplementedError

    def serve_forever(self) -> int:
        log(
            f"listening on {listen_address(self.listener)} "
            f"({self.model} server, max {self.max_clients} clients)"
        )
        self.announce_mistakes()
        wakeup_fd, listener_fd = self.shutdown.wakeup_fd, self.listener.fileno()
        self.watch(wakeup_fd, read=True, write=False)
        self.watch(listener_fd, read=True, write=False)
        while not self.shutdown.requested:
            readable, writable = self.wait_ready(self.next_timeout())
            for fd in readable:
                if fd == wakeup_fd:
                    self.shutdown.drain()
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
        for _ in range(ACCEPTS_PER_WAKEUP):
            if len(self.clients) >= self.max_clients:
                break
            try:
                sock, address = self.listener.accept()
            except (BlockingIOError, ConnectionAbortedError):
                break
            except OSError as error:
                if error.errno not in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    raise
                # The connection stays in the backlog; watching the listener now would
                # report it readable again at once (a busy loop), so pause until a tick.
                log(f"accept failed ({error}): pausing accepts for {TICK_SECONDS:g} s")
                self.accept_paused_until = time.monotonic() + TICK_SECONDS
                break
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
        paused = time.monotonic() < self.accept_paused_until
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
        """The tick, cut short when an EMFILE pause ends sooner."""
        pause_left = self.accept_paused_until - time.monotonic()
        return min(TICK_SECONDS, pause_left) if pause_left > 0 else TICK_SECONDS

    def housekeeping(self) -> None:
        if self.accept_paused_until and time.monotonic() >= self.accept_paused_until:
            self.accept_paused_until = 0.0
            self.update_accepting()

    def stop(self) -> None:
        log(
            f"shutting down on {self.shutdown.requested}: "
            f"closing the listener and {len(self.clients)} clients"
        )
        for client in self.clients.values():
            client.sock.close()
        self.clients.clear()
        self.listener.close()
        log("shut down")


class SelectEchoServer(MultiplexingEchoServer):
    model = "select"
    descriptor_limit = FD_SETSIZE

    def __init__(
        self,
        host: str,
        port: int,
        max_clients: int | None,
        blocking_send: bool = False,
        fd_cap: bool = True,
    ) -> None:
        self.reads: set[int] = set()
        self.writes: set[int] = set()
        if not fd_cap:  # break it: let descriptors reach past what select() can watch
            self.descriptor_limit = None
            raise_open_files(WANTED_DESCRIPTORS)
        super().__init__(host, port, max_clients, blocking_send)

    def announce_mistakes(self) -> None:
        super().announce_mistakes()
        if self.descriptor_limit is None:
            log(f"BREAK-IT --no-fd-cap: accepting past FD_SETSIZE ({FD_SETSIZE})")

    def watch(self, fd: int, read: bool, write: bool) -> None:
        (self.reads.add if read else self.reads.discard)(fd)
        (self.writes.add if write else self.writes.discard)(fd)

    def forget(self, fd: int) -> None:
        self.reads.discard(fd)
        self.writes.discard(fd)

    def wait_ready(self, timeout: float) -> tuple[list[int], list[int]]:
        # select() overwrites the fd sets and the timeout it is given, so every call gets
        # fresh copies of the watched sets (the C code's `temps = reads`) and a re-armed
        # timeout; Python builds new fd_sets from these lists on each call.
        try:
            readable, writable, _ = select.select(list(self.reads), list(self.writes), [], timeout)
        except ValueError as error:  # only with --no-fd-cap: a descriptor >= FD_SETSIZE
            log(f"select() failed: {error} (highest fd {max(self.reads | self.writes)}): exiting")
            raise SystemExit(EXIT_SELECT_FAILED) from None
        return readable, writable
