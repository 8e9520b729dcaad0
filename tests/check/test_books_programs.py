"""The book's C servers (examples/), built here and checked on the host: each fails the lesson
its flaw is about. The --image tier checks them confined; this tier checks them with --command."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.check.support import REPO_ROOT, run_check, verdicts

EXAMPLES = REPO_ROOT / "examples"


@pytest.fixture(scope="module")
def books_programs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """echo_mpserv and echo_selectserv compiled from examples/; no compiler is a failure."""
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        pytest.fail(
            "no C compiler (cc or gcc) to build examples/: install gcc, or deselect "
            "tests/check/test_books_programs.py",
            pytrace=False,
        )
    out = tmp_path_factory.mktemp("books-programs")
    for name in ("echo_mpserv", "echo_selectserv"):
        subprocess.run(
            [compiler, "-O2", "-o", str(out / name), str(EXAMPLES / f"{name}.c")],
            check=True,
            timeout=60,
        )
    out.chmod(0o755)
    return out


def test_the_books_fork_server_leaves_zombies_after_a_burst(
    books_programs: Path, tmp_path: Path
) -> None:
    card = tmp_path / "mpserv.json"
    run = run_check(
        "--command", f"{books_programs / 'echo_mpserv'} {{port}}",
        "--model", "fork",
        "--only", "echo-exact,listener-closed-in-child,reaping-burst",
        "--json", str(card),
    )  # fmt: skip
    assert run.returncode == 1, run.stdout + run.stderr
    report = run.report(card)
    assert verdicts(report) == {
        "echo-exact": True,
        "listener-closed-in-child": True,
        "reaping-burst": False,
    }
    # Zombies from one waitpid() per SIGCHLD, also when the backlog of 5 let in only part of
    # the crowd: the burst's own lesson comes first.
    burst = next(c for c in report["checks"] if c["id"] == "reaping-burst")
    assert "zombies" in burst["summary"] and "waitpid" in burst["hint"], burst


def test_the_books_select_server_dies_of_sigpipe_on_a_reset_peer(
    books_programs: Path, tmp_path: Path
) -> None:
    card = tmp_path / "selectserv.json"
    run = run_check(
        "--command", f"{books_programs / 'echo_selectserv'} {{port}}",
        "--model", "select",
        "--only", "echo-exact,abrupt-peers",
        "--json", str(card),
    )  # fmt: skip
    assert run.returncode == 1, run.stdout + run.stderr
    # write() to a reset peer raises SIGPIPE, which the book never ignores: the one process dies
    report = run.report(card)
    assert verdicts(report) == {"echo-exact": True, "abrupt-peers": False}
    abrupt = report["checks"][1]
    assert "killed by SIGPIPE" in abrupt["summary"] and "SIG_IGN" in abrupt["hint"], abrupt
