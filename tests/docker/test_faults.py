"""Faults in containers: `docker compose restart` with clients attached, and the fork server
at its pids limit.

Both run on containers of their own (a second compose project; a container started with the
SDK), so the session's stack and its cached ports are never disturbed. Only 127.0.0.1 and the
published ports are used; every wait is bounded.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import docker
import pytest
from docker.models.containers import Container
from pytest_docker.plugin import Services

from probe.sessions import Crowd
from tests.docker.conftest import SERVERS
from tests.docker.support import (
    LOCALHOST,
    REPO_ROOT,
    address_of,
    compose_labels,
    container_logs,
    detach,
    health_of,
    poll,
    process_table,
    stack_project_name,
)
from tests.faults.figures import record

pytestmark = pytest.mark.docker

COMPOSE_TIMEOUT_S = 120.0
HEALTHY_TIMEOUT_S = 60.0
HELD = 5  # raw connections attached to the server through the restart


# ---------------------------------------------------------------- a stack of our own


@dataclass(frozen=True)
class Stack:
    command: str
    file: str
    project: str
    client: docker.DockerClient

    def run(self, *args: str, timeout: float = COMPOSE_TIMEOUT_S) -> str:
        argv = [*self.command.split(), "-f", self.file, "-p", self.project, *args]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
        if done.returncode != 0:
            raise AssertionError(f"{' '.join(argv)} exited {done.returncode}: {done.stderr}")
        return done.stdout

    def container(self, service: str) -> Container:
        found = self.client.containers.list(
            all=True, filters={"label": compose_labels(self.project, service)}
        )
        assert len(found) == 1, f"{len(found)} containers for {service}"
        return found[0]

    def address(self, service: str) -> tuple[str, int]:
        """127.0.0.1 and the published port from the host; name and port from a container."""
        return address_of(self.client, self.container(service), SERVERS[service])

    def wait_healthy(self, service: str, timeout: float = HEALTHY_TIMEOUT_S) -> float:
        started = time.monotonic()
        health = poll(
            lambda: health_of(self.container(service)),
            lambda h: h in ("healthy", "unhealthy"),
            timeout,
            interval=0.1,
        )
        assert health == "healthy", f"{service} is {health}:\n{self.logs(service)}"
        return time.monotonic() - started

    def logs(self, service: str, tail: int = 30) -> str:
        return container_logs(self.container(service), tail)


@pytest.fixture(scope="module")
def own_stack(
    docker_services: Services,  # the session's stack built the image this one runs
    docker_client: docker.DockerClient,
    docker_compose_command: str,
    docker_compose_file: str,
    compose_environment: dict[str, str],
) -> Iterator[Stack]:
    project = stack_project_name("faults")
    stack = Stack(docker_compose_command, docker_compose_file, project, docker_client)
    try:
        stack.run("up", "-d", *sorted(SERVERS))
        for service in SERVERS:
            stack.wait_healthy(service)
        yield stack
    finally:
        with contextlib.suppress(Exception):
            detach(docker_client, [f"{project}_default"])
            stack.run("down", "-v", "--remove-orphans")


def sees_end(sock: socket.socket, timeout: float) -> bool:
    """EOF or a reset within `timeout` (echoed bytes still in flight are read past)."""
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            if not sock.recv(65536):
                return True
        except (ConnectionResetError, BrokenPipeError):
            return True
        except TimeoutError:
            return False
    return False


def echo_once(
    address: tuple[str, int], payload: bytes = b"after the restart\n", timeout: float = 5.0
) -> bool:
    try:
        with socket.create_connection(address, timeout=timeout) as sock:
            sock.sendall(payload)
            sock.shutdown(socket.SHUT_WR)
            got = bytearray()
            while chunk := sock.recv(65536):
                got += chunk
            return bytes(got) == payload
    except OSError:
        return False


@pytest.mark.timeout(240)
@pytest.mark.parametrize("service", sorted(SERVERS))
def test_compose_restart_with_clients_attached(service: str, own_stack: Stack) -> None:
    host, port = address = own_stack.address(service)
    held = [socket.create_connection(address, timeout=10) for _ in range(HELD)]
    for i, sock in enumerate(held):
        line = f"held {i}\n".encode()
        sock.sendall(line)
        assert sock.recv(64) == line
    argv = [sys.executable, "-m", "client", "--server", f"{host}:{port}"]
    argv += ["--bytes", "20000000", "--chunk-size", "1000", "--interval", "0.002"]
    client = subprocess.Popen(
        [*argv, "--timeout", "15"],
        cwd=REPO_ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        process_group=0,
    )
    try:
        time.sleep(1.0)  # mid-transfer: 20 MB at 1000 bytes every 2 ms takes a minute
        assert client.poll() is None, "the client is still sending when the restart comes"
        started = time.monotonic()
        own_stack.run("restart", service)
        restarted_s = time.monotonic() - started
        try:
            out, err = client.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            pytest.fail("the attached client hangs after the restart")
        client_s = time.monotonic() - started
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(client.pid, signal.SIGKILL)
        client.communicate()
    ended = sum(sees_end(sock, 5) for sock in held)
    for sock in held:
        sock.close()
    own_stack.wait_healthy(service)
    healthy_s = time.monotonic() - started
    new_address = own_stack.address(service)
    served = poll(lambda: echo_once(new_address), bool, 20, interval=0.2)
    served_s = time.monotonic() - started
    stderr = err.decode(errors="replace").strip()
    failure = next((line for line in stderr.splitlines() if "FAILED" in line), stderr[-160:])
    logs = own_stack.logs(service, 200)
    table = process_table(own_stack.container(service))
    record(
        "compose restart",
        f"{service} (docker)",
        held=HELD,
        held_saw_end=ended,
        client_exit=client.returncode,
        client_error=failure,
        client_ends_s=round(client_s, 2),
        restart_s=round(restarted_s, 2),
        port_changed=new_address != address,
        zombies=len(table.zombies()),
        recover_s=round(healthy_s, 2),
        first_echo_s=round(served_s, 2),
    )
    assert ended == HELD, "every attached raw client saw its connection end"
    assert client.returncode == 1, (out, stderr)
    assert "FAILED" in failure, stderr
    assert served, f"no echo after the restart:\n{logs}"
    assert "shutting down on SIGTERM" in logs
    assert logs.count("listening on") >= 2, "the server started again"
    assert table.zombies() == set()


# ---------------------------------------------------------------- the fork server at pids_limit

PIDS_LIMIT = 12  # the server and 11 children
CONNECTIONS = 20
EAGAIN_LINE = "fork failed ([Errno 11] Resource temporarily unavailable): closed client"


@pytest.fixture
def pids_limited_fork_server(
    docker_client: docker.DockerClient, service_container: Callable[[str], Container]
) -> Iterator[tuple[Container, tuple[str, int]]]:
    """The stack's image as a fork server with pids_limit=12 and room for 100 children."""
    image = service_container("fork-server").image
    container = docker_client.containers.run(
        image.id,
        ["python3", "-m", "server", "fork", "--port", "9000", "--max-children", "100"],
        name=stack_project_name("pids"),
        detach=True,
        ports={"9000/tcp": (LOCALHOST, None)},
        pids_limit=PIDS_LIMIT,
        mem_limit="256m",
        read_only=True,
        cap_drop=["ALL"],
        security_opt=["no-new-privileges:true"],
        user="10001:10001",
        labels={"org.echolab.test": "faults-pids-limit"},
    )
    try:
        logs = poll(lambda: container_logs(container), lambda text: "listening on" in text, 30)
        assert "listening on" in logs, logs
        yield container, address_of(docker_client, container, 9000)
    finally:
        container.remove(force=True)


