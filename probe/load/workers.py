"""The parent of a load: worker processes, one share of the connections each, one tally.

Each worker sets up its share, says "ready" (the moment to sample the server), waits for "go"
and runs its mode; the parent sums what they counted. Workers are forked, so they start at
once and share nothing but a pipe to the parent.
"""

from __future__ import annotations

import multiprocessing
import os
import resource
import time
from collections.abc import Callable
from dataclasses import asdict
from multiprocessing.connection import Connection

from probe.addresses import check_host
from probe.limits import raise_open_files
from probe.load.modes import RUNNERS, Job
from probe.load.plan import Load, LoadError, Tally


def worker(pipe: Connection, job: Job) -> None:
    """One worker process: set up, say 'ready' with what it saw so far, wait for 'go', run."""
    tally = Tally()
    cpu0 = _cpu()

    def ready() -> float:
        pipe.send(("ready", asdict(tally)))
        return pipe.recv()

    try:
        RUNNERS[job.load.mode](job, tally, ready)
    except Exception as error:  # report, do not die silently: the parent waits for "done"
        tally.error(f"worker {job.index}: {type(error).__name__}: {error}")
    tally.cpu_seconds = _cpu() - cpu0
    pipe.send(("done", asdict(tally)))
    pipe.close()


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def split(total: int, parts: int) -> list[int]:
    """Share `total` connections among at most `parts` workers, none of them idle."""
    parts = min(parts, total)
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def run_load(
    host: str,
    port: int,
    load: Load,
    on_ready: Callable[[Tally], None] | None = None,
) -> Tally:
    """Run one load against host:port with worker processes; returns the summed tally.

    `on_ready` is called once every worker is connected (hold: every client served or
    waiting), before the measured part starts: the moment to sample the server.
    """
    load = load.checked()
    check_host(host)
    raise_open_files()  # a worker may hold a thousand sockets
    workers = load.workers or os.cpu_count() or 1
    shares = split(load.connections, workers)
    load = Load(**{**asdict(load), "workers": len(shares)})
    context = multiprocessing.get_context("fork")
    pipes: list[Connection] = []
    processes = []
    for index, count in enumerate(shares):
        parent_end, child_end = context.Pipe()
        process = context.Process(
            target=worker, args=(child_end, Job(host, port, load, index, count)), daemon=True
        )
        process.start()
        child_end.close()
        pipes.append(parent_end)
        processes.append(process)
    try:
        setup = load.serve_timeout + 15.0
        readies = [_receive(p, setup) for p in pipes]
        early = Tally()
        for _kind, data in readies:
            early.merge(Tally(**data))
        if on_ready is not None:
            on_ready(early)
        if load.mode == "hold":
            time.sleep(load.hold)
        start_at = time.monotonic() + 0.05
        for p, (kind, _) in zip(pipes, readies, strict=True):
            if kind == "ready":
                p.send(start_at)
        total = Tally()
        for p, (kind, data) in zip(pipes, readies, strict=True):
            if kind == "ready":
                kind, data = _receive(p, load.duration + load.late_timeout + 20.0)
            total.merge(Tally(**data))
        return total
    finally:
        for process in processes:
            process.join(5.0)
            if process.is_alive():
                process.kill()
                process.join()
        for p in pipes:
            p.close()


def _receive(pipe: Connection, timeout: float) -> tuple[str, dict]:
    if not pipe.poll(timeout):
        raise LoadError(f"a load worker gave no answer within {timeout:.0f} s")
    try:
        return pipe.recv()
    except EOFError:
        raise LoadError("a load worker died") from None
