"""The checker's side of `--image`: runs inside the checker container, beside the server.

    python3 -m check.observer --host NAME --port P [--model M] [--ids A,B] [--quick] ...

`check.container` starts this container first, then the server's container in this one's
pid namespace (`pid_mode=container:<this>`) and on the same network. So this process is
PID 1 of the namespace and sees the server's processes and descriptors in its own /proc
(no host /proc needed: Docker Desktop works too), and the server's orphans come to it.

Why this way round: a pid namespace dies with its PID 1, and the engine kills whatever is
left in a container once its main process exits. Were the server PID 1, its exit would kill
this process mid-check; as it is, a child that outlives its parent is reparented here, and
is counted as left behind even when the engine kills it an instant later.

Talks to `check.container` in JSON lines: events on stdout (one object a line, flushed), and
on stdin the answers to `wait_exit` (the server's exit status, which only the engine knows).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import select
import sys
import threading
import time
import traceback
from typing import Any

from check import registry
from check.registry import Check
from check.results import CheckResult, Report
from check.run import run_checks
from check.target import LISTEN_TIMEOUT_S, OPEN_FILES_WANTED, AttachedTarget, CannotCheck
from probe import procfs
from probe.limits import raise_open_files
from probe.snapshot import ServerSnapshot

REPLY_GRACE_S = 5.0  # how much longer than the wait itself the engine's answer may take


def emit(event: str, **fields: Any) -> None:
    """One event, one line, flushed: the host side reads them as they come."""
    sys.stdout.write(json.dumps({"event": event, **fields}) + "\n")
    sys.stdout.flush()


class EventReporter:
    """The Reporter of check.run, as events for the host side's own reporter."""

    def note(self, text: str) -> None:
        emit("note", text=text)

    def check_started(self, check: Check, index: int, total: int) -> None:
        emit("check_started", id=check.id, index=index, total=total)

    def check_done(self, result: CheckResult, index: int, total: int) -> None:
        emit("check_done", result=dataclasses.asdict(result), index=index, total=total)

    def finish(self, report: Report) -> None:
        fields = dataclasses.asdict(report)
        emit("report", report=fields)


class Reaper:
    """PID 1's duty: reap the orphans the server leaves, and remember when each went."""

    def __init__(self) -> None:
        self.reaped: list[tuple[int, float]] = []  # (pid, monotonic time)
        self._lock = threading.Lock()
        threading.Thread(target=self._run, name="reaper", daemon=True).start()

    def _run(self) -> None:
        while True:
            try:
                pid, _status = os.waitpid(-1, 0)
            except ChildProcessError:  # none yet: the orphans come when a parent exits
                time.sleep(0.02)
                continue
            with self._lock:
                self.reaped.append((pid, time.monotonic()))

    def since(self, when: float) -> set[int]:
        with self._lock:
            return {pid for pid, at in self.reaped if at >= when}


class ObservedTarget(AttachedTarget):
    """AttachedTarget seen from PID 1: a process of the server that outlived its parent was
    reparented here; after SIGTERM it counts as left behind, whoever kills it later."""

    def __init__(self, reaper: Reaper, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._reaper = reaper
        self._seen: set[int] = set()
        self._terminated_at: float | None = None

    def start(self) -> None:
        super().start()
        emit("listening", root_pid=self.root_pid)

    def snapshot(self) -> ServerSnapshot:
        snap = super().snapshot()
        self._seen.update(p.pid for p in snap.processes)
        return snap

    def terminate(self, timeout: float) -> int | None:
        self._terminated_at = time.monotonic()
        return super().terminate(timeout)

    def leftovers(self) -> list[int]:
        left = set(super().leftovers())
        if self._terminated_at is not None:
            orphans = self._reaper.since(self._terminated_at) & self._seen
            left |= orphans - {self.root_pid}
        return sorted(left)


def wait_exit(timeout: float) -> int | None:
    """Ask the host side for the server's exit status (it waits on the engine), up to
    `timeout`; None when the server did not exit in time or no answer came."""
    emit("wait_exit", timeout=timeout)
    ready, _, _ = select.select([sys.stdin], [], [], timeout + REPLY_GRACE_S)
    if not ready:
        return None
    line = sys.stdin.readline()
    with contextlib.suppress(ValueError, TypeError):
        status = json.loads(line)["status"]
        return None if status is None else int(status)
    return None


def server_root(timeout: float) -> int:
    """The server container's first process: in this namespace its parent is outside it
    (ppid 0), and it is not this PID 1."""
    deadline = time.monotonic() + timeout
    while True:
        for pid in procfs.all_pids():
            st = procfs.stat(pid)
            if st is not None and st.ppid == 0 and pid != os.getpid():
                return pid
        if time.monotonic() >= deadline:
            raise CannotCheck(f"the server's container showed no process within {timeout:g} s")
        time.sleep(0.05)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python3 -m check.observer")
    parser.add_argument("--host", required=True, help="the server container's name")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--model", default="auto", choices=("fork", "select", "auto"))
    parser.add_argument("--ids", default="", help="the checks to run, comma-separated")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--listen-timeout", type=float, default=LISTEN_TIMEOUT_S)
    parser.add_argument("--description", default=None)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    ids = [i for i in args.ids.split(",") if i] or [c.id for c in registry.CHECKS]
    raise_open_files(OPEN_FILES_WANTED)  # room for 1,100 clients past FD_SETSIZE
    reaper = Reaper()
    try:
        started = time.monotonic()
        root = server_root(args.listen_timeout)
        target = ObservedTarget(
            reaper,
            host=args.host,
            port=args.port,
            root_pid=root,
            wait_exit=wait_exit,
            description=args.description,
            listen_timeout=round(max(0.5, args.listen_timeout - (time.monotonic() - started)), 1),
        )
        run_checks(target, ids, args.model, EventReporter(), args.quick)
    except CannotCheck as error:
        emit("cannot", reason=str(error))
        return 2
    except Exception as error:
        emit("error", text=f"{type(error).__name__}: {error}", trace=traceback.format_exc())
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
