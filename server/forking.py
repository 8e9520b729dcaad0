"""The forking echo server: the parent only accepts; one child per connection echoes.

    parent: accept() -> fork() -> close(client) -> accept() ...
    child:  close(listener) -> read/write until EOF -> close(client) -> exit
    parent, on SIGCHLD: waitpid(-1, WNOHANG) until no exited child is left

fork() duplicates every descriptor, so after it two descriptors point at each socket; the
kernel frees a socket only when the last one is closed. Each side closes the socket it does
not serve.
"""

from __future__ import annotations

import contextlib
import gc
import os
import select
import signal
import socket
import time

from server.listener import (
    Shutdown,
    is_quiet,
    listen_address,
    log,
    open_listener,
    peer_name,
    set_role,
)

# A child exits 0 after a clean EOF and 1 when the connection broke (reset, broken pipe).
EXIT_CLEAN, EXIT_CONNECTION_LOST = 0, 1
STOP_GRACE_SECONDS = 1.5


def describe_status(status: int) -> str:
    code = os.waitstatus_to_exitcode(status)
    if code >= 0:
        return f"exit {code}"
    return f"killed by signal {-code} ({signal.Signals(-code).name})"


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
    """Break-it switches, all off by default: each makes one warning of the notes come true.

    A plain class, not a dataclass: importing dataclasses grows the parent by 1.6 MB, and a
    bigger parent makes every fork() slower.
    """

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
        self, host: str, port: int, max_children: int, mistakes: Mistakes | None = None
    ) -> None:
        set_role("fork-server")
        self.listener = open_listener(host, port)
        self.max_children = max_children
        self.mistakes = mistakes or Mistakes()
        self.children: dict[int, str | None] = {}  # pid -> peer (None: served unlogged)
        self.exited: list[tuple[int, int]] = []  # (pid, status): reaped, not yet settled
        self.kept_clients: list[socket.socket] = []  # --parent-keeps-client only
        # Allocated once in the parent: a child writes only the pages its echo touches.
        self.echo_buffer = bytearray(65536)
        self.shutdown = Shutdown()
        if not self.mistakes.no_reap:
            signal.signal(signal.SIGCHLD, self.reap_children)

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

    def serve_forever(self) -> int:
        log(
            f"listening on {listen_address(self.listener)} "
            f"(fork server, max {self.max_children} children)"
        )
        # Move every object so far out of the collector's reach: a collection in a child
        # would write to all of them and copy the parent's memory page by page.
        gc.freeze()
        self.mistakes.announce()
        at_limit = False
        while not self.shutdown.requested:
            self.settle_exits()
            if self.at_limit():
                if not at_limit:
                    log(
                        f"at the limit of {self.max_children} children: "
                        "new connections wait in the backlog"
                    )
                    at_limit = True
                self.shutdown.wait(1.0)  # SIGCHLD wakes us as soon as a child exits
                continue
            if at_limit:
                log(f"below the limit of {self.max_children} children again: accepting")
                at_limit = False
            ready, _, _ = select.select([self.listener, self.shutdown.wakeup_fd], [], [])
            if self.shutdown.wakeup_fd in ready:
                self.shutdown.drain()
            if self.listener in ready:
                self.accept_and_fork()
        self.stop()
        return 0

    def at_limit(self) -> bool:
        # Unreaped children are not counted: zombies pile up until fork() itself fails.
        return not self.mistakes.no_reap and len(self.children) >= self.max_children

    def accept_and_fork(self) -> None:
        while not self.at_limit() and not self.shutdown.requested:
            self.settle_exits()
            try:
                client, address = self.listener.accept()
            except (BlockingIOError, ConnectionAbortedError):
                return
            except OSError as error:  # EMFILE, ENFILE, ENOBUFS: wait instead of spinning
                log(f"accept failed ({error}): pausing accepts for 1 s")
                self.shutdown.wait(1.0)
                return
            peer = peer_name(address)
            quiet = is_quiet(address)
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            try:
                pid = os.fork()
            except OSError as error:
                # The notes: if fork() fails, close the client socket and go on.
                client.close()
                log(f"fork failed ({error}): closed client {peer}")
                self.shutdown.wait(1.0)  # retry once a child exits, not in a tight loop
                return
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

    def run_child(self, client: socket.socket, peer: str, quiet: bool) -> None:
        # Every page the child writes is copied from the parent, so it runs the notes' child
        # and nothing else: its signal handlers stay as inherited (see Shutdown).
        self.shutdown.close_in_child()
        # The child serves one client: its copy of the listening socket would keep the
        # port open after the parent closes it.
        if not self.mistakes.child_keeps_listener:
            os.close(self.listener.fileno())
        status = EXIT_CLEAN
        echoed, error = echo_until_eof(client, self.echo_buffer)
        if error is None:
            if not quiet:
                log(f"client disconnected... {peer} ({echoed} bytes echoed)", "fork-child")
        else:
            log(f"client lost... {peer} after {echoed} bytes echoed: {error}", "fork-child")
            status = EXIT_CONNECTION_LOST
        client.close()
        # _exit, not exit: the parent's clean-up (atexit, finally blocks) must not run twice.
        os._exit(status)

    def stop(self) -> None:
        self.settle_exits()
        log(
            f"shutting down on {self.shutdown.requested}: closing the listener, "
            f"ending {len(self.children)} children"
        )
        self.listener.close()
        for client in self.kept_clients:
            client.close()
        self.signal_children(signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        while self.children and time.monotonic() < deadline:
            self.shutdown.wait(0.05)  # the SIGCHLD handler reaps them as they exit
            self.settle_exits()
        if self.children:
            self.signal_children(signal.SIGKILL)
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # from here, wait for each in turn
            for pid in list(self.children):
                with contextlib.suppress(ChildProcessError):  # the handler got it first
                    self.exited.append(os.waitpid(pid, 0))
            self.settle_exits()
        log("shut down")

    def signal_children(self, signum: int) -> None:
        for pid in list(self.children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)
