"""The split-I/O client: after connect() the process forks; the child writes, the parent reads.

    connect() -> fork()
      child:  write the payload -> shutdown(SHUT_WR) -> exit
      parent: read until EOF, verifying every byte -> waitpid(child)

A TCP socket is full-duplex, so the two directions run at once: the writer never waits for
an echo before sending more, and the reader never waits for the writer. With K connections
the parent forks K writers and reads all K sockets from one selector.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import socket
import sys
import time
from dataclasses import dataclass, field

from client.payload import Payload, TypedPayload
from probe.compare import first_difference
from probe.exits import ending

TICK_SECONDS = 0.2
CONNECT_TIMEOUT_SECONDS = 30.0
QUIT_LINES = (b"q\n", b"Q\n", b"q\r\n", b"Q\r\n", b"q", b"Q")


def say(message: str) -> None:
    """One line to stderr in one write: safe from the forked writers too (no stdio buffers)."""
    os.write(sys.stderr.fileno(), f"{message}\n".encode(errors="replace"))


def writer_ending(status: int) -> str:
    """'exited 1' or 'was killed by SIGKILL': the writer's end, as the client reports it."""
    code, killer = ending(status)
    return f"exited {code}" if killer is None else f"was killed by {killer.name}"


@dataclass(eq=False)
class Connection:
    index: int
    payload: Payload
    sock: socket.socket | None = None
    writer_pid: int = 0
    writer_status: int | None = None
    unchecked: bytearray = field(default_factory=bytearray)
    checked: int = 0
    received: int = 0
    eof: bool = False
    error: str | None = None
    started: float = 0.0
    finished: float = 0.0
    pipe_fd: int = -1  # stdin mode: what the writer sent, for the reader to compare
    shown: bytearray = field(default_factory=bytearray)  # stdin mode: a partial echoed line

    @property
    def ok(self) -> bool:
        return self.error is None and self.eof

    def fail(self, reason: str) -> None:
        if self.error is None:
            self.error = reason


@dataclass
class Options:
    chunk_size: int = 16384
    interval: float = 0.0
    timeout: float = 30.0
    half_close: bool = True
    echo_to_stdout: bool = False


def run(address: tuple[str, int], payloads: list[Payload], options: Options) -> list[Connection]:
    connections = [Connection(index, payload) for index, payload in enumerate(payloads)]
    sys.stdout.flush()
    sys.stderr.flush()  # a forked writer must not inherit unwritten output and print it twice
    for connection in connections:
        open_connection(connection, address, options.timeout)
        if connection.sock is not None:
            start_writer(connection, connections, options)
    read_echoes(connections, options)
    reap_writers(connections)
    return connections


def open_connection(connection: Connection, address: tuple[str, int], timeout: float) -> None:
    connection.started = time.monotonic()
    try:
        sock = socket.create_connection(address, timeout=min(timeout, CONNECT_TIMEOUT_SECONDS))
    except OSError as error:
        connection.fail(f"connect to {address[0]}:{address[1]} failed: {error}")
        connection.finished = time.monotonic()
        return
    sock.settimeout(None)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    connection.sock = sock


def start_writer(connection: Connection, everyone: list[Connection], options: Options) -> None:
    # Typed lines are known to the writer only: it tells the reader through a pipe.
    piped = isinstance(connection.payload, TypedPayload)
    if piped:
        pipe_read, pipe_write = os.pipe()
    pid = os.fork()
    if pid == 0:
        # The writer needs its own socket only; the others stay with the reader.
        for other in everyone:
            if other is not connection and other.sock is not None:
                other.sock.close()
        if piped:
            os.close(pipe_read)
            os._exit(write_stdin_lines(connection, pipe_write, options))
        os._exit(write_payload(connection, options))
    connection.writer_pid = pid
    if piped:
        os.close(pipe_write)
        connection.pipe_fd = pipe_read


def finish_writing(connection: Connection, options: Options) -> None:
    assert connection.sock is not None
    if options.half_close:
        # Half-close: the server reads EOF and finishes echoing, while the reader still gets
        # every echoed byte. close() would send nothing: the parent's descriptor keeps the
        # socket open, so the server would never see EOF.
        connection.sock.shutdown(socket.SHUT_WR)
    else:
        connection.sock.close()


def write_payload(connection: Connection, options: Options) -> int:
    assert connection.sock is not None
    try:
        for chunk in connection.payload.chunks(options.chunk_size):
            connection.sock.sendall(chunk)
            if options.interval:
                time.sleep(options.interval)
        finish_writing(connection, options)
    except OSError as error:
        say(f"connection {connection.index}: writer stopped: {error}")
        return 1
    return 0


def write_stdin_lines(connection: Connection, pipe_write: int, options: Options) -> int:
    """The notes' interactive client: send each line typed; Q or q quits."""
    assert connection.sock is not None
    stdin = sys.stdin.buffer
    try:
        while (line := stdin.readline()) and line not in QUIT_LINES:
            os.write(pipe_write, line)  # tell the reader first, so it can verify the echo
            connection.sock.sendall(line)
        finish_writing(connection, options)
    except OSError as error:
        say(f"connection {connection.index}: writer stopped: {error}")
        return 1
    return 0


