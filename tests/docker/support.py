"""Docker-tier plumbing: the compose tool, a container's /proc read through exec, raw echoes.

The tests read as statements about the kernel; what they need from Docker lives here and in
conftest.py. /proc text is read inside the container (one `docker exec` per snapshot) and
parsed on the host by the same parsers the host tier uses (probe/procfs.py).
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import secrets
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import docker
import pytest
from docker.errors import APIError, BuildError, NotFound
from docker.models.containers import Container

from probe.procfs import Stat, TcpSocket, parse_children, parse_net_tcp, parse_stat, socket_inode

REPO_ROOT = Path(__file__).resolve().parents[2]
LOCALHOST = "127.0.0.1"  # the only address the stack publishes on, from the host
# Set by the test stage: the suite runs in a container, whose loopback is its own. The
# docker tier then joins each stack's network and reaches servers there by container name.
IN_CONTAINER = os.environ.get("ECHOLAB_IN_CONTAINER") == "1"
COMPOSE_CANDIDATES = ("docker compose", "docker-compose")

T = TypeVar("T")


# ---------------------------------------------------------------- the compose tool


def detect_compose_command() -> str | None:
    """`docker compose` (v2) if the plugin answers, else `docker-compose` (v1), else None."""
    for command in COMPOSE_CANDIDATES:
        try:
            result = subprocess.run(
                [*command.split(), "version"], capture_output=True, timeout=30, check=False
            )
        except (OSError, subprocess.TimeoutExpired):
            continue
        if result.returncode == 0:
            return command
    return None


def resolve_base_image(timeout: float = 900.0) -> str:
    """The last stdout line of scripts/ensure-base-image.sh: a Python base that exists locally."""
    result = subprocess.run(
        [str(REPO_ROOT / "scripts" / "ensure-base-image.sh")],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    lines = result.stdout.strip().splitlines()
    if result.returncode != 0 or not lines:
        raise RuntimeError(
            f"scripts/ensure-base-image.sh exited {result.returncode}: {result.stderr.strip()}"
        )
    return lines[-1].strip()


def build_image(
    client: docker.DockerClient, context: Path, tag: str, target: str | None = None
) -> str:
    """`docker build` of `context` (up to `target`) on $PYTHON_IMAGE; a failure fails the test."""
    base = os.environ.get("PYTHON_IMAGE") or resolve_base_image()
    args = {"PYTHON_IMAGE": base}
    try:
        # The SDK builds with the legacy builder, which builds every stage before the target;
        # forcerm: no intermediate container is left behind when a step fails.
        client.images.build(
            path=str(context), tag=tag, buildargs=args, target=target, rm=True, forcerm=True
        )
    except BuildError as error:
        log = "".join(str(chunk.get("stream", chunk)) for chunk in error.build_log)
        pytest.fail(f"docker build {context} failed: {error}\n{log[-3000:]}", pytrace=False)
    return tag


# ---------------------------------------------------------------- containers


# Stacks are named <prefix>-<kind>-<owner>-<pid>-<random>: the owner (h + host name, or
# c + the test container's id) says who may call a stack stale. Compose labels every
# container, network and volume it creates with the project name.
PROJECT_PREFIX = os.environ.get("ECHOLAB_TEST_PROJECT", "echolab-test")


def owner_token() -> str:
    name = re.sub(r"[^a-z0-9]", "", socket.gethostname().lower())[:24] or "host"
    return f"c{name}" if IN_CONTAINER else f"h{name}"


def stack_project_name(kind: str) -> str:
    """A compose project name of this run's own, e.g. echolab-test-session-hbox-4242-a1b2c3."""
    return f"{PROJECT_PREFIX}-{kind}-{owner_token()}-{os.getpid()}-{secrets.token_hex(3)}"


def _owner_gone(client: docker.DockerClient, owner: str, pid: int) -> bool:
    """True only when the run that made a stack is provably over; unknown owners are kept."""
    if owner == owner_token() and not IN_CONTAINER:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False
    if owner.startswith("c"):
        try:
            return client.containers.get(owner[1:]).status != "running"
        except NotFound:
            return True
    return False  # another host's run: not ours to judge


def remove_stale_stacks(client: docker.DockerClient) -> list[str]:
    """Remove stacks left by interrupted runs (found by their project label); one line each."""
    label = "com.docker.compose.project"
    projects = {
        c.labels.get(label, "") for c in client.containers.list(all=True, filters={"label": label})
    }
    projects |= {
        (n.attrs.get("Labels") or {}).get(label, "")
        for n in client.networks.list(filters={"label": label})
    }
    projects = {p for p in projects if p.startswith(PROJECT_PREFIX + "-")}
    lines = []
    for project in sorted(projects):
        parts = project[len(PROJECT_PREFIX) + 1 :].rsplit("-", 3)
        if len(parts) != 4 or not parts[2].isdigit():
            continue
        if not _owner_gone(client, parts[1], int(parts[2])):
            continue
        found = {"label": f"{label}={project}"}
        for container in client.containers.list(all=True, filters=found):
            container.remove(force=True, v=True)
        for network in client.networks.list(filters=found):
            with suppress(APIError):
                network.remove()
        for volume in client.volumes.list(filters=found):
            with suppress(APIError):
                volume.remove(force=True)
        lines.append(f"removed stale stack {project} (left by an interrupted run)")
    return lines


