"""Print README's reliability table from the fault suite's figures.

    python3 -m tests.faults.report [build/reliability.jsonl]

Each scenario and server gets the figures of its latest record (the file only grows; every
test run appends one line per scenario).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.faults.figures import RESULTS_FILE

Entry = dict[str, Any]


def leaks(entry: Entry) -> str:
    found = entry.get("leaks")
    if found is None:
        return "n/a"
    bad = {key: value for key, value in found.items() if value}
    return "none" if not bad else ", ".join(f"{key} {value}" for key, value in bad.items())


def count(value: object) -> str:
    return f"{value:,}" if isinstance(value, int) else ("n/a" if value is None else str(value))


def size(value: object) -> str:
    if not isinstance(value, int):
        return "n/a"
    return f"{value / 2**20:,.1f} MiB" if value >= 2**20 else f"{value:,} B"


def seconds(value: object) -> str:
    return f"{value:g} s" if isinstance(value, (int, float)) else "n/a"


def exits(by_kind: dict[str, dict[str, int]]) -> str:
    """{'reset': {'exit 1': 5}} -> 'reset exit 1 x5'."""
    return ", ".join(
        f"{kind} {how} x{n}" for kind, outcomes in by_kind.items() for how, n in outcomes.items()
    )


NOTES: dict[str, Callable[[Entry], str]] = {
    "soak": lambda e: (
        f"{e['ok']:,}/{e['sessions']:,} ok, {e['mismatched']} wrong bytes, "
        f"p50/p99 {e['p50_ms']}/{e['p99_ms']} ms, RSS {e['rss_growth_mib']:+} MiB over idle"
        + (f", {e['reaped']:,} reaped" if e.get("forked") else "")
    ),
    "abrupt peers": lambda e: (
        f"{e['resets']} resets, {e['vanished']} vanished, {e['silent']} silent; "
        f"normal clients {e['normal_failed']} failed, p99 {e['p99_ms']} ms"
        + (f"; children: {exits(e['child_exits'])}" if e.get("child_exits") else "")
    ),
    "slow consumers": lambda e: (
        f"{e['trickle']} at 1 B/s + {e['stalled']} never reading; normal p50/p99 "
        f"{e['baseline_p50_ms']}/{e['baseline_p99_ms']} -> {e['p50_ms']}/{e['p99_ms']} ms; "
        + (
            f"RSS {e['rss_growth_mib']:+} MiB (bound {e['rss_bound_mib']} MiB)"
            if e.get("rss_bound_mib")
            else f"child private {max(e['child_private_mib'])} MiB max"
        )
    ),
    "SIGKILL child mid-transfer": lambda e: (
        f"client saw {e['client_saw']} after {e['client_sees_s']} s; "
        f"{e['normal_failed']} normal clients failed"
    ),
    "SIGKILL client writer": lambda e: f"exit {e['client_exit']}: `{e['client_error']}`",
    "select at FD_SETSIZE": lambda e: (
        f"{e['served_at_once']} at once, {e['waited_in_backlog']} waited; highest fd "
        f"{e['highest_fd']}; CPU {e['cpu_while_waiting_s']} s / 2 s waiting"
    ),
    "RLIMIT_NOFILE 64 (cap)": lambda e: (
        f"cap 48: {e['served_at_once']} at once, {e['waited_in_backlog']} waited, "
        f"{e['emfile_lines']} EMFILE; CPU {e['cpu_while_waiting_s']} s / 2 s"
    ),
    "EMFILE on accept": lambda e: (
        f"limit {e['rlimit_nofile']}: {e['served_at_once']} at once, "
        f"{e['accept_retries_in_2s']} retries / 2 s, CPU {e['cpu_while_waiting_s']} s / 2 s"
    ),
    "connection storm": lambda e: (
        f"{e['sessions']:,} connects in {e['connect_s']} s, {e['served']:,} served, "
        f"{e['refused']} refused, all served in {e['all_served_s']} s"
    ),
    "bad input": lambda e: (
        f"{e['mismatched']} of {e['sessions']} cases differ; 64 MiB at {e['big_mib_s']} MiB/s"
    ),
    "SIGCHLD bursts": lambda e: (
        f"{e['rounds']} x {e['burst']} exits within {max(e['child_exit_span_ms'])} ms; "
        f"{e['reaped']:,} reaped, {e['children_left_in_table']} left in the table"
    ),
    "compose restart": lambda e: (
        f"{e['held_saw_end']}/{e['held']} held clients saw the end; client exit "
        f"{e['client_exit']}: `{e['client_error']}`; healthy after {e['recover_s']} s"
    ),
    "pids_limit (fork fails)": lambda e: (
        f"pids_limit {e['pids_limit']}: {e['served_at_limit']} children, then "
        f"{e['fork_failed_lines']} `fork failed` (EAGAIN), {e['refused']} closed; "
        f"{e['served']} of {e['sessions']} served"
    ),
}


def note(entry: Entry) -> str:
    scenario = entry["scenario"]
    if scenario.endswith("during a storm"):
        return (
            f"exit {entry['exit_code']} in {entry['stop_s']} s; {entry['held_saw_end']}/"
            f"{entry['held']} held clients saw the end; {entry['children_at_signal']} children"
        )
    formatter = NOTES.get(scenario)
    try:
        return formatter(entry) if formatter else ""
    except (KeyError, TypeError, ValueError):
        return ""


def latest(lines: list[str]) -> list[Entry]:
    found: dict[tuple[str, str], Entry] = {}
    for line in lines:
        if line.strip():
            entry = json.loads(line)
            found.pop((entry["scenario"], entry["server"]), None)
            found[(entry["scenario"], entry["server"])] = entry
    entries = [e for e in found.values() if not e["scenario"].startswith("lockdown")]
    return sorted(entries, key=order)


SCENARIO_ORDER = (
    [*NOTES][:5]
    + [f"{name} during a storm" for name in ("SIGTERM", "SIGINT", "SIGHUP")]
    + [*NOTES][5:]
)
SERVER_ORDER = ["fork", "select", "epoll", "fork-server (docker)", "select-server (docker)"]


def order(entry: Entry) -> tuple[int, int]:
    def rank(names: list[str], name: str) -> int:
        return names.index(name) if name in names else len(names)

    return rank(SCENARIO_ORDER, entry["scenario"]), rank(SERVER_ORDER, entry["server"])


def table(entries: list[Entry]) -> str:
    rows = [
        "| scenario | server | sessions | bytes | leaks | zombies | time to recover | figures |",
        "|---|---|---:|---:|---|---:|---:|---|",
    ]
    for e in entries:
        sessions = e.get("sessions", e.get("normal_sessions"))
        rows.append(
            f"| {e['scenario']} | {e['server']} | {count(sessions)} | {size(e.get('bytes'))} | "
            f"{leaks(e)} | {count(e.get('zombies'))} | {seconds(e.get('recover_s'))} | "
            f"{note(e)} |"
        )
    return "\n".join(rows)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python3 -m tests.faults.report",
        description="Print the README's reliability table from the fault suite's JSON lines.",
    )
    parser.add_argument("results", nargs="?", type=Path, default=RESULTS_FILE)
    path = parser.parse_args(argv).results
    if not path.exists():
        parser.error(f"{path} does not exist: run the fault suite first (see README)")
    entries = latest(path.read_text().splitlines())
    print(table(entries))
    runs = sorted({e["run"] for e in entries})
    print(f"\nruns: {', '.join(runs)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
