"""Bad input: whatever people type (or pipe) into the lab comes back exactly.

Random binary in random-sized writes, NUL bytes, control characters and "quit" lines (the
servers give no byte a meaning), 64 MiB through one connection, and one byte per send().
"""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest

from probe.compare import first_difference
from probe.footprint import footprint
from probe.sessions import MIB, stream_echo
from probe.sockets import echo
from tests.faults.conftest import wait_idle
from tests.faults.figures import record
from tests.host.support import ServerProcess

StartServer = Callable[..., ServerProcess]


def random_writes(data: bytes, rng: random.Random) -> list[bytes]:
    out, at = [], 0
    while at < len(data):
        size = rng.choice((1, 2, 3, 17, 100, 1460, 4096, 65535, 70000))
        out.append(data[at : at + size])
        at += size
    return out


def cases() -> dict[str, tuple[list[bytes], int]]:
    """name -> (the writes, pause every N writes so small ones stay separate segments)."""
    rng = random.Random(5)
    binary = rng.randbytes(MIB)
    typed = b"Q\nq\nQUIT\r\n\x04\x1a\x03\x00\xff\xfe\x1b[2J\r\n\xc3\x28 not utf-8 \xed\xa0\x80\n"
    one_byte = rng.randbytes(3000)
    return {
        "random binary 1 MiB, random write sizes": (random_writes(binary, rng), 0),
        "NUL bytes 256 KiB": ([bytes(65536)] * 4, 0),
        "control chars, quit lines, bad UTF-8": ([typed] * 50, 1),
        "one byte per send x 3000": ([one_byte[i : i + 1] for i in range(3000)], 50),
    }


@pytest.mark.timeout(120)
@pytest.mark.parametrize("model", ["fork", "select", "epoll"])
def test_bad_input_is_echoed_exactly(model: str, server_factory: StartServer) -> None:
    server = server_factory(model)
    idle = footprint(server.pid)
    outcome: dict[str, str] = {}
    total = 0
    for name, (writes, pause_every) in cases().items():
        sent, received = echo(server.port, writes, timeout=60, pause_every=pause_every)
        outcome[name] = first_difference(sent, received)
        total += len(received)
    big = stream_echo(server.port, 64 * MIB, limit_s=90)
    outcome["64 MiB in one connection"] = (
        "identical" if big.exact else f"{big.ended}, first wrong byte {big.first_wrong_byte}"
    )
    total += big.received
    after, settle_s = wait_idle(server)
    leaks = after.leaks_against(idle, 4096)
    record(
        "bad input",
        model,
        sessions=len(outcome),
        bytes=total,
        mismatched=sum(result != "identical" for result in outcome.values()),
        big_mib_s=round(64 / big.seconds, 1) if big.seconds else None,
        outcome=outcome,
        leaks=leaks,
        zombies=after.zombies,
        recover_s=round(settle_s, 2),
    )
    assert outcome == dict.fromkeys(outcome, "identical")
    assert big.sent == big.received == 64 * MIB
    assert server.alive()
    assert leaks == {"fds": 0, "processes": 0, "zombies": 0, "rss_kib_over_slack": 0}
