"""`python -m bench --quick` against our select server: the whole pipeline runs, every echo matched.

The figures of a quick run are rough and the machine is shared, so nothing here is timed:
the test checks that the benchmark measured what it claims to (files, counts, /proc readings).
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

SCENARIOS = ("hold-100", "rate-64B-c32", "rr-64B-c100", "rr-16KiB-c100", "stream-c10")


def test_quick_bench_against_the_select_server(tmp_path: Path, repo_root: Path) -> None:
    out = tmp_path / "bench"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "--quick",
            "--servers",
            "select",
            "--scenarios",
            *SCENARIOS,
            "--out",
            str(out),
        ],
        cwd=repo_root,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]

    lines = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    runs = {r["scenario"]: r for r in lines if r["kind"] == "run"}
    assert [r["kind"] for r in lines].count("meta") == 1
    assert set(runs) == set(SCENARIOS)
    for name, r in runs.items():
        assert r["server"] == "select" and r["ours"], name
        assert (r["errors"], r["mismatches"], r["crashed"]) == (0, 0, False), (name, r["samples"])
    for name in ("rate-64B-c32", "rr-64B-c100", "rr-16KiB-c100", "stream-c10"):
        assert runs[name]["ops"] > 0, name
        # /proc counts CPU in 10 ms ticks: a busy window shows up, 100 short echoes may not.
        assert runs[name]["server_cpu_s"] > 0, f"{name}: no CPU time read from /proc"

    held = runs["hold-100"]
    assert held["served_at_once"] == held["proven_again"] == 100
    assert held["never_served"] == held["failed"] == 0
    # One process multiplexes every client: no child, no zombie, a footprint from smaps_rollup.
    assert held["processes"] == 1 and held["zombies"] == 0
    assert 0 < held["pss_mb"] <= held["rss_mb"]

    table = (out / "results.md").read_text()
    assert "| **select** | one process |" in table
    assert table.strip() in run.stdout  # the same table on stdout and in the file
    if importlib.util.find_spec("matplotlib"):
        assert (out / "chart.png").read_bytes().startswith(b"\x89PNG")


REFERENCES = ("minimal-fork", "c-fork", "minimal-select", "c-select")


def test_quick_bench_runs_the_references_and_reports_ratios(
    tmp_path: Path, repo_root: Path
) -> None:
    """The limit rows: minimal Python servers, C servers (or a note), the bare fork loop."""
    out = tmp_path / "bench"
    run = subprocess.run(
        [
            *(sys.executable, "-m", "bench", "--quick", "--no-chart", "--out", str(out)),
            *("--servers", "fork", "select", *REFERENCES),
            *("--scenarios", "reap-512", "rate-64B-c32"),
        ],
        cwd=repo_root,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    lines = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    meta = next(r for r in lines if r["kind"] == "meta")
    runs = {(r["server"], r["scenario"]): r for r in lines if r["kind"] == "run"}
    built = shutil.which("cc") or shutil.which("gcc")
    expected = set(REFERENCES) if built else {"minimal-fork", "minimal-select"}
    if not built:  # skipped with a note, never silently
        assert any("c-fork skipped" in n for n in meta["notes"]), meta["notes"]
    assert {s for s, _ in runs if s in REFERENCES} == expected
    for name in expected:
        assert runs[(name, "rate-64B-c32")]["role"] == "reference"
        assert runs[(name, "rate-64B-c32")]["sessions_per_s"] > 0, name
    for (server, scenario), r in runs.items():
        assert (r["errors"], r["mismatches"], r["crashed"]) == (0, 0, False), (server, scenario)

    loop = runs[("fork()+_exit()+waitpid()", "fork-loop")]
    assert loop["forks"] > 0 and loop["forks_per_s"] > 0
    # Only forking servers have children to reap: the pinned scenario skips the select ones.
    reaped = {s for s, scenario in runs if scenario == "reap-512"}
    assert reaped == {"fork", "minimal-fork"} | ({"c-fork"} if built else set())
    for server in reaped:
        r = runs[(server, "reap-512")]
        assert r["served_at_once"] == 512 and r["pinned_to_core"] >= 0, server
        assert r["children_left"] >= r["zombies"] >= 0, server
        assert r["all_reaped_s"] is None or r["all_reaped_s"] > 0, server

    table = (out / "results.md").read_text()
    assert "## Ours against the limit and the alternatives, same run" in table
    assert "issue's targets" not in table and "verdict" not in table
    assert "| connection rate, sessions/s | **fork** |" in table
    assert "| *minimal-fork* | process per client | reference |" in table
