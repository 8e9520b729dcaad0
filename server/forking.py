"""The forking echo server: the parent only accepts; one child per connection echoes.

    parent: accept() -> fork() -> close(client) -> accept() ...
    child:  close(listener) -> read/write until EOF -> close(client) -> exit
    parent, on SIGCHLD: waitpid(-1, WNOHANG) until no exited child is left

fork() duplicates every descriptor, so after it two descriptors point at each socket; the
kernel frees a socket only when the last one is closed. Each side closes the socket it does
not serve.
"""

from __future__ import annotations

import gc
import os
import select
import signal
import socket
import time

from probe.exits import describe_status
from server.listener import ACCEPTS_PER_WAKEUP, Acceptor, listen_address, open_listener
from server.log import log, set_role
from server.peers import is_quiet, peer_name
from server.stop import StopSignals

TYPE_CHECKING = False  # no typing, contextlib... in a parent that every fork() copies
if TYPE_CHECKING:
    from typing import NoReturn

# A child exits 0 after a clean EOF, 1 when the connection broke (reset, broken pipe), and
# 70 (EX_SOFTWARE) when anything else went wrong on its path: a bug, MemoryError...
EXIT_CLEAN, EXIT_CONNECTION_LOST, EXIT_CHILD_FAILED = 0, 1, 70
DEFAULT_MAX_CHILDREN = 512
STOP_GRACE_SECONDS = 1.5


def echo_until_eof(client: socket.socket, buffer: bytearray) -> tuple[int, OSError | None]:
    """The notes' `while ((n = read(...)) != 0) write(...)`, with partial writes handled."""
    view = memoryview(buffer)
    echoed = 0
    try:
        while received := client.recv_into(buffer):
            client.sendall(view[:received])  # send() may take part of it; sendall loops
            echoed += received
    except OSError as error:
        return echoed, error
    return echoed, None


class Mistakes:
    """Break-it switches, all off by default: each makes one warning of the notes come true."""

    def __init__(
        self,
        no_reap: bool = False,  # exited children stay zombies
        child_keeps_listener: bool = False,  # the port stays open while any child lives
        parent_keeps_client: bool = False,  # clients never see EOF; the parent leaks sockets
        single_waitpid: bool = False,  # one SIGCHLD for many exits leaves zombies behind
    ) -> None:
        self.no_reap = no_reap
        self.child_keeps_listener = child_keeps_listener
        self.parent_keeps_client = parent_keeps_client
        self.single_waitpid = single_waitpid

    def announce(self) -> None:
        if self.no_reap:
            log("BREAK-IT --no-reap: exited children are never waited for and stay zombies")
        if self.child_keeps_listener:
            log("BREAK-IT --child-keeps-listener: children keep the listening socket open")
        if self.parent_keeps_client:
            log("BREAK-IT --parent-keeps-client: the parent never closes client sockets")
        if self.single_waitpid:
            log("BREAK-IT --single-waitpid: one waitpid() per SIGCHLD, however many exited")


