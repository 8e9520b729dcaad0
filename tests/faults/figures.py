"""What a fault scenario measured, printed and appended to a JSON-lines file.

Each scenario prints one line of figures (shown with `pytest -s`) and appends the same figures
as one JSON object to `build/reliability.jsonl` (or `$ECHOLAB_RELIABILITY_FILE`), so README's
reliability table can be regenerated from the last run: `python3 -m tests.faults.report`.
Also here: a server's footprint as /proc shows it (descriptors, processes, RSS, zombies, CPU).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from probe import procfs

REPO_ROOT = Path(__file__).resolve().parents[2]
RESULTS_FILE = Path(
    os.environ.get("ECHOLAB_RELIABILITY_FILE", REPO_ROOT / "build" / "reliability.jsonl")
)
# One id per test run (per pytest process), so a report can pick the figures of the last run.
RUN_ID = os.environ.get("ECHOLAB_RUN_ID") or time.strftime("%Y-%m-%dT%H:%M:%S")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def record(scenario: str, server: str, **figures: Any) -> dict[str, Any]:
    """Print the figures of one scenario and append them to the results file."""
    entry = {"run": RUN_ID, "scenario": scenario, "server": server, **figures}
    shown = ", ".join(f"{key}={value}" for key, value in figures.items())
    print(f"\n[reliability] {scenario} / {server}: {shown}")
    RESULTS_FILE.parent.mkdir(parents=True, exist_ok=True)
    with RESULTS_FILE.open("a") as out:
        out.write(json.dumps(entry, sort_keys=False) + "\n")
    return entry


@dataclass(frozen=True)
class Footprint:
    """A server as the kernel shows it: what must come back to its idle level after load."""

    fds: int  # open descriptors of the server process
    processes: int  # the server and all its descendants, zombies included
    zombies: int  # among the descendants
    rss_kib: int  # resident memory of the server process
    children_rss_kib: int  # summed over its descendants (the fork server's children)

    def as_dict(self) -> dict[str, int]:
        return asdict(self)

    def leaks_against(self, idle: Footprint, rss_slack_kib: int) -> dict[str, int]:
        """What did not come back: extra descriptors, processes, zombies, RSS past slack."""
        return {
            "fds": self.fds - idle.fds,
            "processes": self.processes - idle.processes,
            "zombies": self.zombies,
            "rss_kib_over_slack": max(0, self.rss_kib - idle.rss_kib - rss_slack_kib),
        }


def footprint(pid: int) -> Footprint:
    descendants = procfs.descendants_of(pid)
    return Footprint(
        fds=procfs.open_fd_count(pid),
        processes=1 + len(descendants),
        zombies=len(procfs.zombies_among(descendants)),
        rss_kib=procfs.rss_kb(pid) or 0,
        children_rss_kib=sum(procfs.rss_kb(kid) or 0 for kid in descendants),
    )


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used so far (fields 14 and 15 of stat)."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text.rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def mib(kib: int) -> float:
    return round(kib / 1024, 1)
