"""The issue's targets, checked against the figures of the same run."""

from __future__ import annotations

from bench.report import DASH, Record, group, median, number, values
from bench.servers import MULTIPLEX, PROCESS

MEMORY_TARGET_KB = 400  # 0.4 MB of PSS per child
RATE_FACTOR = 4  # at least 4x socketserver's forking server
C_FORK_RATE = (4900, 7200)  # the C fork server, for context only


def _peers(by_server: dict[str, list[Record]], model: str) -> dict[str, list[Record]]:
    return {s: r for s, r in by_server.items() if not r[0]["ours"] and r[0]["model"] == model}


def _compare(ours: list[Record], peers: dict[str, list[Record]], key: str) -> tuple[str, str]:
    """Ours against the fastest peer by median; a tie within the min-max ranges is noise."""
    mine = median(ours, key)
    if mine is None or not peers:
        return DASH, ""
    best = max(peers, key=lambda s: median(peers[s], key) or 0.0)
    theirs = median(peers[best], key) or 0.0
    text = f"{number(mine)} vs {best} {number(theirs)} ({mine / theirs:.2f}x)" if theirs else DASH
    if mine >= theirs:
        return text, "met"
    overlap = max(values(ours, key)) >= min(values(peers[best], key))
    return text, "within noise (ranges overlap)" if overlap else "**missed**"


def evaluate(records: list[Record]) -> list[tuple[str, str, str]]:
    rows: list[tuple[str, str, str]] = []
    runs = group(records)
    rate = runs.get("rate-64B-c32", {})
    if "fork" in rate and "socketserver-forking" in rate:
        mine = median(rate["fork"], "sessions_per_s") or 0.0
        theirs = median(rate["socketserver-forking"], "sessions_per_s") or 0.0
        ratio = mine / theirs if theirs else float("inf")
        rows.append(
            (
                f"connection rate: fork ≥ {RATE_FACTOR}x socketserver forking "
                f"(and ≥ half the C fork server, {C_FORK_RATE[0] // 2:,}/s)",
                f"{number(mine)}/s vs {number(theirs)}/s ({ratio:.1f}x)",
                "met" if ratio >= RATE_FACTOR else "**missed**",
            )
        )
    hold = runs.get("hold-100", {})
    if "fork" in hold:
        pss = median(hold["fork"], "pss_per_client_kb")
        peer = median(hold.get("socketserver-forking", []), "pss_per_client_kb")
        context = f" (socketserver forking {number(peer)} KB)" if peer is not None else ""
        if pss is not None:
            rows.append(
                (
                    f"memory: ≤ {MEMORY_TARGET_KB} KB PSS per child, 100 clients held",
                    f"{number(pss)} KB{context}",
                    "met" if pss <= MEMORY_TARGET_KB else "**missed**",
                )
            )
        zombies = values(hold["fork"], "zombies")
        peer_z = values(hold.get("socketserver-forking", []), "zombies")
        if zombies:
            context = f" (socketserver forking {number(max(peer_z))})" if peer_z else ""
            rows.append(
                (
                    "zombies 0.3 s after 100 clients leave: 0",
                    f"at most {number(max(zombies))} over repeats{context}",
                    "met" if max(zombies) == 0 else "**missed**",
                )
            )
    for scenario in ("rr-64B-c100", "rr-16KiB-c100"):
        by_server = runs.get(scenario, {})
        for ours, model in (("fork", PROCESS), ("select", MULTIPLEX)):
            if ours in by_server:
                text, verdict = _compare(
                    by_server[ours], _peers(by_server, model), "requests_per_s"
                )
                if verdict:  # no peer in this run (--target): nothing to compare with
                    rows.append(
                        (f"{scenario}: {ours} ≥ fastest stdlib peer, same model", text, verdict)
                    )
    crowd = runs.get("hold-1100", {})
    for ours in ("select", "epoll"):
        if ours in crowd:
            r = crowd[ours]
            crashed = sum(1 for x in r if x.get("crashed"))
            never = max(values(r, "never_served") or [0])
            logged = any(x.get("log") for x in r)
            readable = any(x.get("log") is not None for x in r)
            why = ("yes" if logged else "no") if readable else "not readable from here"
            text = (
                f"served at once {number(median(r, 'served_at_once') or 0)}, "
                f"later {number(median(r, 'served_later') or 0)}, never {number(never)}, "
                f"crashed {crashed}/{len(r)}, log says why: {why}"
            )
            later = (median(r, "served_later") or 0) > 0
            ok = not crashed and never == 0 and (logged or not later or not readable)
            rows.append(
                (
                    f"1,100 clients: {ours} never crashes, serves all",
                    text,
                    "met" if ok else "**missed**",
                )
            )
    return rows


def markdown(records: list[Record]) -> str:
    rows = evaluate(records)
    if not rows:
        return ""
    lines = ["| target | measured (median) | verdict |", "|---|---|---|"]
    lines += [f"| {t} | {m} | {v} |" for t, m, v in rows]
    return "\n".join(lines)
