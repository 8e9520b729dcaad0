"""The select echo server: the multiplexing loop, waiting in select().

select() overwrites the fd sets it is given and watches only descriptors below FD_SETSIZE,
so this server copies its sets on every call and stops accepting before its descriptors
reach 1024 (`--no-fd-cap` shows why: select() then refuses the whole set).
"""

from __future__ import annotations

import os
import select

from probe.limits import raise_open_files
from server.log import log
from server.multiplexing import RESERVED_FDS, MultiplexingEchoServer

__all__ = ["FD_SETSIZE", "RESERVED_FDS", "SelectEchoServer"]

# select() watches descriptors below FD_SETSIZE only: glibc's fd_set is a fixed 1024-bit array.
FD_SETSIZE = 1024
WANTED_DESCRIPTORS = 65536  # --no-fd-cap: room to go past FD_SETSIZE
EXIT_SELECT_FAILED = 70  # EX_SOFTWARE: select() refused a descriptor (--no-fd-cap)


class SelectEchoServer(MultiplexingEchoServer):
    model = "select"
    descriptor_limit = FD_SETSIZE

    def __init__(
        self,
        host: str,
        port: int,
        max_clients: int | None = None,
        blocking_send: bool = False,
        fd_cap: bool = True,
    ) -> None:
        self.reads: set[int] = set()
        self.writes: set[int] = set()
        if not fd_cap:  # break it: let descriptors reach past what select() can watch
            self.descriptor_limit = None
            raise_open_files(WANTED_DESCRIPTORS)
        super().__init__(host, port, max_clients, blocking_send)

    def announce_mistakes(self) -> None:
        super().announce_mistakes()
        if self.descriptor_limit is None:
            log(f"BREAK-IT --no-fd-cap: accepting past FD_SETSIZE ({FD_SETSIZE})")

    def watch(self, fd: int, read: bool, write: bool) -> None:
        (self.reads.add if read else self.reads.discard)(fd)
        (self.writes.add if write else self.writes.discard)(fd)

    def forget(self, fd: int) -> None:
        self.reads.discard(fd)
        self.writes.discard(fd)

    def wait_ready(self, timeout: float) -> tuple[list[int], list[int]]:
        # select() overwrites the fd sets and the timeout it is given, so every call gets
        # fresh copies of the watched sets (the C code's `temps = reads`) and a re-armed
        # timeout; Python builds new fd_sets from these lists on each call.
        try:
            readable, writable, _ = select.select(list(self.reads), list(self.writes), [], timeout)
        except ValueError as error:  # only with --no-fd-cap: a descriptor >= FD_SETSIZE
            log(f"select() failed: {error} (highest fd {max(self.reads | self.writes)}): exiting")
            # At once: the kernel closes every descriptor; a slow interpreter teardown would
            # leave a dying server that a SIGTERM meanwhile kills by signal instead.
            os._exit(EXIT_SELECT_FAILED)
        return readable, writable
