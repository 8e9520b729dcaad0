"""The stack as `docker compose up` shows it: scripted clients' verdicts, the fork server's log."""

from __future__ import annotations

import re
from collections import Counter

import pytest
from docker.models.containers import Container

from tests.docker.conftest import SCRIPTED_CLIENTS
from tests.docker.support import Server, container_logs, poll, run_client

pytestmark = pytest.mark.docker

VERDICT = "ok: 4/4 connections echoed exactly"
FORKED = re.compile(r"-> child (\d+)$", re.MULTILINE)
REAPED = re.compile(r"removed proc id: (\d+) ", re.MULTILINE)


@pytest.mark.parametrize("service", SCRIPTED_CLIENTS)
def test_scripted_client_container_exits_0_with_its_verdict(
    service: str, scripted_clients_done: dict[str, Container]
) -> None:
    container = scripted_clients_done[service]
    logs = container_logs(container)
    assert container.attrs["State"]["ExitCode"] == 0, logs
    assert VERDICT in logs, logs


def forked_and_reaped(container: Container) -> tuple[Counter[str], Counter[str]]:
    logs = container_logs(container)
    return Counter(FORKED.findall(logs)), Counter(REAPED.findall(logs))


def test_fork_server_logs_a_reaped_pid_for_every_forked_pid(fork_server: Server) -> None:
    report = run_client(
        fork_server.port, "--connections", "5", "--bytes", "4096", host=fork_server.host
    )
    assert report["exit_code"] == 0, report

    forked, reaped = poll(
        lambda: forked_and_reaped(fork_server.container),
        lambda counts: not counts[0] - counts[1],
        15.0,
    )
    assert sum(forked.values()) >= 5, "the log names no forked child"
    assert not forked - reaped, f"forked but never reaped: {sorted(forked - reaped)}"
