"""The delay proxy shares the servers' one accept policy: out of descriptors, it pauses
accepting for a second and keeps relaying meanwhile (it used to sleep 0.1 s inside its event
loop, again and again, stalling every relay and logging ten lines a second)."""

from __future__ import annotations

import re
import resource
import time

import pytest

from probe import procfs
from probe.sockets import connect, recv_exactly, roundtrip
from tests.host.support import ServerProcess
from tests.lessons.conftest import StartProxy

EMFILE_LINE = re.compile(r"accept failed \(\[Errno 24\] Too many open files\): pausing accepts")


@pytest.mark.timeout(60)
def test_emfile_pauses_the_proxys_accepts_while_its_relays_flow(
    select_server: ServerProcess, delay_proxy: StartProxy
) -> None:
    proxy = delay_proxy(select_server.port, 0)
    held = connect(proxy.port)
    assert roundtrip(held, b"before") == b"before"
    _, hard = resource.prlimit(proxy.pid, resource.RLIMIT_NOFILE)
    # No descriptor left: the next accept() fails with EMFILE.
    resource.prlimit(proxy.pid, resource.RLIMIT_NOFILE, (procfs.open_fd_count(proxy.pid), hard))
    waiting = connect(proxy.port)  # completed by the kernel, left in the backlog
    waiting.sendall(b"later")
    try:
        mark = proxy.mark()
        proxy.wait_for_log(EMFILE_LINE, timeout=5, start=mark)
        for i in range(10):  # two seconds of traffic through the held relay
            assert roundtrip(held, b"during %d" % i) == b"during %d" % i
            time.sleep(0.2)
        pauses = [line for line in proxy.log_lines()[mark:] if EMFILE_LINE.search(line)]
        assert 1 <= len(pauses) <= 4, f"one pause a second, not a busy loop: {pauses}"
        resource.prlimit(proxy.pid, resource.RLIMIT_NOFILE, (hard, hard))
        assert recv_exactly(waiting, 5, timeout=10) == b"later", "accepted once the pause ends"
    finally:
        waiting.close()
        held.close()
