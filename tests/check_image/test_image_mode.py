"""`python3 -m check --image`: this project's image and the book's C server, confined.

Each run goes through the real CLI, as a grader would type it, under a run name of its own
(ECHOLAB_CHECK_RUN), and must leave no container or network with that name's label.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.docker.support import REPO_ROOT

pytestmark = pytest.mark.docker

RUN_TIMEOUT_S = 120.0  # a full run is at most 60 s on a correct server; room for a busy host


class Run:
    def __init__(self, status: int, stdout: str, stderr: str, report: dict[str, Any] | None):
        self.status, self.stdout, self.stderr, self.report = status, stdout, stderr, report

    def verdicts(self) -> dict[str, bool | None]:
        assert self.report is not None, self.stderr
        return {c["id"]: c["passed"] for c in self.report["checks"]}

    def __repr__(self) -> str:
        return f"exit {self.status}\n{self.stdout}\n{self.stderr}"


def run_name() -> str:
    return f"test{secrets.token_hex(4)}"


@pytest.fixture
def check_image(
    lab_image: str, left_behind: Callable[[str], list[str]], tmp_path: Path
) -> Callable[..., Run]:
    """`python3 -m check --image IMAGE --command CMD ...` with the lab image as the checker;
    after every run, nothing with its run's label is left on the engine."""

    def run(image: str, *args: str, timeout: float = RUN_TIMEOUT_S) -> Run:
        name = run_name()
        out = tmp_path / f"{name}.json"
        argv = [sys.executable, "-m", "check", "--image", image, "--checker-image", lab_image]
        done = subprocess.run(
            [*argv, *args, "--json", str(out)],
            cwd=REPO_ROOT,
            env={**os.environ, "ECHOLAB_CHECK_RUN": name},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        print(done.stdout, done.stderr)  # the report card, in pytest's output (-rA)
        assert left_behind(name) == []
        report = json.loads(out.read_text()) if out.exists() else None
        return Run(done.returncode, done.stdout, done.stderr, report)

    return run


def test_our_fork_server_passes_every_fork_check_in_its_image(
    lab_image: str, check_image: Callable[..., Run]
) -> None:
    run = check_image(lab_image, "--command", "python3 -m server fork --port {port}")
    assert run.status == 0, run
    assert run.report is not None and run.report["model"] == "fork"
    verdicts = run.verdicts()
    assert verdicts["reaping-burst"] is True and verdicts["clean-stop"] is True, run
    assert all(v is True for v in verdicts.values()), run


def test_the_books_fork_server_fails_the_single_waitpid_lesson(
    examples_image: str, check_image: Callable[..., Run]
) -> None:
    run = check_image(examples_image, "--command", "echo_mpserv {port}")
    assert run.status == 1, run
    assert run.report is not None and run.report["model"] == "fork", run
    verdicts = run.verdicts()
    assert verdicts["echo-exact"] is True, run  # it echoes: the flaw is elsewhere
    assert verdicts["listener-closed-in-child"] is True, run  # it closes what the notes say
    assert verdicts["reaping-burst"] is False, run  # one waitpid per SIGCHLD
    burst = next(c for c in run.report["checks"] if c["id"] == "reaping-burst")
    assert "waitpid" in burst["hint"], burst


def test_the_books_select_server_is_named_killed_by_sigpipe(
    examples_image: str, check_image: Callable[..., Run]
) -> None:
    # Its status is the engine's to tell: the observer beside it asks for it when it dies.
    run = check_image(
        examples_image, "--command", "echo_selectserv {port}", "--model", "select",
        "--only", "echo-exact,abrupt-peers,no-stall",
    )  # fmt: skip
    assert run.status == 1, run
    assert run.verdicts() == {"echo-exact": True, "abrupt-peers": False, "no-stall": None}, run
    assert run.report is not None
    abrupt = run.report["checks"][1]
    assert "killed by SIGPIPE" in abrupt["summary"] and "SIG_IGN" in abrupt["hint"], abrupt


def test_a_missing_image_cannot_be_checked(check_image: Callable[..., Run]) -> None:
    run = check_image(f"echolab-no-such-image:{run_name()}")
    assert run.status == 2, run
    assert "no such image" in run.stderr and run.stderr.count("\n") == 1, run
    assert run.report is None


def test_a_server_that_exits_at_once_cannot_be_checked(
    examples_image: str, check_image: Callable[..., Run]
) -> None:
    # No port argument: the book's server prints its usage line and exits 1.
    run = check_image(examples_image, "--command", "echo_mpserv", timeout=30)
    assert run.status == 2, run
    assert "exited at once, before listening (exit 1)" in run.stderr and "Usage" in run.stderr, run


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_an_interrupted_run_leaves_nothing(
    signum: int,
    lab_image: str,
    examples_image: str,
    left_behind: Callable[[str], list[str]],
) -> None:
    name = run_name()
    # The server listens on 9190, the checker waits for 9191: the run hangs until interrupted.
    command = [sys.executable, "-m", "check", "--image", examples_image]
    command += ["--checker-image", lab_image, "--command", "echo_selectserv 9190"]
    command += ["--port", "9191", "--listen-timeout", "60"]
    proc = subprocess.Popen(
        command,
        cwd=REPO_ROOT,
        env={**os.environ, "ECHOLAB_CHECK_RUN": name},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        restore_signals=True,
    )
    try:
        deadline = time.monotonic() + 30
        while len(left_behind(name)) < 3:  # the network and both containers are up
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.2)
        proc.send_signal(signum)
        _out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert "interrupted" in err
    assert left_behind(name) == []
