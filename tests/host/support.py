"""Plumbing for the host tier: server and client subprocesses, logs, bounded polling.

The tests read as statements about the kernel; the how (pipes, threads, deadlines) lives here.
Every wait is bounded, every socket talks to 127.0.0.1 only.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from probe import procfs
from probe.sockets import HOST

REPO_ROOT = Path(__file__).resolve().parents[2]

LOG_LINE = re.compile(r"^\d\d:\d\d:\d\d\.\d{3} (?P<role>[\w-]+)\[(?P<pid>\d+)\] (?P<message>.*)$")
LISTENING = re.compile(
    r"listening on (?P<host>\S+):(?P<port>\d+) "
    r"\((?P<model>\w+) server, max (?P<max>\d+) (?:children|clients)\)"
)

T = TypeVar("T")


def exiting_window(pid: int, timeout: float = 5.0) -> Iterator[procfs.Stat]:
    """The process's stat each time it is seen between exit() and zombie (PF_EXITING set, state
    not yet Z), from now until it is a zombie or gone, or `timeout` passes. Poll without pause:
    the window lasts milliseconds, tens of them for a process that has touched a lot of memory."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        st = procfs.stat(pid)
        if st is None or st.state in ("Z", "X"):
            return
        if st.exiting:
            yield st


def wait_until(
    predicate: Callable[[], T], timeout: float, interval: float = 0.02, what: str = "condition"
) -> T:
    """Poll `predicate` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(
                f"timed out after {timeout} s waiting for {what} (last: {value!r})"
            )
        time.sleep(interval)


# ---------------------------------------------------------------- log capture


class LogCapture:
    """Reads a pipe line by line in a daemon thread; lets tests wait for a line to appear."""

    def __init__(self, stream: Any, name: str) -> None:
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._pump, args=(stream,), name=name, daemon=True)
        self._thread.start()

    def _pump(self, stream: Any) -> None:
        with contextlib.suppress(ValueError, OSError):
            for raw in iter(stream.readline, b""):
                with self._cond:
                    self.lines.append(raw.decode(errors="replace").rstrip("\n"))
                    self._cond.notify_all()
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def snapshot(self) -> list[str]:
        with self._cond:
            return list(self.lines)

    def wait_for(
        self, pattern: str | re.Pattern[str], timeout: float, start: int = 0
    ) -> re.Match[str]:
        """The first match of `pattern` in lines[start:], waiting up to `timeout` seconds."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._cond:
            index = start
            while True:
                while index < len(self.lines):
                    m = regex.search(self.lines[index])
                    if m:
                        return m
                    index += 1
                left = deadline - time.monotonic()
                if left <= 0 or (self._closed and index >= len(self.lines)):
                    tail = "\n".join(self.lines[-30:])
                    raise AssertionError(
                        f"no log line matching {regex.pattern!r} within {timeout} s; log tail:\n"
                        f"{tail}"
                    )
                self._cond.wait(left)


# ---------------------------------------------------------------- the server under test


@dataclass
class ServerProcess:
    model: str
    proc: subprocess.Popen[bytes]
    log: LogCapture
    stdout: LogCapture
    port: int = 0
    limit: int = 0  # max children / max clients, as the listening line states it
    scratch: Path | None = None  # a copy of server/ to remove at clean-up
    _seen: dict[int, int] = field(default_factory=dict)  # pid -> starttime, for clean-up

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log_lines(self) -> list[str]:
        return self.log.snapshot()

    def mark(self) -> int:
        """A position in the log: pass it as `start` to only look at what comes after."""
        return len(self.log.lines)

    def wait_for_log(
        self, pattern: str | re.Pattern[str], timeout: float = 5.0, start: int = 0
    ) -> re.Match[str]:
        return self.log.wait_for(pattern, timeout, start)

    def messages(self, role: str | None = None) -> list[tuple[str, int, str]]:
        """(role, pid, message) for each well-formed log line."""
        out = []
        for line in self.log_lines():
            m = LOG_LINE.match(line)
            if m and (role is None or m["role"] == role):
                out.append((m["role"], int(m["pid"]), m["message"]))
        return out

    def children(self) -> list[int]:
        kids = procfs.children_of(self.pid)
        for kid in kids:
            st = procfs.stat(kid)
            if st is not None:
                self._seen.setdefault(kid, st.starttime)
        return kids

    def alive(self) -> bool:
        return self.proc.poll() is None

    def wait_children(self, count: int, timeout: float = 10.0) -> list[int]:
        """Poll until the server has exactly `count` children; return them."""
        kids: list[int] = []

        def settled() -> bool:
            nonlocal kids
            kids = self.children()
            return len(kids) == count

        wait_until(settled, timeout, what=f"{count} children of {self.model} server")
        return kids

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 5.0) -> int | None:
        """Signal the server and wait for it; SIGKILL if it does not go. Returns its status."""
        if self.proc.poll() is None:
            self.children()  # remember who to clean up if the server leaves them behind
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout)
        return self.proc.returncode

    def cleanup(self) -> None:
        """Leave nothing behind: the server, its children, anything in its process group."""
        self.stop()
        for pid, starttime in self._seen.items():
            if procfs.is_alive(pid, starttime):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)  # process_group=0 made the server its leader
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        if self.scratch is not None:
            shutil.rmtree(self.scratch, ignore_errors=True)


