"""The servers under test: ours and the peers, started and stopped by the benchmark itself.

Each runs in its own session (process group), logs to a file, and is reached through the
port it reports in its "listening on HOST:PORT" line (every server is started on port 0).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LISTENING = re.compile(r"listening on \[?([\w.:]+?)\]?:(\d+)\b")
PROCESS, THREAD, MULTIPLEX = "process per client", "thread per client", "one process"


OURS, PEER, REFERENCE = "ours", "stdlib peer", "reference"


@dataclass(frozen=True)
class ServerSpec:
    name: str
    model: str
    role: str  # OURS, PEER (what a user would pick instead) or REFERENCE (the limit)
    argv: tuple[str, ...]  # after `python3 -m`; "{host}" is replaced
    c_program: str = ""  # a C reference: bench/c/<c_program>.c, argv follows the binary

    @property
    def ours(self) -> bool:
        return self.role == OURS

    def command(self, host: str, c_dir: Path | None = None) -> list[str]:
        args = [a.replace("{host}", host) for a in self.argv]
        if self.c_program:
            return [str((c_dir or Path()) / self.c_program), *args]
        return [sys.executable, "-m", *args]


def _ours(model_name: str, model: str) -> ServerSpec:
    # --quiet-peer: our servers log every connection, the peers none; the same work for all.
    args = ("server", model_name, "--host", "{host}", "--port", "0", "--quiet-peer", "{host}")
    return ServerSpec(model_name, model, OURS, args)


def _peer(name: str, model: str, *args: str) -> ServerSpec:
    return ServerSpec(name, model, PEER, ("bench.peers", *args, "--host", "{host}", "--port", "0"))


def _reference(name: str, model: str, module: str, *args: str, c: str = "") -> ServerSpec:
    return ServerSpec(
        name, model, REFERENCE, (*((module,) if module else ()), "{host}", "0", *args), c
    )


SERVERS: dict[str, ServerSpec] = {
    s.name: s
    for s in (
        _ours("fork", PROCESS),
        _ours("select", MULTIPLEX),
        _ours("epoll", MULTIPLEX),
        _peer("socketserver-forking", PROCESS, "forking"),
        _peer("socketserver-threading", THREAD, "threading"),
        _peer("selectors", MULTIPLEX, "selectors"),
        _peer("selectors-select", MULTIPLEX, "selectors", "--selector", "select"),
        _peer("asyncio", MULTIPLEX, "asyncio"),
        _reference("minimal-fork", PROCESS, "bench.minimal_fork"),
        _reference("minimal-select", MULTIPLEX, "bench.minimal_selectors", "select"),
        _reference("minimal-epoll", MULTIPLEX, "bench.minimal_selectors", "epoll"),
        _reference("c-fork", PROCESS, "", c="fork_echo"),
        _reference("c-select", MULTIPLEX, "", c="select_echo"),
    )
}
# Which reference bounds each of our servers (the minimal server of its model, then C).
MINIMAL = {"fork": "minimal-fork", "select": "minimal-select", "epoll": "minimal-epoll"}
C_OF = {"fork": "c-fork", "select": "c-select", "epoll": "c-select"}
DEFAULT_SERVERS = (
    "fork",
    "select",
    "epoll",
    "socketserver-forking",
    "socketserver-threading",
    "selectors",
    "selectors-select",
    "asyncio",
    "minimal-fork",
    "minimal-select",
    "minimal-epoll",
    "c-fork",
    "c-select",
)


def model_of(name: str) -> str:
    """A target's model from its name (fork=fork-server:9000 -> process per client)."""
    if name in SERVERS:
        return SERVERS[name].model
    return PROCESS if "fork" in name else THREAD if "thread" in name else MULTIPLEX


def probe(host: str, port: int, timeout: float = 2.0) -> bool:
    """One real echo, not just a port check."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(b"probe\n")
            sock.shutdown(socket.SHUT_WR)
            got = b""
            while chunk := sock.recv(64):
                got += chunk
            return got == b"probe\n"
    except OSError:
        return False


class Server:
    """A server under test: `pid` is None for one we did not start (--target)."""

    def __init__(self, name: str, model: str, role: str) -> None:
        self.name, self.model, self.role = name, model, role
        self.ours = role == OURS
        self.host = ""
        self.port = 0
        self.pid: int | None = None

    def alive(self) -> bool:
        return probe(self.host, self.port)

    def log_since(self, offset: int) -> str | None:
        return None  # not readable from here

    def log_size(self) -> int:
        return 0

    def stop(self) -> None:
        pass


class TargetServer(Server):
    def __init__(self, name: str, host: str, port: int, wait: float = 30.0) -> None:
        super().__init__(name, model_of(name), OURS if name in MINIMAL else PEER)
        self.host, self.port = host, port
        deadline = time.monotonic() + wait
        while not probe(host, port):
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name}: {host}:{port} did not echo within {wait:.0f} s")
            time.sleep(0.5)


class LocalServer(Server):
    def __init__(
        self, spec: ServerSpec, host: str, log_path: Path, command: list[str] | None = None
    ) -> None:
        super().__init__(spec.name, spec.model, spec.role)
        self.spec = spec
        self.host = host
        self.log_path = log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "ab") as log:
            self.started_at = log.tell()  # the log grows over restarts: read this run's part
            self.process = subprocess.Popen(
                command or spec.command(host),
                cwd=ROOT,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,  # its own process group: stop() ends any stray child
            )
        self.pid = self.process.pid
        self.port = self._wait_listening(10.0)

    def _wait_listening(self, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                log = self.log_since(self.started_at)
                raise RuntimeError(f"{self.name} exited at start: {log[-500:]}")
            if match := LISTENING.search(self.log_since(self.started_at)):
                port = int(match.group(2))
                if probe(self.host, port):
                    return port
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"{self.name} did not start listening within {timeout:.0f} s")

    def alive(self) -> bool:
        return self.process.poll() is None

    def exit_code(self) -> int | None:
        return self.process.poll()

    def log_size(self) -> int:
        return self.log_path.stat().st_size

    def log_since(self, offset: int) -> str:
        with open(self.log_path, "rb") as log:
            log.seek(offset)
            return log.read().decode(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(5.0)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        # Children a killed peer left behind share its process group, which we started.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
