"""Byte-exact echo on each server model: empty, one byte, every byte value, many small writes, MiBs.

Each payload goes through the split-I/O client (which verifies every byte) and through raw
sockets in this process (which verify independently of the client).
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from probe.compare import first_difference
from probe.sockets import echo
from tests.host.support import ClientResult, ServerProcess, wait_until

MIB = 1024 * 1024
DISCONNECTED = re.compile(
    r"client disconnected\.\.\. \S+ (?:fd \d+ )?\((?P<bytes>\d+) bytes echoed\)"
)

Client = Callable[..., ClientResult]

EVERY_BYTE = bytes(range(256)) + bytes(range(255, -1, -1))


def echoed_counts(server: ServerProcess, expected: int) -> list[int]:
    """The byte counts the server logged at disconnection, once there are `expected` of them."""

    def counts() -> list[int]:
        return [int(m["bytes"]) for line in server.log_lines() if (m := DISCONNECTED.search(line))]

    wait_until(lambda: len(counts()) >= expected, 10, what=f"{expected} disconnections logged")
    return counts()


@pytest.mark.parametrize(
    ("args", "size"),
    [
        pytest.param(["--bytes", "0"], 0, id="empty"),
        pytest.param(["--bytes", "1"], 1, id="one-byte"),
        pytest.param(["--bytes", "20000", "--chunk-size", "7"], 20000, id="many-small-writes"),
        pytest.param(["--bytes", str(8 * MIB)], 8 * MIB, id="8-MiB"),
    ],
)
def test_the_client_gets_back_exactly_what_it_sent(
    server: ServerProcess, client: Client, args: list[str], size: int
) -> None:
    result = client(server.port, *args, "--json", "--timeout", "20")
    assert result.returncode == 0, result
    report = result.report()
    assert (report["connections"], report["ok"], report["failed"]) == (1, 1, 0), result
    assert report["bytes_sent"] == report["bytes_received"] == size, result
    # The server's own account agrees with the client's.
    assert echoed_counts(server, 1) == [size]


def test_the_client_sends_every_byte_value_from_a_script(
    server: ServerProcess, client: Client, tmp_path: Path
) -> None:
    script = tmp_path / "every-byte.bin"
    script.write_bytes(EVERY_BYTE * 4)
    result = client(server.port, "--script", str(script), "--connections", "3", "--json")
    assert result.returncode == 0, result
    report = result.report()
    assert (report["ok"], report["failed"]) == (3, 0), result
    assert report["bytes_sent"] == report["bytes_received"] == 3 * len(EVERY_BYTE) * 4
    assert sorted(echoed_counts(server, 3)) == [len(EVERY_BYTE) * 4] * 3


def _chunks_of(data: bytes, sizes: list[int]) -> list[bytes]:
    out, at = [], 0
    for size in sizes:
        if at >= len(data):
            break
        out.append(data[at : at + size])
        at += size
    if at < len(data):
        out.append(data[at:])
    return out


def _raw_cases() -> list[object]:
    rng = random.Random(2)
    small = rng.randbytes(6000)
    big = rng.randbytes(6 * MIB)
    return [
        pytest.param([], 0, id="empty"),
        pytest.param([b"\x00"], 0, id="one-byte"),
        # Every byte value, each in its own write (no coalescing: TCP_NODELAY and pauses).
        pytest.param([bytes([b]) for b in EVERY_BYTE], 64, id="every-byte-value-one-per-write"),
        pytest.param(
            _chunks_of(small, [rng.randint(1, 5) for _ in range(3000)]), 100, id="many-small-writes"
        ),
        pytest.param(_chunks_of(big, [65536] * 200), 0, id="6-MiB"),
    ]


@pytest.mark.parametrize(("chunks", "pause_every"), _raw_cases())
def test_raw_socket_echo_is_byte_exact(
    server: ServerProcess, chunks: list[bytes], pause_every: int
) -> None:
    sent, received = echo(server.port, chunks, timeout=30, pause_every=pause_every)
    assert sent == b"".join(chunks)
    assert received == sent, first_difference(sent, received)
    assert echoed_counts(server, 1) == [len(sent)]
