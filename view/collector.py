"""Polls every source, keeps the latest document (encoded once) and the timeline of events.

Every web client reads the same encoded bytes: the view's cost grows with the servers'
processes, not with the number of browsers watching.
"""

from __future__ import annotations

import json
import threading
import time

from view.sources import AgentSource, Poller, ProcSource
from view.timeline import Timeline, diff

EVENTS_SHOWN = 40


class Collector:
    def __init__(self, sources: list[ProcSource | AgentSource], interval: float = 0.4) -> None:
        self.interval = interval
        self.pollers = [Poller(s, interval) for s in sources]
        self.timeline = Timeline()
        self.version = 0
        self.body = b'{"servers": [], "events": []}'
        self._servers: list[dict] = []
        self._changed = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="collector", daemon=True)

    def start(self) -> None:
        for poller in self.pollers:
            poller.start()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        with self._changed:
            self._changed.notify_all()
        for poller in self.pollers:
            poller.stop()
        self._thread.join(2)

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def tick(self) -> None:
        """Compose the sources' latest answers into one document; record what changed."""
        now = time.time()
        servers = [doc for poller in self.pollers for doc in poller.documents()]
        self.timeline.extend(diff(self._servers, servers, now))
        self._servers = servers
        document = {
            "time": now,
            "interval": self.interval,
            "servers": servers,
            "events": self.timeline.last(EVENTS_SHOWN),
        }
        body = json.dumps(document, separators=(",", ":")).encode()
        with self._changed:
            self.body = body
            self.version += 1
            self._changed.notify_all()

    def wait_newer(self, version: int, timeout: float) -> tuple[int, bytes]:
        """The document once it is newer than `version` (or the current one after `timeout`)."""
        with self._changed:
            self._changed.wait_for(lambda: self.version > version or self.stopped, timeout)
            return self.version, self.body

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.tick()
