"""The latency lesson: the delay proxy, the stop-and-wait client, and the experiment.

The proxy's promise (every byte, in order, one delay later each way, half-closes passed on)
is checked on its own first; then what follows from it by construction: a stop-and-wait
client pays at least one round trip per line, a split client at least one in all.
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import select
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from client import stop_and_wait
from client.payload import GeneratedPayload
from client.split_io import Options
from probe import procfs
from probe.compare import first_difference
from probe.sockets import HOST, connect, echo, recv_until_eof
from tests.host.support import REPO_ROOT, ClientResult, ServerProcess, wait_until

Client = Callable[..., ClientResult]
StartProxy = Callable[..., ServerProcess]
MIB = 1024 * 1024
EVERY_BYTE = bytes(range(256)) + bytes(range(255, -1, -1))


def random_chunks(seed: int, total: int, largest: int) -> list[bytes]:
    rng = random.Random(seed)
    chunks, size = [], 0
    while size < total:
        chunks.append(rng.randbytes(rng.randint(1, largest)))
        size += len(chunks[-1])
    return chunks


def script_of(lines: int, path: Path) -> Path:
    path.write_bytes(b"".join(b"line %04d of the script\n" % n for n in range(lines)))
    return path


@contextlib.contextmanager
def listening_socket(rcvbuf: int | None = None) -> Iterator[socket.socket]:
    """A bare listener on 127.0.0.1: the test plays the upstream server itself."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)  # accepted sockets inherit
    sock.bind((HOST, 0))
    sock.listen(8)
    sock.settimeout(10)
    with sock:
        yield sock


@contextlib.contextmanager
def faulty_echo_server(fault: Callable[[int, bytes], bytes | None]) -> Iterator[int]:
    """One connection, echoed through fault(offset, chunk); None closes the connection."""
    with listening_socket() as listener:

        def serve() -> None:
            with contextlib.suppress(OSError):
                conn, _ = listener.accept()
                with conn:
                    conn.settimeout(10)
                    offset = 0
                    while data := conn.recv(65536):
                        out = fault(offset, data)
                        if out is None:
                            return
                        conn.sendall(out)
                        offset += len(data)

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        yield listener.getsockname()[1]
        thread.join(10)


# ---------------------------------------------------------------- the stop-and-wait client


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(["--bytes", "0"], id="empty"),
        pytest.param(["--bytes", "1"], id="one-byte"),
        pytest.param(["--bytes", "20000", "--chunk-size", "7"], id="2858-small-round-trips"),
        pytest.param(["--bytes", str(MIB), "--connections", "3"], id="3x1-MiB"),
    ],
)
def test_stop_and_wait_gets_back_exactly_what_it_sent(
    fork_server: ServerProcess, client: Client, args: list[str]
) -> None:
    result = client(fork_server.port, "--mode", "stop-and-wait", *args, "--json")
    assert result.returncode == 0, result
    report = result.report()
    assert report["failed"] == 0, result
    assert report["bytes_sent"] == report["bytes_received"], result


def test_stop_and_wait_sends_a_script_line_by_line(
    select_server: ServerProcess, client: Client, tmp_path: Path
) -> None:
    script = tmp_path / "every-byte.bin"
    script.write_bytes(EVERY_BYTE * 3)
    result = client(select_server.port, "--mode", "stop-and-wait", "--script", str(script))
    assert result.returncode == 0, result
    assert f"ok, {len(EVERY_BYTE) * 3} bytes echoed" in result.stdout, result


def test_stop_and_wait_reports_the_first_wrong_byte(client: Client) -> None:
    def flip_byte_1234(offset: int, data: bytes) -> bytes:
        at = 1234 - offset
        if 0 <= at < len(data):
            return data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1 :]
        return data

    with faulty_echo_server(flip_byte_1234) as port:
        result = client(port, "--mode", "stop-and-wait", "--bytes", "5000", "--chunk-size", "100")
    assert result.returncode == 1, result
    assert re.search(r"FAILED: byte 1234 differs \(sent 0x(..), got 0x(?!\1)..\)", result.stderr)


def test_stop_and_wait_reports_missing_bytes(client: Client) -> None:
    def hang_up_at_3000(offset: int, data: bytes) -> bytes | None:
        return None if offset >= 3000 else data

    with faulty_echo_server(hang_up_at_3000) as port:
        result = client(port, "--mode", "stop-and-wait", "--bytes", "5000", "--chunk-size", "100")
    assert result.returncode == 1, result
    assert "FAILED: missing 2000 bytes (got 3000 of 5000)" in result.stderr, result


