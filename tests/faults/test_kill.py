"""Kill -9 on the host: a server's child mid-transfer, and a client's writer child.

A killed child is reaped and its end logged (`killed by signal 9 (SIGKILL)`); its client sees
the connection end at once; nobody else notices. A client whose writer is killed ends with a
clear error (`writer was killed by SIGKILL`) instead of waiting for bytes that never come.
"""

from __future__ import annotations

import contextlib
import os
import re
import selectors
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable

import pytest

from probe import procfs
from probe.footprint import footprint
from probe.sessions import MIB, BackgroundLoad, payload_of
from probe.sockets import HOST, connect
from tests.faults.conftest import wait_idle
from tests.faults.figures import record
from tests.host.support import REPO_ROOT, ServerProcess, wait_until

StartServer = Callable[..., ServerProcess]


def stream_until(sock: socket.socket, enough: Callable[[int], bool], limit_s: float) -> str:
    """Send a cycling 1 MiB pattern and read the echo until `enough(received)` or the peer
    goes; returns how it ended ('enough', 'eof', 'reset', 'timeout') and checks the bytes."""
    sock.setblocking(False)
    pattern = payload_of(0, MIB)
    sent = received = 0
    selector = selectors.DefaultSelector()
    selector.register(sock, selectors.EVENT_READ | selectors.EVENT_WRITE)
    deadline = time.monotonic() + limit_s
    try:
        while time.monotonic() < deadline:
            if enough(received):
                return "enough"
            for _, events in selector.select(0.1):
                try:
                    if events & selectors.EVENT_WRITE:
                        at = sent % MIB
                        sent += sock.send(pattern[at : at + 65536])
                    if events & selectors.EVENT_READ:
                        data = sock.recv(65536)
                        if not data:
                            return "eof"
                        at = received % MIB
                        want = bytes(pattern[at : at + len(data)])
                        if len(want) < len(data):
                            want += bytes(pattern[: len(data) - len(want)])
                        assert data == want, f"echo differs near byte {received}"
                        received += len(data)
                except BlockingIOError:
                    continue
                except (ConnectionResetError, BrokenPipeError):
                    return "reset"
        return "timeout"
    finally:
        selector.close()


def drain(sock: socket.socket, limit_s: float) -> str:
    """Read (the echo still in flight) until the peer goes: 'eof', 'reset' or 'timeout'."""
    sock.setblocking(True)
    deadline = time.monotonic() + limit_s
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            if not sock.recv(1 << 20):
                return "eof"
        except (ConnectionResetError, BrokenPipeError):
            return "reset"
        except TimeoutError:
            break
    return "timeout"


@pytest.mark.timeout(60)
def test_sigkill_a_fork_child_mid_transfer(server_factory: StartServer) -> None:
    server = server_factory("fork")
    idle = footprint(server.pid)
    with BackgroundLoad(server.port) as normal:
        normal.wait_for_sessions(20)
        victim = connect(server.port)
        peer = f"{HOST}:{victim.getsockname()[1]}"
        child = int(server.wait_for_log(rf"new client connected\.\.\. {peer} -> child (\d+)")[1])
        assert stream_until(victim, lambda got: got >= 8 * MIB, 20) == "enough"
        killed_at = time.monotonic()
        os.kill(child, signal.SIGKILL)
        ended = drain(victim, 10)
        client_sees_s = time.monotonic() - killed_at
        server.wait_for_log(rf"removed proc id: {child} \(killed by signal 9 \(SIGKILL\)\)")
        reaped_s = time.monotonic() - killed_at
        victim.close()
        normal.wait_for_sessions(normal.result.sessions + 20)
    after, _ = wait_idle(server)
    result = normal.result
    record(
        "SIGKILL child mid-transfer",
        "fork",
        transferred_mib=8,
        client_saw=ended,
        client_sees_s=round(client_sees_s, 3),
        normal_sessions=result.ok,
        normal_failed=result.failed,
        bytes=result.bytes_received,
        leaks=after.leaks_against(idle, 4096),
        zombies=after.zombies,
        recover_s=round(reaped_s, 3),
    )
    assert ended in ("eof", "reset"), "the victim's connection ended with the child"
    assert result.failed == 0 and result.unfinished == 0, result.summary()
    assert not procfs.exists(child), "reaped: not even a zombie"
    assert after.leaks_against(idle, 4096) == {
        "fds": 0,
        "processes": 0,
        "zombies": 0,
        "rss_kib_over_slack": 0,
    }


WRITER_KILLED = re.compile(r"connection 0: FAILED: writer was killed by SIGKILL")


@pytest.mark.timeout(60)
@pytest.mark.parametrize("model", ["fork", "select"])
def test_sigkill_the_clients_writer_ends_the_client_with_a_clear_error(
    model: str, server_factory: StartServer
) -> None:
    server = server_factory(model)
    idle = footprint(server.pid)
    argv = [sys.executable, "-m", "client", "--server", f"{HOST}:{server.port}"]
    argv += ["--bytes", str(100 * MIB), "--chunk-size", "4096", "--interval", "0.001"]
    client = subprocess.Popen(
        [*argv, "--timeout", "20"],
        cwd=REPO_ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        process_group=0,
    )
    try:
        writer = wait_until(lambda: procfs.children_of(client.pid), 10, what="the writer")[0]
        server.wait_for_log(r"new client connected")
        time.sleep(0.5)  # mid-transfer: the writer sends 4 KiB every millisecond
        killed_at = time.monotonic()
        os.kill(writer, signal.SIGKILL)
        try:
            out, err = client.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            pytest.fail("the client hangs after its writer was killed")
        ended_s = time.monotonic() - killed_at
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(client.pid, signal.SIGKILL)
        client.communicate()
    after, settle_s = wait_idle(server)
    stderr = err.decode(errors="replace")
    record(
        "SIGKILL client writer",
        model,
        client_exit=client.returncode,
        client_error=next(iter(WRITER_KILLED.findall(stderr)), stderr.strip()[-120:]),
        client_ends_s=round(ended_s, 3),
        leaks=after.leaks_against(idle, 4096),
        zombies=after.zombies,
        recover_s=round(ended_s + settle_s, 3),
    )
    assert client.returncode == 1, (out, err)
    assert WRITER_KILLED.search(stderr), stderr
    assert ended_s < 5, "the reader noticed the dead writer within a few ticks"
    assert not procfs.exists(writer), "the client reaped its writer"
    assert after.leaks_against(idle, 4096) == {
        "fds": 0,
        "processes": 0,
        "zombies": 0,
        "rss_kib_over_slack": 0,
    }
