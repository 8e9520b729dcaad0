"""What a fault scenario measured, printed and appended to a JSON-lines file.

Each scenario prints one line of figures (shown with `pytest -s`) and appends the same figures
as one JSON object to `build/reliability.jsonl` (or `$ECHOLAB_RELIABILITY_FILE`), so README's
reliability table can be regenerated from the last run: `python3 -m tests.faults.report`.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
RESULTS_FILE = Path(
    os.environ.get("ECHOLAB_RELIABILITY_FILE", REPO_ROOT / "build" / "reliability.jsonl")
)
# One id per test run (per pytest process), so a report can pick the figures of the last run.
RUN_ID = os.environ.get("ECHOLAB_RUN_ID") or time.strftime("%Y-%m-%dT%H:%M:%S")


def record(scenario: str, server: str, **figures: Any) -> dict[str, Any]:
    """Print the figures of one scenario and append them to the results file."""
    entry = {"run": RUN_ID, "scenario": scenario, "server": server, **figures}
    shown = ", ".join(f"{key}={value}" for key, value in figures.items())
    print(f"\n[reliability] {scenario} / {server}: {shown}")
    RESULTS_FILE.parent.mkdir(parents=True, exist_ok=True)
    with RESULTS_FILE.open("a") as out:
        out.write(json.dumps(entry, sort_keys=False) + "\n")
    return entry


def mib(kib: int) -> float:
    return round(kib / 1024, 1)
