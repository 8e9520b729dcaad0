"""The load generator: worker processes, each driving many non-blocking connections on epoll.

    rr      N connections; each sends M bytes, waits for the whole echo, sends the next, T s
    rate    C sessions in flight: connect, echo M bytes, close, start the next one, T s
    hold    open N connections, prove each is served (one echo), hold H s, prove it again
    stream  N connections send and receive at once (full duplex), M bytes in flight each, T s

Every echoed byte is compared with what was sent; errors and mismatches are counted, and the
first few are described. The workers share the cores with the server under test, so each does
as little as a client can per event: one epoll, preallocated buffers, one memcmp per echo.

Only 127.0.0.1 (the loopback range) or a compose service name may be a target, and every run
is bounded in connections and in time.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import multiprocessing
import os
import resource
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from multiprocessing.connection import Connection

from bench.load import MODES, Load, LoadError, Tally
from bench.modes import RUNNERS, Job


def check_host(host: str) -> None:
    """Allow the loopback range, 'localhost', or a single-label name (a compose service)."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        if host == "localhost":
            return
        if not host or "." in host or ":" in host:
            raise ValueError(f"{host!r}: only 127.0.0.1 or a compose service name") from None
        for info in socket.getaddrinfo(host, None, type=socket.SOCK_STREAM):
            resolved = ipaddress.ip_address(info[4][0])
            if not (resolved.is_loopback or resolved.is_private):
                raise ValueError(
                    f"{host!r} resolves to {resolved}: not a compose network"
                ) from None
        return
    if not address.is_loopback:
        raise ValueError(f"{host}: only the loopback range may be a target")


def raise_nofile_limit() -> int:
    """Soft RLIMIT_NOFILE up to the hard limit: a worker may hold a thousand sockets."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


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


# ---------------------------------------------------------------- the parent


def split(total: int, parts: int) -> list[int]:
    """Share `total` connections among at most `parts` workers, none of them idle."""
    parts = min(parts, total)
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def run(
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
    raise_nofile_limit()
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


# ---------------------------------------------------------------- a command for ad-hoc runs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.loadgen", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("mode", choices=MODES)
    parser.add_argument("--target", required=True, metavar="HOST:PORT")
    parser.add_argument("-n", "--connections", type=int, default=100)
    parser.add_argument("-m", "--size", type=int, default=64)
    parser.add_argument("-t", "--duration", type=float, default=2.0)
    parser.add_argument("--hold", type=float, default=1.0)
    parser.add_argument("-w", "--workers", type=int, default=0)
    args = parser.parse_args(argv)
    host, _, port = args.target.rpartition(":")
    load = Load(
        args.mode, args.connections, args.size, args.duration, args.hold, workers=args.workers
    )
    tally = run(host, int(port), load)
    print(json.dumps(asdict(tally)))
    return 1 if tally.mismatches or tally.errors else 0


if __name__ == "__main__":
    sys.exit(main())
