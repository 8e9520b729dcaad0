"""A server that dies is dead to the checker from the moment it starts exiting, and says how.

CI once saw the book's select server, killed by SIGPIPE in abrupt-peers, reported as "could not
talk to the server: ConnectionRefusedError": exit() had closed its listener, but its state was
not yet Z, so the checker still took it for alive and the next check got the blame. A server
that touched 256 MiB takes tens of milliseconds to free them: the window is caught here.
"""

from __future__ import annotations

import os
import shlex
import signal
import sys

import pytest

from check.target import CommandTarget
from tests.host.support import exiting_window

LARGE_SERVER = (
    "import signal, socket, sys, time\n"
    "signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # as a C server has it\n"
    "held = bytearray(256 << 20)\n"
    "for i in range(0, len(held), 4096):\n"
    "    held[i] = 1\n"
    "sock = socket.create_server(('127.0.0.1', int(sys.argv[1])))\n"
    "time.sleep(60)\n"
)


@pytest.mark.timeout(60)
def test_a_server_in_the_middle_of_exit_is_not_alive_and_its_death_is_named() -> None:
    target = CommandTarget(f"{sys.executable} -c {shlex.quote(LARGE_SERVER)} {{port}}")
    target.start()
    try:
        pid = target.root_pid
        os.kill(pid, signal.SIGPIPE)
        caught = next(exiting_window(pid), None)
        assert caught, "never caught the server between exit() and zombie"
        assert not target.alive()
        assert target.ended() == "killed by SIGPIPE"
    finally:
        target.close()
