"""How a waited-for process ended: decoded once, for the fork server's log and the client."""

from __future__ import annotations

import os
import signal


def ending(status: int) -> tuple[int | None, signal.Signals | None]:
    """(exit code, None) for a process that exited; (None, the signal) for one killed."""
    code = os.waitstatus_to_exitcode(status)
    return (code, None) if code >= 0 else (None, signal.Signals(-code))


def describe_status(status: int) -> str:
    """'exit 1', or 'killed by signal 9 (SIGKILL)'."""
    code, killer = ending(status)
    if killer is None:
        return f"exit {code}"
    return f"killed by signal {killer.value} ({killer.name})"


def describe_returncode(returncode: int) -> str:
    """Popen's returncode (negative for a signal) as 'exit 1' or 'killed by SIGKILL'."""
    if returncode >= 0:
        return f"exit {returncode}"
    try:
        return f"killed by {signal.Signals(-returncode).name}"
    except ValueError:
        return f"killed by signal {-returncode}"
