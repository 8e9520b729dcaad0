"""The epoll echo server: the multiplexing loop, waiting in epoll.

select() copies and scans a fixed 1024-bit set on every call; epoll keeps the interest list
in the kernel and reports only the ready descriptors, so neither the set size nor the scan
grows with the number of idle clients. The only limit left is RLIMIT_NOFILE.
"""

from __future__ import annotations

import select  # the standard library's: epoll lives there

from probe.limits import raise_open_files
from server.multiplexing import MultiplexingEchoServer

WANTED_DESCRIPTORS = 65536  # room for many thousand clients, within the hard limit


class EpollEchoServer(MultiplexingEchoServer):
    model = "epoll"

    def __init__(
        self, host: str, port: int, max_clients: int | None = None, blocking_send: bool = False
    ) -> None:
        raise_open_files(WANTED_DESCRIPTORS)
        self.epoll = select.epoll()
        self.interest: dict[int, int] = {}
        super().__init__(host, port, max_clients, blocking_send)

    def watch(self, fd: int, read: bool, write: bool) -> None:
        mask = (select.EPOLLIN if read else 0) | (select.EPOLLOUT if write else 0)
        current = self.interest.get(fd)
        if current == mask:
            return  # no system call when nothing changed: the common case in the echo loop
        if current is None:
            self.epoll.register(fd, mask)
        else:
            self.epoll.modify(fd, mask)
        self.interest[fd] = mask

    def forget(self, fd: int) -> None:
        if self.interest.pop(fd, None) is not None:
            self.epoll.unregister(fd)

    def wait_ready(self, timeout: float) -> tuple[list[int], list[int]]:
        readable, writable = [], []
        for fd, events in self.epoll.poll(timeout):
            # Errors and hang-ups count as readable: the next recv() reports them.
            if events & (select.EPOLLIN | select.EPOLLERR | select.EPOLLHUP):
                readable.append(fd)
            if events & select.EPOLLOUT:
                writable.append(fd)
        return readable, writable

    def stop(self) -> None:
        super().stop()
        self.epoll.close()
