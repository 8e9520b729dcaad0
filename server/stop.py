"""The signal-driven stop: SIGTERM, SIGINT or SIGHUP ask the main loop to finish."""

from __future__ import annotations

import os
import select
import signal
import socket


class StopSignals:
    """SIGTERM/SIGINT/SIGHUP set a flag and wake the main loop through a self-pipe.

    Python retries a select() interrupted by a signal (PEP 475), so a flag alone would not
    wake it; signal.set_wakeup_fd writes a byte to `wakeup_fd` on every signal, and the main
    loop watches that descriptor beside its sockets. Explicit handlers matter as PID 1 in a
    container, where the kernel applies no default action to SIGTERM.

    A forked child keeps these handlers (resetting each through the signal module would copy
    memory in every child): in a child, the handler takes the signal's default action.
    """

    SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)

    def __init__(self) -> None:
        self.requested: str | None = None
        self._owner = os.getpid()
        self._reader, self._writer = socket.socketpair()
        self._reader.setblocking(False)
        self._writer.setblocking(False)
        signal.set_wakeup_fd(self._writer.fileno(), warn_on_full_buffer=False)
        for signum in self.SIGNALS:
            signal.signal(signum, self._request)

    def _request(self, signum: int, _frame: object) -> None:
        if os.getpid() != self._owner:  # a forked child: die of the signal, as by default
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        if self.requested is None:
            self.requested = signal.Signals(signum).name

    @property
    def wakeup_fd(self) -> int:
        return self._reader.fileno()

    def drain(self) -> None:
        """Empty the self-pipe after a wake-up, so the next select() blocks again."""
        try:
            while self._reader.recv(4096):
                pass
        except BlockingIOError:
            pass

    def close_in_child(self) -> None:
        """A forked child drops the parent's self-pipe: it serves one client, nothing else."""
        signal.set_wakeup_fd(-1)
        os.close(self._reader.fileno())
        os.close(self._writer.fileno())

    def wait(self, timeout: float) -> None:
        """Sleep until any signal arrives or `timeout` passes."""
        select.select([self._reader], [], [], timeout)
        self.drain()
