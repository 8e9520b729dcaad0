"""The stop-and-wait client: one process, no fork; each write waits for its whole echo.

    connect()
    for each piece (a line of a script, or a --chunk-size piece):
        write(piece) -> read until its echo is back, verifying every byte
    shutdown(SHUT_WR) -> read until EOF

The notes' client before the I/O split. Every piece costs a full round trip, so N lines take
at least N x RTT (UNP §16.2: 2,000 lines over a 175 ms RTT took 354 s), while the split
client keeps the pipe full and pays about one RTT in all. One process with blocking I/O
serves one connection at a time: with K connections they run one after another.
"""

from __future__ import annotations

import math
import socket
import sys
import time
from collections.abc import Iterator

from client.payload import Payload, TypedPayload
from client.split_io import (
    QUIT_LINES,
    Connection,
    Options,
    fail_if_short,
    open_connection,
    read_some,
)

RECV_SIZE = 65536


def run(address: tuple[str, int], payloads: list[Payload], options: Options) -> list[Connection]:
    connections = [Connection(index, payload) for index, payload in enumerate(payloads)]
    for connection in connections:
        open_connection(connection, address, options.timeout)
        if connection.sock is not None:
            converse(connection, options)
    return connections


def pieces(payload: Payload, options: Options) -> Iterator[bytes]:
    if isinstance(payload, TypedPayload):
        yield from typed_lines(payload)
    else:
        yield from payload.chunks(options.chunk_size)


def typed_lines(payload: TypedPayload) -> Iterator[bytes]:
    """The notes' interactive client: each line typed is one piece; Q or q quits."""
    while (line := sys.stdin.buffer.readline()) and line not in QUIT_LINES:
        payload.add(line)
        yield line
    payload.finish()


def converse(connection: Connection, options: Options) -> None:
    sock = connection.sock
    assert sock is not None
    sock.settimeout(None if math.isinf(options.timeout) else options.timeout)
    buffer = bytearray(RECV_SIZE)
    sent = 0
    try:
        for piece in pieces(connection.payload, options):
            sock.sendall(piece)
            sent += len(piece)
            # The stop and the wait: nothing more goes out until this piece's echo is back.
            while connection.checked < sent and connection.error is None and not connection.eof:
                receive(connection, buffer, options)
            if connection.error is not None or connection.eof:
                break
            if options.interval:
                time.sleep(options.interval)
        else:
            # Every echo is in; the EOF that follows proves the server sent nothing extra.
            sock.shutdown(socket.SHUT_WR)
            connection.writer_status = 0  # this process is its own writer, and it sent it all
            while connection.error is None and not connection.eof:
                receive(connection, buffer, options)
        fail_if_short(connection)
    except TimeoutError:
        connection.fail(
            f"no echo for {options.timeout:g} s: got {connection.received} of {sent} bytes sent"
        )
    except OSError as error:
        connection.fail(f"connection broke after {connection.received} bytes echoed: {error}")
    finally:
        sock.close()
        connection.finished = time.monotonic()


def receive(connection: Connection, buffer: bytearray, options: Options) -> None:
    assert connection.sock is not None
    received = connection.sock.recv_into(buffer)
    read_some(connection, memoryview(buffer)[:received], options)
