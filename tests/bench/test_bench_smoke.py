"""`python -m bench --quick` against our select server: the whole pipeline runs, every echo matched.

The figures of a quick run are rough and the machine is shared, so nothing here is timed:
the test checks that the benchmark measured what it claims to (files, counts, /proc readings).
"""

from __future__ import annotations

import importlib.util
import json
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
