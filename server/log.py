"""One line per event, flushed at once: `log("...")` from any server process."""

from __future__ import annotations

import os
import time

_role = "server"


def set_role(role: str) -> None:
    """Name this process in every log line (fork-server, fork-child, select-server...)."""
    global _role
    _role = role


# Speed and memory: stderr's descriptor is fixed once (looking up sys.stderr.fileno() per line
# would touch, and in a forking server copy, more of the parent's memory), and the
# strftime() stamp is cached for the second it stands for.
_LOG_FD = 2
_stamp_second, _stamp = -1, ""


def log(message: str, role: str | None = None) -> None:
    """Write one event as one line, flushed at once.

    A single os.write() per line: safe inside signal handlers and forked children (no lock,
    no buffer to inherit), and lines from many processes never interleave mid-line.
    """
    global _stamp_second, _stamp
    now = time.time()
    second = int(now)
    if second != _stamp_second:
        _stamp_second, _stamp = second, time.strftime("%H:%M:%S", time.localtime(second))
    line = f"{_stamp}.{int((now - second) * 1000):03d} {role or _role}[{os.getpid()}] {message}\n"
    try:
        os.write(_LOG_FD, line.encode(errors="replace"))
    except OSError:  # a closed log pipe must never take the server down
        return
