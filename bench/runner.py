"""One scenario against one server: the load, the /proc readings around it, one record."""

from __future__ import annotations

import os
import time
from dataclasses import asdict
from typing import Any

from bench.scenarios import Scenario
from bench.servers import Server
from probe import procfs
from probe.footprint import Footprint, footprint, machine_busy_seconds, tree_cpu_seconds, zombies
from probe.load import Load, LoadError, Tally, run_load

ZOMBIE_DELAY = 0.3  # the moment: 0.3 s after the clients left
REAP_WAIT = 3.0  # how long a pinned run waits for the last child to be reaped
# Log lines worth showing beside a scenario: why a client waited, or why a server died.
NOTEWORTHY = ("limit", "wait", "refused", "beyond", "Error", "Traceback", "out of range")


def run_scenario(server: Server, scenario: Scenario, workers: int) -> dict[str, Any]:
    load = Load(**{**asdict(scenario.load), "workers": workers})
    pid = server.pid
    offset = server.log_size()
    record: dict[str, Any] = {
        "kind": "run",
        "server": server.name,
        "model": server.model,
        "ours": server.ours,
        "role": server.role,
        "scenario": scenario.name,
        "mode": load.mode,
        "connections": load.connections,
        "size": load.size,
        "duration": load.duration,
    }
    idle = footprint(pid) if pid and scenario.footprint else None
    held: dict[str, Footprint] = {}

    def on_ready(_early: Tally) -> None:
        if pid and scenario.footprint:
            held["footprint"] = footprint(pid)

    cores = os.sched_getaffinity(pid) if pid and scenario.pin else None
    if pid and cores:
        # One core for the server and every child it forks (they inherit the mask): the
        # children's exits and the parent's reaping queue up behind each other.
        os.sched_setaffinity(pid, {max(cores)})
        record["pinned_to_core"] = max(cores)
    cpu0 = tree_cpu_seconds(pid) if pid else 0.0
    busy0 = machine_busy_seconds()
    started = time.monotonic()
    try:
        tally = run_load(server.host, server.port, load, on_ready)
    except LoadError as error:
        tally = Tally()
        tally.error(str(error))
    if pid and scenario.pin:
        record.update(_reaping(pid, tally.closed_at))
    elif pid and scenario.zombies:
        time.sleep(max(0.0, tally.closed_at + ZOMBIE_DELAY - time.monotonic()))
        record["zombies"] = zombies(pid)
        record["zombies_after_s"] = round(time.monotonic() - tally.closed_at, 3)
    if pid and cores:
        os.sched_setaffinity(pid, cores)  # the next scenarios run unpinned
    time.sleep(0.1)  # let the last children exit, so their CPU time is in the reading
    record["server_cpu_s"] = round(tree_cpu_seconds(pid) - cpu0, 3) if pid else None
    record["wall_s"] = round(time.monotonic() - started, 3)
    # The cores are shared: CPU that neither the server nor the load generator used went to
    # other work on the machine (and the bench's own parent, a few ms).
    others = machine_busy_seconds() - busy0 - tally.cpu_seconds
    # Clamped at 0: /proc counts in 10 ms ticks, so a quiet machine reads a little below it.
    record["others_cpu_s"] = round(max(0.0, others - (record["server_cpu_s"] or 0.0)), 2)
    record.update(_metrics(load, tally))
    if (fp := held.get("footprint")) and idle:
        record.update(_footprint(fp, idle, load.connections))
    record["crashed"] = not server.alive()
    if record["crashed"] and hasattr(server, "exit_code"):
        record["exit_code"] = server.exit_code()
    log = server.log_since(offset)
    notes = [ln for ln in (log or "").splitlines() if any(w in ln for w in NOTEWORTHY)]
    record["log"] = notes[:3] if log is not None else None  # None: not readable from here
    return record


def _reaping(pid: int, closed_at: float) -> dict[str, Any]:
    """Children left (running or zombie) 0.3 s after the clients closed, and when the last went.

    /proc is scanned every 10 ms from the moment the load generator returns.
    """
    out: dict[str, Any] = {"all_reaped_s": None}
    while (now := time.monotonic()) < closed_at + REAP_WAIT:
        children = procfs.process_tree(pid)[1:]
        if now >= closed_at + ZOMBIE_DELAY and "children_left" not in out:
            out["children_left"] = len(children)
            out["zombies"] = sum(1 for c in children if c.state == "Z")
            out["zombies_after_s"] = round(now - closed_at, 3)
        if not children:
            out["all_reaped_s"] = round(now - closed_at, 3)
            break
        time.sleep(0.01)
    out.setdefault("children_left", 0)
    out.setdefault("zombies", 0)
    return out


def _metrics(load: Load, tally: Tally) -> dict[str, Any]:
    out: dict[str, Any] = {
        "errors": tally.errors,
        "mismatches": tally.mismatches,
        "connected": tally.connected,
        "loadgen_cpu_s": round(tally.cpu_seconds, 3),
        "samples": tally.samples,
    }
    if load.mode == "rr":
        out["requests_per_s"] = round(tally.ops / load.duration, 1)
    elif load.mode == "rate":
        out["sessions_per_s"] = round(tally.ops / load.duration, 1)
    elif load.mode == "stream":
        out["mb_per_s"] = round(tally.ops / load.duration / 1e6, 2)
    else:
        out.update(
            served_at_once=tally.served_at_once,
            proven_again=tally.proven_again,
            served_later=tally.served_later,
            never_served=tally.never_served,
            # Connected but lost before an echo: reset, closed, or the server died.
            failed=tally.connected - tally.served_at_once - tally.served_later - tally.never_served,
        )
    out["ops"] = tally.ops
    return out


def _footprint(held: Footprint, idle: Footprint, clients: int) -> dict[str, Any]:
    return {
        "processes": held.processes,
        "threads": held.threads,
        "rss_mb": round(held.tree_rss_kib / 1024, 1),
        "pss_mb": round(held.pss_kib / 1024, 1),
        # The measure: the whole tree's PSS over the clients it serves.
        "pss_per_client_kb": round(held.pss_kib / clients),
        # What each client added to the idle server (private pages mostly).
        "added_pss_per_client_kb": round((held.pss_kib - idle.pss_kib) / clients),
        "idle_pss_mb": round(idle.pss_kib / 1024, 1),
    }
