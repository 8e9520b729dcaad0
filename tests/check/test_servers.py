"""Every server of this project passes every check of its model; each break-it switch fails
its lesson's check and no other."""

from __future__ import annotations

from pathlib import Path

import pytest

from check.registry import CHECKS
from tests.check.support import run_check, server_command, verdicts

FORK_IDS = [c.id for c in CHECKS if "fork" in c.models]
SELECT_IDS = [c.id for c in CHECKS if "select" in c.models]


@pytest.mark.parametrize(
    ("model", "expected", "ids"),
    [("fork", "fork", FORK_IDS), ("select", "select", SELECT_IDS), ("epoll", "select", SELECT_IDS)],
)
def test_each_server_passes_every_check_of_its_model(
    model: str, expected: str, ids: list[str], tmp_path: Path
) -> None:
    out = tmp_path / "report.json"
    run = run_check("--command", server_command(model), "--json", str(out))
    report = run.report(out)
    assert run.returncode == 0, run.stdout + run.stderr
    assert report["model"] == expected
    assert f"model: {expected} (auto:" in run.stdout
    assert verdicts(report) == dict.fromkeys(ids, True)


# (model, switch, the checks it must fail: its lesson's, and for --parent-keeps-client the EOF)
BREAK_IT = [
    ("fork", "--no-reap", {"reaping"}),
    ("fork", "--child-keeps-listener", {"listener-closed-in-child"}),
    ("fork", "--parent-keeps-client", {"client-closed-in-parent", "half-close"}),
    ("fork", "--single-waitpid", {"reaping-burst"}),
    ("select", "--blocking-send", {"no-stall"}),
    ("epoll", "--blocking-send", {"no-stall"}),
    ("select", "--no-fd-cap", {"past-fd-setsize"}),
]


@pytest.mark.parametrize(
    ("model", "switch", "failing"), BREAK_IT, ids=[b[1] + "-" + b[0] for b in BREAK_IT]
)
def test_a_break_it_switch_fails_its_lessons_check_and_no_other(
    model: str, switch: str, failing: set[str], tmp_path: Path
) -> None:
    out = tmp_path / "report.json"
    run = run_check("--command", server_command(model, switch), "--quick", "--json", str(out))
    assert run.returncode == 1, run.stdout + run.stderr
    found = verdicts(run.report(out))
    assert {i for i, v in found.items() if v is False} == failing, run.stdout
    # Whatever did not fail ran and passed, or waited on a failed prerequisite (said so).
    for check in run.report(out)["checks"]:
        if check["passed"] is None:
            assert check["summary"].startswith("skipped: "), check