@pytest.mark.timeout(120)
def test_fork_server_at_its_pids_limit_closes_the_excess_and_recovers(
    pids_limited_fork_server: tuple[Container, tuple[str, int]],
) -> None:
    container, (host, port) = pids_limited_fork_server
    crowd = Crowd(port, host=host)
    try:
        crowd.connect(CONNECTIONS)
        crowd.send_all()
        # Until the first client is turned away: fork() failed with EAGAIN.
        crowd.drive(
            quiet_s=10, limit_s=30, close_served=False, until=lambda: crowd.count("refused") > 0
        )
        served_at_limit, refused = crowd.count("served"), crowd.count("refused")
        logs = container_logs(container)
        released = time.monotonic()
        crowd.close("served")  # children exit, pids free up
        crowd.drive(quiet_s=10, limit_s=60)
        recover_s = time.monotonic() - released
        after = poll(lambda: echo_once((host, port)), bool, 10, interval=0.2)
    finally:
        crowd.close()
    logs = container_logs(container)
    container.reload()
    # Every child reaped: PID 1 (the server) has no child left and nothing is a zombie.
    table = poll(
        lambda: process_table(container), lambda t: not t.children_of(1) and not t.zombies(), 10
    )
    record(
        "pids_limit (fork fails)",
        "fork-server (docker)",
        pids_limit=PIDS_LIMIT,
        sessions=CONNECTIONS,
        served_at_limit=served_at_limit,
        refused=crowd.count("refused"),
        first_refused_at=refused,
        served=crowd.count("served"),
        fork_failed_lines=logs.count("fork failed"),
        leaks={"processes": len(table.children_of(1))},
        zombies=len(table.zombies()),
        recover_s=round(recover_s, 2),
    )
    assert container.status == "running", logs[-2000:]
    assert EAGAIN_LINE in logs, logs[-2000:]
    assert 0 < served_at_limit < PIDS_LIMIT, "children up to the limit, the server included"
    assert crowd.count("pending") == crowd.count("mismatched") == 0
    assert crowd.count("served") + crowd.count("refused") == CONNECTIONS
    assert crowd.count("served") > served_at_limit, "served again once children exited"
    assert after, "a new client is served after the storm"
    assert table.children_of(1) == set() and table.zombies() == set()
