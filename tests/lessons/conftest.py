"""Lesson fixtures: the delay proxy (the shared host fixtures come from tests/host/fixtures.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator

import pytest

from probe.sockets import HOST
from tests.host.support import REPO_ROOT, LogCapture, ServerProcess

PROXY_LISTENING = r"listening on 127\.0\.0\.1:(?P<port>\d+): to "

StartProxy = Callable[..., ServerProcess]


def start_proxy(upstream_port: int, delay_ms: float, *args: str) -> ServerProcess:
    """`python -m lab.delay_proxy` on an ephemeral port in front of 127.0.0.1:upstream_port."""
    argv = [sys.executable, "-m", "lab.delay_proxy", "--listen", f"{HOST}:0"]
    argv += ["--upstream", f"{HOST}:{upstream_port}", "--delay-ms", str(delay_ms), *args]
    proc = subprocess.Popen(
        argv,
        cwd=REPO_ROOT,
        env=dict(os.environ, PYTHONDONTWRITEBYTECODE="1"),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        process_group=0,
    )
    proxy = ServerProcess(
        "delay-proxy", proc, LogCapture(proc.stderr, "proxy-log"), LogCapture(proc.stdout, "out")
    )
    try:
        proxy.port = int(proxy.wait_for_log(PROXY_LISTENING, timeout=15)["port"])
    except AssertionError:
        proxy.cleanup()
        raise
    return proxy


@pytest.fixture
def delay_proxy() -> Iterator[StartProxy]:
    """start(upstream_port, delay_ms, *args): a delay proxy, stopped at teardown."""
    started: list[ServerProcess] = []

    def start(upstream_port: int, delay_ms: float, *args: str) -> ServerProcess:
        started.append(start_proxy(upstream_port, delay_ms, *args))
        return started[-1]

    yield start
    for proxy in started:
        proxy.cleanup()