def own_container(client: docker.DockerClient) -> Container:
    """The container this suite runs in (its hostname is its id, as Docker sets it)."""
    try:
        return client.containers.get(socket.gethostname())
    except NotFound:
        raise RuntimeError(
            f"ECHOLAB_IN_CONTAINER=1 but no container {socket.gethostname()} on this engine: "
            "run the suite with `docker compose -f docker-compose.test.yml run --rm test`"
        ) from None


def address_of(client: docker.DockerClient, container: Container, port: int) -> tuple[str, int]:
    """Where this suite reaches `port` of `container`.

    From the host: 127.0.0.1 and the published ephemeral port. From a container: the
    container's name on a network both share, joining the container's first network if
    need be (`detach` undoes it before the stack is taken down).
    """
    container.reload()
    if not IN_CONTAINER:
        bindings = container.attrs["NetworkSettings"]["Ports"].get(f"{port}/tcp")
        if not bindings:
            raise LookupError(f"{container.name} publishes no port for {port}/tcp")
        return LOCALHOST, int(bindings[0]["HostPort"])
    me = own_container(client)
    me.reload()
    theirs = container.attrs["NetworkSettings"]["Networks"]
    shared = [name for name in theirs if name in me.attrs["NetworkSettings"]["Networks"]]
    network = shared[0] if shared else next(iter(theirs))
    if not shared:
        client.networks.get(network).connect(me)
    if network == "bridge":  # the default bridge has no DNS: its address, then
        container.reload()
        return container.attrs["NetworkSettings"]["Networks"]["bridge"]["IPAddress"], port
    return container.name, port


def detach(client: docker.DockerClient, network_names: list[str]) -> None:
    """Leave the networks this suite joined, so `down` can remove them (no-op from the host)."""
    if not IN_CONTAINER:
        return
    me = own_container(client)
    for name in network_names:
        with suppress(NotFound, APIError):  # not joined, or already gone
            client.networks.get(name).disconnect(me, force=True)


def compose_labels(project: str, service: str) -> list[str]:
    return [f"com.docker.compose.project={project}", f"com.docker.compose.service={service}"]


def container_logs(container: Container, tail: int | str = "all") -> str:
    return container.logs(stdout=True, stderr=True, tail=tail).decode(errors="replace")


def health_of(container: Container) -> str:
    """'starting', 'healthy', 'unhealthy', or 'none' for a container without a healthcheck."""
    container.reload()
    return str(container.attrs["State"].get("Health", {}).get("Status", "none"))


def poll(
    produce: Callable[[], T], done: Callable[[T], bool], timeout: float, interval: float = 0.2
) -> T:
    """Call `produce` until `done(value)` or `timeout` passes; return the last value either way.

    Bounded in time and in tries; the caller asserts on the value, so a failure shows it.
    """
    deadline = time.monotonic() + timeout
    value = produce()
    for _ in range(int(timeout / interval) + 1):
        if done(value) or time.monotonic() >= deadline:
            break
        time.sleep(interval)
        value = produce()
    return value


# ---------------------------------------------------------------- /proc through docker exec

# Runs inside the container (stdlib only, nothing written): the text of every file and the
# target of every link matching the patterns, as one JSON object.
_DUMP_PROC = """
import glob, json, os, sys
out = {}
for pattern in sys.argv[1:]:
    for path in glob.glob(pattern):
        try:
            if os.path.islink(path):
                out[path] = os.readlink(path)
            else:
                with open(path) as f:
                    out[path] = f.read()
        except OSError:
            pass  # the process ended between the glob and the read
print(json.dumps(out))
"""

SNAPSHOT_PATTERNS = (
    "/proc/[0-9]*/stat",
    "/proc/[0-9]*/task/*/children",
    "/proc/[0-9]*/fd/*",
    "/proc/net/tcp",
    "/proc/net/tcp6",
)

_PROC_PATH = re.compile(r"^/proc/(\d+)/(?:(stat)|task/\d+/(children)|fd/(\d+))$")


def read_proc_files(container: Container, *patterns: str) -> dict[str, str]:
    """{path: text or link target} for the patterns, read inside the container."""
    exit_code, (stdout, stderr) = container.exec_run(
        ["python3", "-c", _DUMP_PROC, *patterns], demux=True
    )
    if exit_code != 0:
        raise RuntimeError(f"reading /proc in {container.name} failed: {stderr!r}")
    return dict(json.loads(stdout))


def is_loopback(ip: str) -> bool:
    return ipaddress.ip_address(ip).is_loopback