class ForkingEchoServer:
    def __init__(
        self,
        host: str,
        port: int,
        max_children: int = DEFAULT_MAX_CHILDREN,
        mistakes: Mistakes | None = None,
    ) -> None:
        set_role("fork-server")
        self.listener = open_listener(host, port)
        self.acceptor = Acceptor(self.listener)
        self.max_children = max_children
        self.mistakes = mistakes or Mistakes()
        self.children: dict[int, str | None] = {}  # pid -> peer (None: served unlogged)
        self.exited: list[tuple[int, int]] = []  # (pid, status): reaped, not yet settled
        self.kept_clients: list[socket.socket] = []  # --parent-keeps-client only
        self.full = False  # at max_children: new connections wait in the backlog
        self.echo_buffer = shared_echo_buffer()
        self.signals = StopSignals()
        self.poller = readiness_poller(self.listener.fileno(), self.signals.wakeup_fd)
        if not self.mistakes.no_reap:
            signal.signal(signal.SIGCHLD, self.reap_children)

    # ------------------------------------------------------------ the parent

    def serve_forever(self) -> int:
        log(
            f"listening on {listen_address(self.listener)} "
            f"(fork server, max {self.max_children} children)"
        )
        freeze_heap()
        self.mistakes.announce()
        while not self.signals.requested:
            self.settle_exits()
            if self.wait_while_full():
                continue
            if pause := self.acceptor.pause_left():
                self.signals.wait(pause)  # out of descriptors: let the backlog hold them
                continue
            ready = {fd for fd, _ in self.poller.poll()}  # select(), by poll(): see below
            if self.signals.wakeup_fd in ready:
                self.signals.drain()
            if self.listener.fileno() in ready:
                self.accept_and_fork()
        self.stop()
        return 0

    def accept_and_fork(self) -> None:
        for client, address in self.acceptor.accept(self.room()):
            self.settle_exits()
            if not self.fork_child(client, address) or self.signals.requested:
                return

    def fork_child(self, client: socket.socket, address: tuple) -> bool:
        peer, quiet = peer_name(address), is_quiet(address)
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            pid = os.fork()
        except OSError as error:
            # The notes: if fork() fails, close the client socket and go on.
            client.close()
            log(f"fork failed ({error}): closed client {peer}")
            self.signals.wait(1.0)  # retry once a child exits, not in a tight loop
            return False
        if pid == 0:
            self.run_child(client, peer, quiet)
        self.children[pid] = None if quiet else peer
        # The child holds its own descriptor; the parent's copy would keep the
        # connection open after the child closes it (the client would never see EOF).
        if self.mistakes.parent_keeps_client:
            self.kept_clients.append(client)  # a Python socket closes when collected
        else:
            client.close()
        if not quiet:
            log(f"new client connected... {peer} -> child {pid}")
        return True

    def reap_children(self, _signum: int = 0, _frame: object = None) -> None:
        # Signals do not queue: one SIGCHLD may stand for many exits. A single waitpid()
        # per signal (the book's first version) leaves the rest as zombies, so loop.
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            # Python runs this handler between any two steps of the main loop, even between
            # fork() and recording the new pid: the main loop updates its table (settle).
            self.exited.append((pid, status))
            if self.mistakes.single_waitpid:
                return

    def settle_exits(self) -> None:
        while self.exited:
            pid, status = self.exited.pop(0)
            if self.children.pop(pid, "") is not None:
                log(f"removed proc id: {pid} ({describe_status(status)})")

    def room(self) -> int:
        # Unreaped children are not counted: zombies pile up until fork() itself fails.
        if self.mistakes.no_reap:
            return ACCEPTS_PER_WAKEUP
        return self.max_children - len(self.children)

    def wait_while_full(self) -> bool:
        """At max_children, sleep until a child exits (SIGCHLD wakes us); True if it slept."""
        full = self.room() <= 0
        if full and not self.full:
            log(
                f"at the limit of {self.max_children} children: new connections wait in the backlog"
            )
        elif self.full and not full:
            log(f"below the limit of {self.max_children} children again: accepting")
        self.full = full
        if full:
            self.signals.wait(1.0)
        return full

    # ------------------------------------------------------------ the child

    def run_child(self, client: socket.socket, peer: str, quiet: bool) -> NoReturn:
        # A child must never return into the parent's accept loop, whatever goes wrong on its
        # path: os._exit() in a `finally` (socketserver: "This must never return").
        status = EXIT_CHILD_FAILED
        try:
            self.signals.close_in_child()
            # The child serves one client: its copy of the listening socket would keep the
            # port open after the parent closes it.
            if not self.mistakes.child_keeps_listener:
                os.close(self.listener.fileno())
            status = self.echo_one_client(client, peer, quiet)
        except BaseException as error:
            log(f"child failed... {peer}: {error!r}", "fork-child")
        finally:
            # _exit, not exit: the parent's clean-up (atexit, finally blocks) must not run twice.
            os._exit(status)

    def echo_one_client(self, client: socket.socket, peer: str, quiet: bool) -> int:
        status = EXIT_CLEAN
        echoed, error = echo_until_eof(client, self.echo_buffer)
        if error is None:
            if not quiet:
                log(f"client disconnected... {peer} ({echoed} bytes echoed)", "fork-child")
        else:
            log(f"client lost... {peer} after {echoed} bytes echoed: {error}", "fork-child")
            status = EXIT_CONNECTION_LOST
        client.close()
        return status

    # ------------------------------------------------------------ the stop

    def stop(self) -> None:
        self.settle_exits()
        log(
            f"shutting down on {self.signals.requested}: closing the listener, "
            f"ending {len(self.children)} children"
        )
        self.listener.close()
        for client in self.kept_clients:
            client.close()
        self.signal_children(signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        while self.children and time.monotonic() < deadline:
            self.signals.wait(0.05)  # the SIGCHLD handler reaps them as they exit
            self.settle_exits()
        if self.children:
            self.signal_children(signal.SIGKILL)
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # from here, wait for each in turn
            for pid in list(self.children):
                try:
                    self.exited.append(os.waitpid(pid, 0))
                except ChildProcessError:  # the handler got it first
                    continue
            self.settle_exits()
        log("shut down")

    def signal_children(self, signum: int) -> None:
        for pid in list(self.children):
            try:
                os.kill(pid, signum)
            except ProcessLookupError:  # exited, not yet reaped
                continue


# ---------------------------------------------------------------- speed and memory
# Measured by the benchmark: a child copies every page of the parent that it writes to, so
# the parent prepares what children share and leaves nothing for them to write needlessly.
# (Mistakes is a plain class for the same reason: importing dataclasses grows the parent
# by 1.6 MB, and a bigger parent makes every fork() slower.)


def shared_echo_buffer() -> bytearray:
    """Allocated once in the parent: a child writes only the pages its echo touches."""
    return bytearray(65536)


def readiness_poller(*fds: int) -> select.poll:
    """The main loop's select() on the listener and the self-pipe, as poll(): CPython's
    select() keeps three FD_SETSIZE tables on the C stack, 48 KB it writes on every call, so
    after each fork() the parent's next wait would leave its child 12 private stack pages."""
    poller = select.poll()
    for fd in fds:
        poller.register(fd, select.POLLIN)
    return poller


def freeze_heap() -> None:
    """Move every object so far out of the collector's reach: a collection in a child would
    write to all of them and copy the parent's memory page by page. Garbage is collected
    first, or it would be frozen (and copied) for good."""
    gc.collect()
    gc.freeze()
