"""What a check function gets: the target, the model being checked, and the run's pace."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from check.target import Target
from probe.sockets import connect, roundtrip


@dataclass
class Context:
    target: Target
    model: str  # "fork" or "select"
    quick: bool = False

    @property
    def host(self) -> str:
        return self.target.host

    @property
    def port(self) -> int:
        return self.target.port

    def connect(self, timeout: float = 5.0) -> socket.socket:
        return connect(self.port, timeout, self.host)

    @contextmanager
    def echoed_clients(self, count: int) -> Iterator[list[socket.socket]]:
        """`count` connections, each echoed once (by then each has its server side in
        place), all closed when the block ends."""
        socks: list[socket.socket] = []
        try:
            for i in range(count):
                sock = self.connect()
                socks.append(sock)
                tag = f"client {i}\n".encode()
                if roundtrip(sock, tag, 5.0) != tag:
                    raise ConnectionError(f"client {i} got no echo")
            yield socks
        finally:
            for sock in socks:
                sock.close()

    def scale(self, full: int, quick: int) -> int:
        """A count for this run: `quick` under --quick."""
        return quick if self.quick else full
