"""Records in, Markdown out: one table per scenario, median and min-max over the repeats."""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from typing import Any

Record = dict[str, Any]
DASH = "\u2013"  # en dash: min-max ranges and empty cells

# (record key, column label, how the repeats combine: median | sum | count | first)
COLUMNS: dict[str, list[tuple[str, str, str]]] = {
    "hold": [
        ("served_at_once", "served at once", "median"),
        ("served_later", "served later", "median"),
        ("never_served", "never served", "median"),
        ("failed", "lost", "median"),
        ("proven_again", "echoed again after hold", "median"),
        ("processes", "processes", "median"),
        ("rss_mb", "RSS MB (sum)", "median"),
        ("pss_mb", "PSS MB (sum)", "median"),
        ("pss_per_client_kb", "PSS/client KB", "median"),
        ("zombies", "zombies @0.3 s", "median"),
        ("errors", "errors", "sum"),
        ("mismatches", "mismatches", "sum"),
        ("crashed", "crashed", "count"),
        ("log", "server log", "first"),
    ],
    "reap": [
        ("served_at_once", "served at once", "median"),
        ("children_left", "children left @0.3 s", "median"),
        ("zombies", "zombies @0.3 s", "median"),
        ("all_reaped_s", "all reaped after s", "median"),
        ("pinned_to_core", "pinned to core", "first_value"),
        ("errors", "errors", "sum"),
        ("mismatches", "mismatches", "sum"),
        ("crashed", "crashed", "count"),
    ],
    "forkloop": [
        ("forks_per_s", "fork()+_exit()+waitpid() /s", "median"),
        ("interpreter", "interpreter", "first_value"),
    ],
    "rate": [
        ("sessions_per_s", "sessions/s", "median"),
        ("server_cpu_s", "server CPU s", "median"),
        ("loadgen_cpu_s", "loadgen CPU s", "median"),
        ("others_cpu_s", "others' CPU s", "median"),
        ("errors", "errors", "sum"),
        ("mismatches", "mismatches", "sum"),
    ],
    "rr": [
        ("requests_per_s", "requests/s", "median"),
        ("server_cpu_s", "server CPU s", "median"),
        ("loadgen_cpu_s", "loadgen CPU s", "median"),
        ("others_cpu_s", "others' CPU s", "median"),
        ("errors", "errors", "sum"),
        ("mismatches", "mismatches", "sum"),
    ],
    "stream": [
        ("mb_per_s", "MB/s echoed", "median"),
        ("server_cpu_s", "server CPU s", "median"),
        ("others_cpu_s", "others' CPU s", "median"),
        ("errors", "errors", "sum"),
        ("mismatches", "mismatches", "sum"),
    ],
}


def group(records: Iterable[Record]) -> dict[str, dict[str, list[Record]]]:
    """{scenario: {server: [records over repeats]}}, in the order they ran."""
    out: dict[str, dict[str, list[Record]]] = {}
    for r in records:
        if r.get("kind") == "run":
            out.setdefault(r["scenario"], {}).setdefault(r["server"], []).append(r)
    return out


def values(runs: list[Record], key: str) -> list[float]:
    return [r[key] for r in runs if isinstance(r.get(key), int | float)]


def median(runs: list[Record], key: str) -> float | None:
    v = values(runs, key)
    return statistics.median(v) if v else None


def number(x: float) -> str:
    if abs(x) >= 100:
        return f"{x:,.0f}"
    if x == int(x):
        return f"{int(x)}"
    return f"{x:.2f}" if abs(x) < 10 else f"{x:.1f}"


def cell(runs: list[Record], key: str, how: str) -> str:
    if how == "first":
        lines = next((r[key] for r in runs if r.get(key)), [])
        # A crash's last words ("ValueError: ...") say more than its "Traceback" line.
        shown = next((ln for ln in lines if "Error" in ln), lines[0] if lines else "")
        return _escape(shown[-100:])
    if how == "first_value":
        return _escape(str(next((r[key] for r in runs if r.get(key) is not None), DASH)))
    if how == "count":
        hits = sum(1 for r in runs if r.get(key))
        return f"**{hits}/{len(runs)}**" if hits else "no"
    v = values(runs, key)
    if not v:
        return DASH
    if how == "sum":
        total = number(sum(v))
        return f"**{total}**" if sum(v) else total
    mid = number(statistics.median(v))
    lo, hi = number(min(v)), number(max(v))
    return mid if lo == hi else f"{mid} ({lo}{DASH}{hi})"


def _escape(text: str) -> str:
    return text.replace("|", "\\|")


def table(runs_by_server: dict[str, list[Record]], mode: str) -> str:
    columns = COLUMNS[mode]
    head = ["server", "model", "role", *(label for _, label, _ in columns)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for server, runs in runs_by_server.items():
        role = runs[0].get("role", "ours" if runs[0].get("ours") else "stdlib peer")
        name = (
            f"**{server}**" if role == "ours" else f"*{server}*" if role == "reference" else server
        )
        row = [name, runs[0]["model"], role, *(cell(runs, k, how) for k, _, how in columns)]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def markdown(meta: Record, records: list[Record], titles: dict[str, str], ratios: str) -> str:
    parts = [
        "# echolab benchmark",
        "",
        f"- machine: {meta['machine']}",
        f"- server/ code: {meta.get('server_version', 'unknown')}",
        f"- load average (1 min) before: {meta['load_before']}, after: {meta['load_after']}",
        f"- command: `{meta['command']}`",
        f"- repeats: {meta['repeats']}; cells are median (min{DASH}max) over repeats; "
        "errors and mismatches are totals; **bold** servers are ours, *italic* ones the "
        "references (the limit of each model)",
        "- others' CPU s: CPU the rest of the machine used during a run (2 cores shared with "
        "other work); a large value marks a disturbed figure",
    ]
    parts += [f"- note: {note}" for note in meta.get("notes", [])]
    parts.append("")
    if ratios:
        parts += ["## Ours against the limit and the alternatives, same run", "", ratios, ""]
    for scenario, by_server in group(records).items():
        first = next(iter(by_server.values()))[0]
        mode = "reap" if "children_left" in first else first["mode"]
        parts += [f"## {scenario}: {titles.get(scenario, '')}", "", table(by_server, mode), ""]
    return "\n".join(parts)