@dataclass
class ProcessTable:
    """One snapshot of a container's processes, their children, descriptors and TCP sockets."""

    stats: dict[int, Stat] = field(default_factory=dict)
    children: dict[int, set[int]] = field(default_factory=dict)
    fds: dict[int, dict[int, str]] = field(default_factory=dict)
    tcp: list[TcpSocket] = field(default_factory=list)

    @classmethod
    def parse(cls, files: dict[str, str]) -> ProcessTable:
        table = cls()
        for path, text in files.items():
            if path in ("/proc/net/tcp", "/proc/net/tcp6"):
                table.tcp.extend(parse_net_tcp(text))
                continue
            m = _PROC_PATH.match(path)
            if not m or not text:
                continue
            pid = int(m.group(1))
            if m.group(2):
                table.stats[pid] = parse_stat(text)
            elif m.group(3):
                table.children.setdefault(pid, set()).update(parse_children(text))
            else:
                table.fds.setdefault(pid, {})[int(m.group(4))] = text
        return table

    def children_of(self, pid: int) -> set[int]:
        """Direct children, zombies included (a zombie keeps its parent until reaped)."""
        return set(self.children.get(pid, set()))

    def zombies(self) -> set[int]:
        return {pid for pid, s in self.stats.items() if s.state == "Z"}

    def tcp_of(self, pid: int) -> list[TcpSocket]:
        """The TCP sockets `pid` holds a descriptor to (listener included)."""
        inodes = {socket_inode(target) for target in self.fds.get(pid, {}).values()}
        return [row for row in self.tcp if row.inode in inodes]

    def served_connections(self, pid: int) -> list[TcpSocket]:
        """Established connections `pid` serves for a peer outside the container.

        The container's own health probe connects from 127.0.0.1; clients through the
        published port arrive from the network's gateway, never from loopback.
        """
        return [
            row
            for row in self.tcp_of(pid)
            if row.state == "ESTABLISHED" and not is_loopback(row.remote_ip)
        ]


def process_table(container: Container) -> ProcessTable:
    return ProcessTable.parse(read_proc_files(container, *SNAPSHOT_PATTERNS))


# ---------------------------------------------------------------- talking to a server


@dataclass(frozen=True)
class Server:
    service: str  # compose service name, e.g. "fork-server"
    container: Container
    port: int  # the ephemeral host port on 127.0.0.1, or the container's own port
    host: str = LOCALHOST  # or the container's name on the stack's network


def recv_exactly(sock: socket.socket, size: int) -> bytes:
    """Read `size` bytes (fewer only at EOF); each recv is bounded by the socket's timeout."""
    data = bytearray()
    while len(data) < size and (chunk := sock.recv(size - len(data))):
        data += chunk
    return bytes(data)


@contextmanager
def connected_clients(
    port: int, count: int, timeout: float = 20.0, host: str = LOCALHOST
) -> Iterator[list[socket.socket]]:
    """`count` connections held open at once, each proven served by one echo; closed on exit."""
    socks: list[socket.socket] = []
    try:
        for _ in range(count):
            socks.append(socket.create_connection((host, port), timeout=timeout))
        for index, sock in enumerate(socks):
            line = f"client {index} is here\n".encode()
            sock.sendall(line)
            echoed = recv_exactly(sock, len(line))
            if echoed != line:
                raise AssertionError(f"client {index}: sent {line!r}, got back {echoed!r}")
        yield socks
    finally:
        for sock in socks:
            sock.close()


def echo_exchange(port: int, payload: bytes, timeout: float = 60.0, host: str = LOCALHOST) -> bytes:
    """Send `payload` while reading the echo, half-close, return every byte until EOF.

    Writing and reading at once (a thread writes): a server echoing a large payload would
    otherwise fill both socket buffers and the two sides would wait on each other.
    """
    errors: list[BaseException] = []
    received = bytearray()
    with socket.create_connection((host, port), timeout=timeout) as sock:

        def send() -> None:
            try:
                sock.sendall(payload)
                sock.shutdown(socket.SHUT_WR)
            except OSError as error:
                errors.append(error)

        writer = threading.Thread(target=send, daemon=True)
        writer.start()
        deadline = time.monotonic() + timeout
        while chunk := sock.recv(1 << 16):
            received += chunk
            if time.monotonic() > deadline:
                raise TimeoutError(f"echo of {len(payload)} bytes not done in {timeout} s")
        writer.join(timeout)
    if errors:
        raise errors[0]
    return bytes(received)


def run_client(
    port: int, *args: str, timeout: float = 120.0, host: str = LOCALHOST
) -> dict[str, Any]:
    """Run the project's split-I/O client against host:port; return its JSON report."""
    result = subprocess.run(
        [sys.executable, "-m", "client", "--server", f"{host}:{port}", *args, "--json"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    try:
        report: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        raise AssertionError(
            f"client exited {result.returncode} without a report: {result.stderr}"
        ) from None
    report["exit_code"] = result.returncode
    report["stderr"] = result.stderr
    return report