def runnable_as(uid: int, gid: int) -> tuple[str, Path]:
    """A Python >= 3.11 that `uid` may run, and a directory where it can import `server`.

    This interpreter may live where only root can reach it (pyenv under /root), and so may the
    repository (a clone under /root): then a system python3, and a world-readable copy of
    server/ in a fresh temporary directory (the caller removes it).
    """
    candidates = [sys.executable, shutil.which("python3"), "/usr/bin/python3"]
    candidates.append("/usr/local/bin/python3")
    check = "import sys, server; sys.exit(sys.version_info < (3, 11))"

    def works(python: str, cwd: Path) -> bool:
        with contextlib.suppress(OSError, subprocess.TimeoutExpired):
            done = subprocess.run(
                [python, "-c", check],
                cwd=cwd,
                user=uid,
                group=gid,
                extra_groups=[],
                capture_output=True,
                timeout=10,
            )
            return done.returncode == 0
        return False

    pythons = list(dict.fromkeys(c for c in candidates if c))
    for python in pythons:
        if works(python, REPO_ROOT):
            return python, REPO_ROOT
    copy = Path(tempfile.mkdtemp(prefix="echolab-server-"))
    shutil.copytree(
        REPO_ROOT / "server", copy / "server", ignore=shutil.ignore_patterns("__pycache__")
    )
    for path in [copy, *copy.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    for python in pythons:
        if works(python, copy):
            return python, copy
    shutil.rmtree(copy, ignore_errors=True)
    raise AssertionError(f"uid {uid} can run no Python >= 3.11 with server/ among {pythons}")


# Sets resource limits on itself, then becomes the server (same pid): lowering one's own limits
# needs no privilege, while prlimit() on another uid's process needs CAP_SYS_RESOURCE.
_SET_LIMITS_THEN_EXEC = """\
import json, os, resource, sys
for name, (soft, hard) in json.loads(sys.argv[1]).items():
    resource.setrlimit(getattr(resource, name), (soft, hard))
os.execv(sys.argv[2], sys.argv[2:])
"""


def start_server(
    model: str,
    *args: str,
    user: int | None = None,
    group: int | None = None,
    rlimits: dict[str, tuple[int, int]] | None = None,
    startup_timeout: float = 15.0,
    code: str | None = None,
) -> ServerProcess:
    """Start `python -m server MODEL --host 127.0.0.1 --port 0 ARGS` and wait until it listens.

    With `user` (and `group`), the server runs as that uid, with no supplementary groups.
    `rlimits` maps resource names to (soft, hard), e.g. {"RLIMIT_NPROC": (3, 3)}.
    `code` runs that Python source (`python -c`) in place of `-m server`, with the same
    arguments: a test that uses the server as a library, or patches it first.
    """
    python, cwd = sys.executable, REPO_ROOT
    extra: dict[str, Any] = {}
    if user is not None:
        group = group if group is not None else os.getgid()
        python, cwd = runnable_as(user, group)
        extra = {"user": user, "group": group, "extra_groups": []}
    entry = ["-m", "server"] if code is None else ["-c", code]
    argv = [python, *entry, model, "--host", HOST, "--port", "0", *args]
    if rlimits:
        argv = [python, "-c", _SET_LIMITS_THEN_EXEC, json.dumps(rlimits), *argv]
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    proc = subprocess.Popen(
        argv,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        process_group=0,
        **extra,
    )
    server = ServerProcess(
        model,
        proc,
        LogCapture(proc.stderr, f"{model}-server-log"),
        LogCapture(proc.stdout, f"{model}-server-stdout"),
        scratch=cwd if cwd != REPO_ROOT else None,
    )
    try:
        m = server.wait_for_log(LISTENING, timeout=startup_timeout)
    except AssertionError:
        server.cleanup()
        raise
    server.port = int(m["port"])
    server.limit = int(m["max"])
    return server


# ---------------------------------------------------------------- the client under test


@dataclass
class ClientResult:
    argv: list[str]
    pid: int  # also its process group: the client's forked writers are in it
    returncode: int
    stdout: str
    stderr: str

    def report(self) -> dict[str, Any]:
        """The --json report: the last line of stdout that parses as a JSON object."""
        for line in reversed(self.stdout.strip().splitlines()):
            with contextlib.suppress(ValueError):
                value = json.loads(line)
                if isinstance(value, dict):
                    return value
        with contextlib.suppress(ValueError):
            value = json.loads(self.stdout)
            if isinstance(value, dict):
                return value
        raise AssertionError(f"no JSON report in client stdout:\n{self.stdout}\n{self.stderr}")

    def __str__(self) -> str:
        return (
            f"client {' '.join(self.argv[3:])} exited {self.returncode}\n"
            f"stdout:\n{self.stdout[-3000:]}\nstderr:\n{self.stderr[-3000:]}"
        )


def run_client(
    port: int, *args: str, timeout: float = 60.0, stdin: bytes | None = None
) -> ClientResult:
    """Run `python -m client --server 127.0.0.1:PORT ARGS` to completion (bounded)."""
    argv = [sys.executable, "-m", "client", "--server", f"{HOST}:{port}", *args]
    proc = subprocess.Popen(
        argv,
        cwd=REPO_ROOT,
        stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        process_group=0,
    )
    try:
        out, err = proc.communicate(stdin, timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # the client's forked writers too
        out, err = proc.communicate()
        raise AssertionError(
            f"client {' '.join(argv[3:])} still running after {timeout} s\n"
            f"stdout:\n{out.decode(errors='replace')}\nstderr:\n{err.decode(errors='replace')}"
        ) from None
    return ClientResult(
        argv, proc.pid, proc.returncode, out.decode(errors="replace"), err.decode(errors="replace")
    )


# ---------------------------------------------------------------- payloads


def payload_for(index: int, size: int) -> bytes:
    """A payload no other connection sends: a tagged header, then seeded random bytes."""
    tag = f"<connection {index}>".encode()
    body = random.Random(index).randbytes(max(0, size - len(tag)))
    return (tag + body)[:size]
