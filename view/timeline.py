"""The events between two snapshots, as the kernel shows them, in a bounded history.

A child appeared (and whom it serves), exited (a zombie until its parent waits for it), was
reaped; a client connected to or left a select server; a server appeared, went away, or could
not be seen. Only the last `limit` events are kept: a day of demos grows nothing.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True)
class Event:
    time: float
    service: str
    kind: str  # appeared, exited, reaped, connected, left, server, unseen, seen
    text: str

    def as_json(self) -> dict[str, object]:
        clock = time.strftime("%H:%M:%S", time.localtime(self.time))
        stamp = f"{clock}.{int(self.time % 1 * 1000):03d}"
        return {"time": stamp, "service": self.service, "kind": self.kind, "text": self.text}


def _key(doc: dict) -> tuple[str, object]:
    return doc["service"], doc.get("root")


def _peers(process: dict) -> list[str]:
    return [s["peer"] for s in process["sockets"] if s["kind"] == "connected" and s["peer"]]


def diff(before: list[dict], after: list[dict], now: float) -> list[Event]:
    """What changed from one list of server documents to the next."""
    events: list[Event] = []
    old = {_key(d): d for d in before}
    new = {_key(d): d for d in after}
    old_errors = {d["service"]: d.get("error") for d in before}
    for doc in after:
        service = doc["service"]
        if doc.get("error"):
            if old_errors.get(service) != doc["error"]:
                events.append(Event(now, service, "unseen", f"cannot see: {doc['error']}"))
            continue
        prev = old.get(_key(doc))
        if prev is None:
            if old_errors.get(service):
                events.append(Event(now, service, "seen", "visible again"))
            where = ", ".join(doc.get("listen") or []) or "no listener"
            events.append(
                Event(now, service, "server", f"{doc['model']} server {doc['root']} on {where}")
            )
            continue
        events.extend(_process_events(service, prev, doc, now))
    for key, doc in old.items():
        if key not in new and not doc.get("error"):
            events.append(Event(now, key[0], "server", f"server {doc['root']} went away"))
    return events


def _process_events(service: str, prev: dict, doc: dict, now: float) -> list[Event]:
    events = []
    was = {p["pid"]: p for p in prev["processes"]}
    now_by_pid = {p["pid"]: p for p in doc["processes"]}
    for pid, proc in now_by_pid.items():
        before = was.get(pid)
        if before is None and proc["role"] != "parent":
            served = ", ".join(_peers(proc)) or "no client yet"
            text = f"child {pid} appeared (fork), serving {served}"
            if proc["role"] == "zombie":
                text = f"child {pid} appeared and exited: a zombie"
            events.append(Event(now, service, "appeared", text))
        elif before is not None and proc["role"] == "zombie" and before["role"] != "zombie":
            events.append(
                Event(
                    now, service, "exited", f"child {pid} exited: a zombie until its parent waits"
                )
            )
    for pid, proc in was.items():
        if pid in now_by_pid or proc["role"] == "parent":
            continue
        if proc["role"] == "zombie":
            events.append(Event(now, service, "reaped", f"zombie {pid} reaped by waitpid()"))
        else:
            events.append(Event(now, service, "reaped", f"child {pid} exited and was reaped"))
    if doc.get("model") != "fork":  # a multiplexing server: its clients are its own sockets
        root = doc.get("root")
        old_peers = {p for x in prev["processes"] if x["pid"] == root for p in _peers(x)}
        new_peers = {p for x in doc["processes"] if x["pid"] == root for p in _peers(x)}
        events.extend(
            Event(now, service, "connected", f"client {p} connected")
            for p in sorted(new_peers - old_peers)
        )
        events.extend(
            Event(now, service, "left", f"client {p} left") for p in sorted(old_peers - new_peers)
        )
    return events


class Timeline:
    """The last `limit` events, newest last."""

    def __init__(self, limit: int = 200) -> None:
        self.events: deque[Event] = deque(maxlen=limit)

    def extend(self, events: list[Event]) -> None:
        self.events.extend(events)

    def last(self, count: int) -> list[dict[str, object]]:
        return [e.as_json() for e in list(self.events)[-count:]]
