"""probe.load: the multi-process load generator verifies every echoed byte, in every mode.

The target is a tiny echo server of the test's own that can flip one byte of each
connection's stream: a correct echo counts no mismatch, a flipped byte is caught and located.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from probe.addresses import check_host
from probe.load import Load, run_load, split

ECHO_FLIPPING_ONE_BYTE = """
import socket, sys, threading
flip = int(sys.argv[1])  # this byte of every connection's stream comes back inverted; -1: none
server = socket.create_server(("127.0.0.1", 0), backlog=128)
print(server.getsockname()[1], flush=True)

def serve(conn):
    seen = 0
    with conn:
        while data := conn.recv(65536):
            out = bytearray(data)
            if seen <= flip < seen + len(out):
                out[flip - seen] ^= 0xFF
            seen += len(out)
            conn.sendall(out)

while True:
    conn, _ = server.accept()
    threading.Thread(target=serve, args=(conn,), daemon=True).start()
"""


@contextmanager
def echo_server(flip: int = -1) -> Iterator[int]:
    proc = subprocess.Popen(
        [sys.executable, "-c", ECHO_FLIPPING_ONE_BYTE, str(flip)],
        stdout=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )
    try:
        assert proc.stdout is not None
        yield int(proc.stdout.readline())
    finally:
        proc.kill()
        proc.wait(10)
        proc.stdout.close()  # type: ignore[union-attr]


@pytest.mark.parametrize("mode", ["rr", "rate", "hold", "stream"])
def test_a_correct_echo_counts_work_and_no_mismatch(mode: str) -> None:
    load = Load(mode, connections=4, size=64, duration=0.3, hold=0.1, workers=2)
    with echo_server() as port:
        tally = run_load("127.0.0.1", port, load)
    assert (tally.errors, tally.mismatches) == (0, 0), tally.samples
    assert tally.connected >= 4 and tally.bytes_received > 0
    if mode == "hold":
        assert tally.served_at_once == tally.proven_again == 4
    else:
        assert tally.ops > 0


@pytest.mark.parametrize(("mode", "flip"), [("rr", 100), ("hold", 100), ("stream", 1000)])
def test_one_flipped_byte_per_connection_is_caught_and_located(mode: str, flip: int) -> None:
    load = Load(mode, connections=3, size=64, duration=0.3, hold=0.1, workers=1)
    with echo_server(flip) as port:
        tally = run_load("127.0.0.1", port, load)
    assert tally.mismatches == 3, tally.samples  # one per connection, no more, no less
    at = flip % 64 if mode != "stream" else flip  # a message's byte; a stream's
    assert any(f"byte {at} differs" in s for s in tally.samples), tally.samples


def test_a_load_is_bounded_and_shared_out_evenly() -> None:
    assert split(10, 4) == [3, 3, 2, 2]
    assert split(2, 8) == [1, 1], "no idle worker"
    for bad in (
        Load("rr", connections=0),
        Load("rr", connections=20_000),
        Load("rr", duration=500),
        Load("flood"),
    ):
        with pytest.raises(ValueError):
            bad.checked()


def test_only_loopback_or_a_compose_service_may_be_a_target() -> None:
    for host in ("127.0.0.1", "127.0.0.2", "localhost", "::1"):
        check_host(host)
    for host in ("8.8.8.8", "example.com", ""):
        with pytest.raises(ValueError):
            check_host(host)