def test_stop_and_wait_never_forks(
    fork_server: ServerProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_fork() -> int:
        raise AssertionError("stop-and-wait forked")

    monkeypatch.setattr(os, "fork", no_fork)
    address = (HOST, fork_server.port)
    payloads = [GeneratedPayload(3000, 1, i) for i in range(2)]
    connections = stop_and_wait.run(address, payloads, Options(chunk_size=100, timeout=10))
    assert [(c.ok, c.error, c.received) for c in connections] == [(True, None, 3000)] * 2


# ---------------------------------------------------------------- the delay proxy


@pytest.mark.parametrize(
    ("chunks", "pause_every", "proxy_args"),
    [
        pytest.param(random_chunks(1, 2 * MIB, 5000), 25, [], id="small-writes"),
        pytest.param(random_chunks(2, 8 * MIB, 256 * 1024), 0, [], id="large-writes"),
        pytest.param(
            random_chunks(3, 8 * MIB, 256 * 1024), 0, ["--buffer-kib", "16"], id="16-KiB-buffer"
        ),
    ],
)
def test_the_proxy_keeps_every_byte_in_order(
    select_server: ServerProcess,
    delay_proxy: StartProxy,
    chunks: list[bytes],
    pause_every: int,
    proxy_args: list[str],
) -> None:
    proxy = delay_proxy(select_server.port, 2, *proxy_args)
    sent, received = echo(proxy.port, chunks, timeout=60, pause_every=pause_every)
    assert received == sent, first_difference(sent, received)
    proxy.wait_for_log(rf"-> 127\.0\.0\.1:\d+: {len(sent)} bytes up, {len(sent)} bytes down in ")


def test_the_proxy_passes_a_half_close_on_after_the_delayed_data(
    delay_proxy: StartProxy,
) -> None:
    delay = 0.05
    with listening_socket() as upstream:
        proxy = delay_proxy(upstream.getsockname()[1], delay * 1000)
        with connect(proxy.port) as client_sock:
            server_sock, _ = upstream.accept()
            with server_sock:
                started = time.monotonic()
                client_sock.sendall(b"last words")
                client_sock.shutdown(socket.SHUT_WR)
                # Data first, then EOF, and neither before its delay is up.
                assert recv_until_eof(server_sock, timeout=5) == b"last words"
                assert time.monotonic() - started >= delay
                # Half-closed, not closed: the way back stays open.
                server_sock.sendall(b"a reply after your FIN")
                server_sock.shutdown(socket.SHUT_WR)
                assert recv_until_eof(client_sock, timeout=5) == b"a reply after your FIN"
    line = proxy.wait_for_log(r"\S+ -> 127\.0\.0\.1:\d+: .*")
    assert "10 bytes up, 22 bytes down" in line[0]
    connection_lines = [m for m in proxy.messages() if " -> 127.0.0.1:" in m[2]]
    assert len(connection_lines) == 1, "one log line per connection"


def test_the_proxy_buffers_a_bounded_amount_for_a_server_that_never_reads(
    delay_proxy: StartProxy,
) -> None:
    limit = 64 * MIB
    with listening_socket(rcvbuf=64 * 1024) as upstream:
        proxy = delay_proxy(upstream.getsockname()[1], 1, "--buffer-kib", "256")
        rss_before = procfs.rss_kb(proxy.pid) or 0
        with connect(proxy.port) as sock:
            stalled_server, _ = upstream.accept()  # accepted, never read
            sock.setblocking(False)
            chunk = random.Random(4).randbytes(256 * 1024)
            sent, last_progress, deadline = 0, time.monotonic(), time.monotonic() + 30
            while sent < limit and time.monotonic() - last_progress < 1.0:
                assert time.monotonic() < deadline, "still accepting bytes after 30 s"
                try:
                    sent += sock.send(chunk)
                    last_progress = time.monotonic()
                except BlockingIOError:
                    select.select([], [sock], [], 0.1)
            rss_grown_mib = ((procfs.rss_kb(proxy.pid) or 0) - rss_before) / 1024
            stalled_server.close()
    # The kernel's socket buffers hold a few MiB; the proxy itself holds at most 256 KiB.
    assert sent < limit, "the proxy kept reading for a server that never reads"
    assert rss_grown_mib < 16, f"the proxy's memory grew {rss_grown_mib:.0f} MiB"


# ---------------------------------------------------------------- the experiment


def test_stop_and_wait_pays_a_round_trip_per_line_and_split_about_one_in_all(
    fork_server: ServerProcess, delay_proxy: StartProxy, client: Client, tmp_path: Path
) -> None:
    rtt, lines = 0.020, 25
    proxy = delay_proxy(fork_server.port, rtt / 2 * 1000)
    script = str(script_of(lines, tmp_path / "lines.txt"))
    waits = client(proxy.port, "--mode", "stop-and-wait", "--script", script, "--json")
    split = client(proxy.port, "--mode", "split", "--script", script, "--json")
    assert waits.returncode == 0, waits
    assert split.returncode == 0, split
    stop_and_wait_s, split_s = waits.report()["elapsed_s"], split.report()["elapsed_s"]
    # Lower bounds by construction of the proxy, not speed thresholds:
    assert stop_and_wait_s >= lines * rtt, "each line waited out a full round trip"
    assert split_s >= rtt, "even the split client waits for the first echo"
    # A margin of 24 round trips: the order holds on any machine that runs this at all.
    assert split_s < stop_and_wait_s


def test_the_latency_experiment_prints_both_times_and_their_ratio(
    fork_server: ServerProcess, delay_proxy: StartProxy
) -> None:
    rtt, lines = 0.020, 10
    proxy = delay_proxy(fork_server.port, rtt / 2 * 1000)
    done = subprocess.run(
        [sys.executable, "-m", "lab.latency", "--via", f"{HOST}:{proxy.port}", "--lines", "10"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    row = r"\s+(?P<s>\d+\.\d+) s\s+\d+\.\d+ ms  ok, every byte echoed"
    waits = re.search(r"stop-and-wait" + row, out)
    split = re.search(r"split" + row, out)
    assert waits and split, out
    assert float(waits["s"]) >= lines * rtt, out
    assert re.search(r"stop-and-wait took \d+x as long as split", out), out
    assert "UNP §16.2: 2,000 lines over a 175 ms RTT" in out

    def relayed() -> list[str]:
        return [m for _, _, m in proxy.messages() if re.search(r"(\d+) bytes up, \1 bytes down", m)]

    wait_until(lambda: len(relayed()) == 2, 5, what="one relayed connection per mode")
