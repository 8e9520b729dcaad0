"""The scenarios: one per target of the benchmark issue, plus the points of the chart."""

from __future__ import annotations

from dataclasses import dataclass, replace

from bench.servers import MULTIPLEX, PROCESS, REFERENCE
from probe.load import Load


@dataclass(frozen=True)
class Scenario:
    name: str
    load: Load
    title: str
    footprint: bool = False  # sample RSS/PSS of the tree while every client is connected
    zombies: bool = False  # count zombies 0.3 s after the clients left
    models: tuple[str, ...] = ()  # only servers of these models (empty: all)
    references: bool = True  # the reference servers run it too (False: ours and peers only)
    pin: bool = False  # the server (and so each child it forks) on one core: taskset -c

    def applies_to(self, model: str, role: str = "") -> bool:
        if role == REFERENCE and not self.references:
            return False
        return not self.models or model in self.models


DEFAULT: tuple[Scenario, ...] = (
    Scenario(
        "hold-100",
        Load("hold", connections=100, size=64, hold=1.0),
        "100 clients held: memory of the process tree, zombies 0.3 s after they leave",
        footprint=True,
        zombies=True,
    ),
    Scenario(
        "reap-512",
        Load("hold", connections=512, size=64, hold=0.5, serve_timeout=5.0),
        "512 clients close at once, the server pinned to one core: children left 0.3 s later, "
        "time until the last is reaped",
        zombies=True,
        pin=True,
        models=(PROCESS,),
    ),
    Scenario(
        "rate-64B-c32",
        Load("rate", connections=32, size=64, duration=3.0),
        "connection rate: connect, echo 64 B, close; 32 sessions in flight",
    ),
    Scenario(
        "rr-64B-c1",
        Load("rr", connections=1, size=64, duration=1.0),
        "request/response, 1 connection, 64 B",
        references=False,
    ),
    Scenario(
        "rr-64B-c10",
        Load("rr", connections=10, size=64, duration=1.0),
        "request/response, 10 connections, 64 B",
        references=False,
    ),
    Scenario(
        "rr-64B-c100",
        Load("rr", connections=100, size=64, duration=2.0),
        "request/response, 100 connections, 64 B",
    ),
    Scenario(
        "rr-16KiB-c100",
        Load("rr", connections=100, size=16384, duration=2.0),
        "request/response, 100 connections, 16 KiB",
        references=False,
    ),
    Scenario(
        "stream-c10",
        Load("stream", connections=10, size=256 * 1024, duration=1.0),
        "full-duplex stream, 10 connections, 256 KiB in flight each",
        references=False,
    ),
    Scenario(
        "hold-1100",
        Load("hold", connections=1100, size=64, hold=1.0, serve_timeout=2.0, late_timeout=10.0),
        "1,100 clients at once (past FD_SETSIZE): served at once, served later, crashes",
        references=False,  # the minimal servers have no limit: select() one crashes
        footprint=True,
        models=(MULTIPLEX,),
    ),
)

# On request only (--scenarios hold-10000): select() cannot hold these, and the clients past
# its cap and the listen backlog time out, which is the lesson but would fail a default run.
EXTRA: tuple[Scenario, ...] = (
    Scenario(
        "hold-10000",
        Load("hold", connections=10000, size=64, hold=1.0, serve_timeout=5.0, late_timeout=60.0),
        "10,000 clients at once: where select() stops near 1,024 and epoll does not",
        footprint=True,
        models=(MULTIPLEX,),
    ),
)

# Short windows, one repeat: proves the whole pipeline in seconds, figures are rough.
_QUICK_TIMES = {"duration": 0.4, "hold": 0.1, "serve_timeout": 1.0, "late_timeout": 5.0}
QUICK: tuple[Scenario, ...] = tuple(
    # A pinned server forks its 512 children on one core: they keep their time to be served.
    replace(
        s,
        load=replace(s.load, duration=0.4, hold=0.1) if s.pin else replace(s.load, **_QUICK_TIMES),
    )
    for s in DEFAULT
    if s.name not in ("rr-64B-c1", "rr-64B-c10")
)


def pick(names: list[str] | None, quick: bool) -> list[Scenario]:
    table = QUICK if quick else DEFAULT
    if not names:
        return list(table)
    known = {s.name: s for s in (*table, *EXTRA)}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"unknown scenario(s) {unknown}; known: {', '.join(known)}")
    return [known[n] for n in names]
