"""What a connection sends, and so what it must get back.

A payload gives the writer its chunks and the reader the expected bytes at any offset, so
even a 64 MiB run is verified byte by byte without keeping both copies in memory.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

BLOCK = 64 * 1024


class Payload:
    total: int  # bytes of the expected stream known so far
    complete = True  # False while more may come (lines still being typed)

    def chunks(self, chunk_size: int) -> Iterator[bytes]:
        raise NotImplementedError

    def expected(self, offset: int, size: int) -> bytes:
        raise NotImplementedError


class GeneratedPayload(Payload):
    """`total` pseudo-random bytes (all 256 values), reproducible from (seed, connection)."""

    def __init__(self, total: int, seed: int, connection: int) -> None:
        self.total = total
        self._key = f"{seed}:{connection}"
        self._cached: tuple[int, bytes] = (-1, b"")

    def _block(self, index: int) -> bytes:
        if self._cached[0] != index:
            size = min(BLOCK, self.total - index * BLOCK)
            self._cached = (index, random.Random(f"{self._key}:{index}").randbytes(size))
        return self._cached[1]

    def expected(self, offset: int, size: int) -> bytes:
        end = min(offset + size, self.total)
        parts = []
        while offset < end:
            index, start = divmod(offset, BLOCK)
            piece = self._block(index)[start : start + end - offset]
            parts.append(piece)
            offset += len(piece)
        return b"".join(parts)

    def chunks(self, chunk_size: int) -> Iterator[bytes]:
        for offset in range(0, self.total, chunk_size):
            yield self.expected(offset, chunk_size)


class TypedPayload(Payload):
    """Lines typed on stdin: known only as the writer sends them, complete when it quits."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.total = 0
        self.complete = False

    def add(self, sent: bytes) -> None:
        self.data += sent
        self.total = len(self.data)

    def finish(self) -> None:
        self.complete = True

    def expected(self, offset: int, size: int) -> bytes:
        return bytes(self.data[offset : offset + size])


class ScriptPayload(Payload):
    """A file's bytes, sent one line per write (lines longer than a chunk are split)."""

    def __init__(self, data: bytes, repeat: int = 1) -> None:
        self.data = data * repeat
        self.total = len(self.data)

    def expected(self, offset: int, size: int) -> bytes:
        return self.data[offset : offset + size]

    def chunks(self, chunk_size: int) -> Iterator[bytes]:
        for line in self.data.splitlines(keepends=True):
            for start in range(0, len(line), chunk_size):
                yield line[start : start + chunk_size]
