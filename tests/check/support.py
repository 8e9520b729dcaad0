"""Running `python3 -m check` as a user would, and proving it left nothing behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from probe import procfs

REPO_ROOT = Path(__file__).resolve().parents[2]
MARK = "ECHOLAB_CHECK_MARK"  # in the environment of the checker and all it starts


@dataclass
class CheckRun:
    returncode: int
    stdout: str
    stderr: str
    seconds: float
    mark: str

    def report(self, path: Path) -> dict[str, Any]:
        return json.loads(path.read_text())


def server_command(model: str, *switches: str) -> str:
    return f"{sys.executable} -m server {model} --host 127.0.0.1 --port {{port}} " + " ".join(
        switches
    )


def marked(mark: str) -> list[int]:
    """Processes whose environment carries `mark` (the checker's, its server's)."""
    needle = f"{MARK}={mark}".encode()
    found = []
    for pid in procfs.all_pids():
        try:
            if needle in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0"):
                found.append(pid)
        except OSError:
            continue
    return found


def run_check(*args: str, timeout: float = 90.0, interrupt_after: float | None = None) -> CheckRun:
    """Run the checker to completion (bounded); assert it left no process behind."""
    mark = uuid.uuid4().hex
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1", **{MARK: mark})
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "check", *args],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        process_group=0,
    )
    try:
        if interrupt_after is not None:
            time.sleep(interrupt_after)
            proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        raise AssertionError(
            f"the checker ran past {timeout} s:\n{out.decode()}\n{err.decode()}"
        ) from None
    seconds = time.monotonic() - started
    deadline = time.monotonic() + 3.0
    while (left := marked(mark)) and time.monotonic() < deadline:
        time.sleep(0.05)  # orphans are reaped by init a moment after
    assert not left, f"left running after the checker: {left}"
    return CheckRun(proc.returncode, out.decode(), err.decode(), seconds, mark)


def verdicts(report: dict[str, Any]) -> dict[str, bool | None]:
    return {c["id"]: c["passed"] for c in report["checks"]}
