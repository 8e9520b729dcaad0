"""`docker compose stop` ends each server at once, cleanly, even with clients connected.

These run after every other test of the session (the `stops_stack` marker): the stack is
not started again.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from docker.models.containers import Container
from pytest_docker.plugin import DockerComposeExecutor, Services

from tests.docker.conftest import SERVERS, STOPS_STACK
from tests.docker.support import address_of, connected_clients, container_logs

pytestmark = [pytest.mark.docker, getattr(pytest.mark, STOPS_STACK)]

# SIGTERM is handled by the server itself (it is PID 1, so the kernel applies no default
# action); a server that ignored it would be SIGKILLed after stop_grace_period (exit 137).
STOP_BOUND_SECONDS = 3.0
CLIENTS_DURING_STOP = 3


@pytest.mark.parametrize("service", sorted(SERVERS))
def test_compose_stop_ends_the_server_at_once_with_exit_0(
    service: str,
    docker_services: Services,
    compose: DockerComposeExecutor,
    service_container: Callable[[str], Container],
) -> None:
    host, port = address_of(
        service_container(service).client, service_container(service), SERVERS[service]
    )
    with connected_clients(port, CLIENTS_DURING_STOP, host=host):
        started = time.monotonic()
        compose.execute(f"stop {service}")
        elapsed = time.monotonic() - started

    container = service_container(service)
    state = container.attrs["State"]
    logs = container_logs(container, tail=20)
    assert state["Status"] == "exited", logs
    assert state["ExitCode"] == 0, logs
    assert "shutting down on SIGTERM" in logs, logs
    assert elapsed < STOP_BOUND_SECONDS, f"`stop {service}` took {elapsed:.2f} s"
