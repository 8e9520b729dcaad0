"""Where the view's snapshots come from: this machine's /proc, or an agent beside a server.

A source answers `read()` with a list of server documents (the JSON of /api/snapshot's
"servers") or raises `Unseen` with one line saying what it cannot see. Each source is polled in
its own thread (`Poller`), so a slow or dead agent never delays the others.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request

from probe import procfs, snapshot
from view import caps

AGENT_TIMEOUT_SECONDS = 2.0
MAX_AGENT_BYTES = 16 * 1024 * 1024  # 500 children with their sockets is ~200 kB


class Unseen(Exception):
    """The source cannot be seen right now; the message says why, in one line."""


def server_document(service: str, snap: snapshot.ServerSnapshot, proc_root: str) -> dict:
    doc: dict[str, object] = {"service": service, **snapshot.as_json(snap)}
    if snap.model in ("select", "epoll"):
        nofile = caps.open_files_limit(snap.root, proc_root)
        doc["cap"] = caps.client_cap(snap.model, snap.option("--max-clients"), nofile)
        doc["fd_setsize"] = caps.FD_SETSIZE
    elif snap.model == "fork":
        doc["cap"] = int(m) if (m := snap.option("--max-children")) and m.isdigit() else 512
    return doc


class ProcSource:
    """Servers on given ports of this machine, one pass over /proc for all of them."""

    def __init__(self, services: list[tuple[str, list[int]]], proc_root: str = procfs.PROC):
        self.services = services
        self.service = ", ".join(name for name, _ in services)
        self.proc_root = proc_root

    def read(self) -> list[dict]:
        found = snapshot.on_ports({p for _, ports in self.services for p in ports}, self.proc_root)
        docs: list[dict] = []
        for service, ports in self.services:
            seen: set[int] = set()
            for port in ports:
                snap = found.get(port)
                if snap is None:
                    docs.append(_unseen(service, f"no process listens on port {port}"))
                elif snap.root not in seen:
                    seen.add(snap.root)
                    docs.append(server_document(service, snap, self.proc_root))
        return docs


def _unseen(service: str, why: str) -> dict:
    return {"service": service, "model": None, "processes": [], "error": why}


class AgentSource:
    """Servers as an agent (python3 -m view.agent) in a server's pid namespace reports them."""

    def __init__(self, service: str, url: str) -> None:
        self.service = service
        self.url = url

    def read(self) -> list[dict]:
        try:
            with urllib.request.urlopen(self.url, timeout=AGENT_TIMEOUT_SECONDS) as response:
                body = response.read(MAX_AGENT_BYTES + 1)
        except (OSError, urllib.error.URLError) as error:
            raise Unseen(f"agent {self.url} unreachable: {error}") from None
        if len(body) > MAX_AGENT_BYTES:
            raise Unseen(f"agent {self.url} answered more than {MAX_AGENT_BYTES} bytes")
        try:
            servers = json.loads(body)["servers"]
        except (ValueError, KeyError, TypeError):
            raise Unseen(f"agent {self.url} answered something that is not a snapshot") from None
        if not servers:
            raise Unseen("no process in its pid namespace listens on a TCP port")
        for doc in servers:
            doc["service"] = self.service
        return servers


class Poller:
    """Reads one source every `interval` seconds in a daemon thread; keeps the latest answer."""

    def __init__(self, source: ProcSource | AgentSource, interval: float) -> None:
        self.source = source
        self.interval = interval
        self.latest: list[dict] = []
        self.error: str | None = "not read yet"
        self.read_seconds = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"poll {source.service}")
        self._thread.daemon = True

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(AGENT_TIMEOUT_SECONDS + 1)

    def poll_once(self) -> None:
        started = time.perf_counter()
        try:
            self.latest, self.error = self.source.read(), None
        except Unseen as error:
            self.latest, self.error = [], str(error)
        except Exception as error:  # a reader bug must not end the view: say it, go on
            self.latest, self.error = [], f"reading failed: {type(error).__name__}: {error}"
        self.read_seconds = time.perf_counter() - started

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            self.poll_once()
            self._stop.wait(max(0.0, self.interval - (time.monotonic() - started)))

    def documents(self) -> list[dict]:
        if self.error is not None:
            return [
                {
                    "service": self.source.service,
                    "model": None,
                    "processes": [],
                    "error": self.error,
                }
            ]
        return self.latest
