"""Where each of our servers stands: its figure beside the limit and the alternatives, same run.

For each measure and each of our servers: the median, then the same median of the minimal
server of its model, of the fastest standard-library peer of its model, of the C server and,
for the connection rate of a forking server, of the bare fork()+_exit()+waitpid() loop, each
with our figure's ratio to it. Ratios, not verdicts: the goals are read off in the README.
"""

from __future__ import annotations

from dataclasses import dataclass

from bench.report import DASH, Record, group, median, number
from bench.servers import C_OF, MINIMAL, PEER

FORK_LOOP = "fork()+_exit()+waitpid()"  # the fork-loop record's server name


@dataclass(frozen=True)
class Measure:
    scenario: str
    key: str
    label: str
    higher_is_better: bool = True
    unit: str = ""


MEASURES = (
    Measure("rate-64B-c32", "sessions_per_s", "connection rate, sessions/s", unit="/s"),
    Measure("rr-64B-c100", "requests_per_s", "request/response 100 conns 64 B, requests/s"),
    # Per CPU second the server itself used: what is left of a ratio when the shared cores
    # gave one server less time than another (others' CPU s in the tables).
    Measure("rate-64B-c32", "ops_per_cpu_s", "connection rate per server CPU s"),
    Measure("rr-64B-c100", "ops_per_cpu_s", "request/response 100 conns per server CPU s"),
    Measure("hold-100", "pss_per_client_kb", "PSS per client, 100 held", False, " KB"),
    Measure("reap-512", "children_left", "512 close, pinned: children left at 0.3 s", False),
    Measure("reap-512", "all_reaped_s", "512 close, pinned: all reaped after", False, " s"),
)


def _ratio(mine: float, theirs: float | None, measure: Measure) -> str:
    if theirs is None:
        return DASH
    shown = number(theirs) + measure.unit
    if measure.unit == " KB":  # memory: the difference is what a goal is stated in
        return f"{shown} ({mine - theirs:+,.0f} KB)"
    if not theirs or not measure.higher_is_better:
        return shown
    return f"{shown} ({mine / theirs:.2f}x)"


def _fastest_peer(by_server: dict[str, list[Record]], model: str, m: Measure) -> str | None:
    peers = [
        s
        for s, runs in by_server.items()
        if runs[0].get("role") == PEER
        and runs[0]["model"] == model
        and median(runs, m.key) is not None
    ]
    if not peers:
        return None
    pick = max if m.higher_is_better else min
    return pick(peers, key=lambda s: median(by_server[s], m.key) or 0.0)


def per_cpu_second(records: list[Record]) -> list[Record]:
    """Sessions or requests per CPU second of the server's tree (children included)."""
    return [
        {**r, "ops_per_cpu_s": round(r["ops"] / r["server_cpu_s"])}
        if r.get("mode") in ("rate", "rr") and r.get("server_cpu_s")
        else r
        for r in records
    ]


def rows(records: list[Record]) -> list[list[str]]:
    runs = group(per_cpu_second(records))
    loop = median(runs.get("fork-loop", {}).get(FORK_LOOP, []), "forks_per_s")
    out = []
    for m in MEASURES:
        by_server = runs.get(m.scenario, {})
        for ours, reference in MINIMAL.items():
            mine = median(by_server.get(ours, []), m.key)
            if mine is None:
                continue
            model = by_server[ours][0]["model"]
            peer = _fastest_peer(by_server, model, m)
            peer_cell = DASH
            if peer:
                peer_cell = f"{peer}: " + _ratio(mine, median(by_server[peer], m.key), m)
            bare = loop if ours == "fork" and m.key == "sessions_per_s" else None
            out.append(
                [
                    m.label,
                    f"**{ours}**",
                    number(mine) + m.unit,
                    _ratio(mine, median(by_server.get(reference, []), m.key), m),
                    peer_cell,
                    _ratio(mine, median(by_server.get(C_OF[ours], []), m.key), m),
                    _ratio(mine, bare, m) if bare else DASH,
                ]
            )
    return out


def markdown(records: list[Record]) -> str:
    table = rows(records)
    if not table:
        return ""
    head = ["measure (median)", "server", "figure", "minimal Python server", "fastest stdlib peer"]
    head += ["C server", "bare fork loop"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(r) + " |" for r in table]
    return "\n".join(lines)
