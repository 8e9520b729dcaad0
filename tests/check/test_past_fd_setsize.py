"""`past-fd-setsize` does not depend on the server keeping pace with the crowd.

CI once saw a `--no-fd-cap` select server pass: it accepted more slowly than the crowd
connected, and the crowd hung up as each member was served, so the server never held 1,024
descriptors at once. The check now keeps the served connected until no one else is served.
"""

from __future__ import annotations

import os
import signal
import threading
from dataclasses import dataclass

import pytest

from check.context import Context
from check.multiplexing import past_fd_setsize
from tests.host.support import ServerProcess


@dataclass
class Behind:
    """Just what the check asks of its target: where the server listens and is seen, whether it
    lives."""

    server: ServerProcess
    host: str = "127.0.0.1"
    proc_root: str = "/proc"

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def root_pid(self) -> int:
        return self.server.pid

    def alive(self) -> bool:
        return self.server.alive()


@pytest.mark.timeout(60)
def test_a_careless_select_server_fails_even_when_it_accepts_more_slowly_than_the_crowd(
    no_fd_cap_select: ServerProcess,
) -> None:
    server = no_fd_cap_select
    # Stopped while the crowd connects: every connection waits in the listen backlog.
    os.kill(server.pid, signal.SIGSTOP)
    resume = threading.Timer(0.5, os.kill, (server.pid, signal.SIGCONT))
    resume.start()
    try:
        outcome = past_fd_setsize(Context(Behind(server), "select"))  # type: ignore[arg-type]
    finally:
        resume.cancel()
        if server.proc.poll() is None:  # never left stopped for clean-up to wait on
            os.kill(server.pid, signal.SIGCONT)
    assert outcome.passed is False, outcome.summary
    assert "died" in outcome.summary
