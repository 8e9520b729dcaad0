"""Byte-exact echo through the published ports, from nothing to several MiB."""

from __future__ import annotations

import hashlib

import pytest

from tests.docker.support import Server, echo_exchange, run_client

pytestmark = pytest.mark.docker

SIZES = {"0B": 0, "1B": 1, "256B": 256, "64KiB": 64 * 1024, "4MiB": 4 * 1024 * 1024}
EVERY_BYTE_VALUE = bytes(range(256))


@pytest.mark.parametrize("size", SIZES.values(), ids=SIZES.keys())
def test_the_client_gets_back_exactly_what_it_sent(server: Server, size: int) -> None:
    report = run_client(server.port, "--bytes", str(size), host=server.host)
    assert report["exit_code"] == 0, report
    assert (report["ok"], report["failed"]) == (1, 0), report["errors"]
    assert report["bytes_sent"] == report["bytes_received"] == size


@pytest.mark.parametrize("size", SIZES.values(), ids=SIZES.keys())
def test_every_byte_value_comes_back_in_order(server: Server, size: int) -> None:
    """Raw socket: 0x00..0xff repeated or cut to `size`; nothing more, nothing less."""
    payload = (EVERY_BYTE_VALUE * (size // 256 + 1))[:size]
    echoed = echo_exchange(server.port, payload, host=server.host)
    assert len(echoed) == size
    assert hashlib.sha256(echoed).digest() == hashlib.sha256(payload).digest()