def read_echoes(connections: list[Connection], options: Options) -> None:
    selector = selectors.DefaultSelector()
    for connection in connections:
        if connection.sock is not None:
            selector.register(connection.sock, selectors.EVENT_READ, connection)
        if connection.pipe_fd >= 0:
            selector.register(connection.pipe_fd, selectors.EVENT_READ, connection)
    buffer = bytearray(65536)
    view = memoryview(buffer)
    last_progress = time.monotonic()
    while selector.get_map():
        for key, _ in selector.select(TICK_SECONDS):
            connection = key.data
            if connection.finished:
                continue  # settled by an earlier event of this batch: its descriptors are gone
            if key.fileobj is connection.sock:
                try:
                    received = connection.sock.recv_into(buffer)
                except OSError as error:
                    connection.fail(f"read failed after {connection.received} bytes: {error}")
                    received = 0
                read_some(connection, view[:received], options)
            else:
                take_from_pipe(connection, selector)
            last_progress = time.monotonic()
            settle(connection, selector)
        notice_dead_writers(connections, selector)
        if time.monotonic() - last_progress > options.timeout:
            for key in list(selector.get_map().values()):
                connection = key.data
                connection.fail(silence(connection, options.timeout))
                settle(connection, selector)
    selector.close()


def silence(connection: Connection, timeout: float) -> str:
    """Why a connection timed out: the echo stalled, or the echo is whole but EOF never came."""
    total = connection.payload.total
    if connection.received >= total:
        return f"no EOF for {timeout:g} s: all {total} bytes came back, the connection stayed open"
    return f"no echo for {timeout:g} s: got {connection.received} of {total} bytes"


def read_some(connection: Connection, data: memoryview, options: Options) -> None:
    if not data:
        connection.eof = True
        return
    connection.received += len(data)
    connection.unchecked += data
    if options.echo_to_stdout:
        show_lines(connection, data)
    verify(connection)


def show_lines(connection: Connection, data: memoryview) -> None:
    """Print each complete echoed line, as the notes' client does."""
    connection.shown += data
    *lines, connection.shown[:] = connection.shown.split(b"\n")
    for line in lines:
        print(f"Message from server: {line.decode(errors='replace')}", flush=True)


def take_from_pipe(connection: Connection, selector: selectors.BaseSelector) -> None:
    payload = connection.payload
    assert isinstance(payload, TypedPayload)
    data = os.read(connection.pipe_fd, 65536)
    if data:
        payload.add(data)
    else:
        payload.finish()
        close_pipe(connection, selector)  # at EOF a pipe stays readable: stop watching it
    verify(connection)


def close_pipe(connection: Connection, selector: selectors.BaseSelector) -> None:
    if connection.pipe_fd >= 0:
        selector.unregister(connection.pipe_fd)
        os.close(connection.pipe_fd)
        connection.pipe_fd = -1


def verify(connection: Connection) -> None:
    """Compare what arrived with what was sent, as far as both are known."""
    payload = connection.payload
    size = min(len(connection.unchecked), payload.total - connection.checked)
    if size > 0:
        got = bytes(connection.unchecked[:size])
        sent = payload.expected(connection.checked, size)
        if got != sent:
            connection.fail(first_difference(sent, got, offset=connection.checked))
        del connection.unchecked[:size]
        connection.checked += size
    if payload.complete and connection.unchecked:
        connection.fail(f"{len(connection.unchecked)} unexpected extra bytes")


def fail_if_short(connection: Connection) -> None:
    """After EOF: fail unless every byte sent came back."""
    known = connection.payload.total
    if connection.error is None and connection.checked < known:
        missing = known - connection.checked
        connection.fail(f"missing {missing} bytes (got {connection.checked} of {known})")


def settle(connection: Connection, selector: selectors.BaseSelector) -> None:
    """Stop watching a connection once it failed, or once both its streams have ended."""
    if connection.error is None and not (connection.eof and connection.payload.complete):
        return
    fail_if_short(connection)
    if connection.sock is not None:
        with contextlib.suppress(KeyError):  # a failed connect() was never registered
            selector.unregister(connection.sock)
        connection.sock.close()
    close_pipe(connection, selector)
    if connection.error is not None and connection.writer_status is None:
        # A writer blocked on a reader that stopped reading would wait forever.
        with contextlib.suppress(ProcessLookupError):
            os.kill(connection.writer_pid, signal.SIGTERM)
    connection.finished = time.monotonic()


def notice_dead_writers(connections: list[Connection], selector: selectors.BaseSelector) -> None:
    """A writer that died mid-transfer never half-closes: fail its connection now, not later."""
    for connection in connections:
        if connection.writer_pid and connection.writer_status is None:
            pid, status = os.waitpid(connection.writer_pid, os.WNOHANG)
            if pid:
                connection.writer_status = status
                if status != 0 and not connection.finished:
                    connection.fail(f"writer {writer_ending(status)} before it finished")
                    settle(connection, selector)


def reap_writers(connections: list[Connection]) -> None:
    for connection in connections:
        if connection.writer_pid and connection.writer_status is None:
            _, connection.writer_status = os.waitpid(connection.writer_pid, 0)
            if connection.writer_status != 0 and connection.error is None:
                connection.fail(f"writer {writer_ending(connection.writer_status)}")
