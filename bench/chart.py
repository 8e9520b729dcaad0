"""The picture: throughput as concurrency grows, connection rate, memory per client, 1,100 clients.

matplotlib is imported here only, and only when a chart is asked for: the benchmark itself
needs nothing beyond the standard library (it runs inside the image too).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.ratios import FORK_LOOP
from bench.report import Record, group, median, values

OURS = ("fork", "select", "epoll")


def _servers(records: list[Record]) -> list[str]:
    seen: dict[str, None] = {}
    for r in records:
        if r.get("kind") == "run":
            seen.setdefault(r["server"], None)
    return list(seen)


def _bars(ax: Any, by_server: dict[str, list[Record]], key: str, colors: dict[str, Any]) -> None:
    names = [s for s in colors if s in by_server and values(by_server[s], key)]
    mids = [median(by_server[s], key) or 0 for s in names]
    lows = [m - min(values(by_server[s], key)) for s, m in zip(names, mids, strict=True)]
    highs = [max(values(by_server[s], key)) - m for s, m in zip(names, mids, strict=True)]
    ax.bar(names, mids, yerr=[lows, highs], capsize=3, color=[colors[s] for s in names])
    _tilt(ax)


def _tilt(ax: Any) -> None:
    """Slanted server names, ours in bold."""
    ax.tick_params(axis="x", labelrotation=35)
    for label in ax.get_xticklabels():
        label.set_horizontalalignment("right")
        if label.get_text() in OURS:
            label.set_fontweight("bold")


def draw(records: list[Record], path: Path) -> Path | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    runs = group(records)
    palette = plt.get_cmap("tab20")  # 13 servers and references: no colour twice
    colors = {s: palette(i % 20) for i, s in enumerate(_servers(records))}
    fig, axes = plt.subplots(2, 3, figsize=(19, 9.5))
    (rr_ax, rate_ax, reap_ax), (mem_ax, crowd_ax, spare_ax) = axes
    spare_ax.axis("off")

    rr = {int(n.rsplit("-c", 1)[1]): r for n, r in runs.items() if n.startswith("rr-64B-c")}
    for server, color in colors.items():
        points = [
            (n, median(rr[n][server], "requests_per_s")) for n in sorted(rr) if server in rr[n]
        ]
        if points:
            style = "-o" if rr[points[0][0]][server][0].get("ours") else "--s"
            rr_ax.plot(*zip(*points, strict=True), style, color=color, label=server)
    rr_ax.set(title="request/response, 64 B", xlabel="connections", ylabel="requests/s")
    if rr:  # a partial run (--scenarios) may have no point to put on a log scale
        rr_ax.set_xscale("log")
        rr_ax.legend(fontsize=8)

    # The bare fork loop beside the servers: the ceiling of any fork server's rate.
    loops = [
        {**r, "sessions_per_s": r.get("forks_per_s")}
        for r in runs.get("fork-loop", {}).get(FORK_LOOP, [])
    ]
    _bars(rate_ax, {**runs.get("rate-64B-c32", {}), FORK_LOOP: loops}, "sessions_per_s", colors)
    rate_ax.set(
        title="connection rate: connect, 64 B echo, close (32 in flight)", ylabel="sessions/s"
    )

    _bars(reap_ax, runs.get("reap-512", {}), "all_reaped_s", colors)
    reap_ax.axhline(0.3, color="tab:red", linestyle=":", label="goal: 0.3 s")
    reap_ax.set(title="512 clients close at once, server on one core", ylabel="s until all reaped")
    reap_ax.legend(fontsize=8)

    _bars(mem_ax, runs.get("hold-100", {}), "pss_per_client_kb", colors)
    mem_ax.set(title="memory: tree PSS / client, 100 clients held", ylabel="KB per client")
    if runs.get("hold-100"):
        mem_ax.set_yscale("log")

    crowd = runs.get("hold-1100", {})
    names = list(crowd)
    bottom = [0.0] * len(names)
    for key, label, color in (
        ("served_at_once", "served at once", "tab:green"),
        ("served_later", "served once others left", "tab:orange"),
        ("never_served", "never served", "tab:red"),
        ("failed", "lost (reset, server died)", "tab:gray"),
    ):
        heights = [median(crowd[s], key) or 0 for s in names]
        crowd_ax.bar(names, heights, bottom=bottom, label=label, color=color)
        bottom = [b + h for b, h in zip(bottom, heights, strict=True)]
    for i, s in enumerate(names):
        if any(r.get("crashed") for r in crowd[s]):
            crowd_ax.annotate("crashed", (i, bottom[i]), ha="center", va="bottom", color="tab:red")
    crowd_ax.set(title="1,100 clients at once (FD_SETSIZE = 1024)", ylabel="clients")
    crowd_ax.set_ylim(0, max(bottom, default=1) * 1.15)  # room for the "crashed" marks
    crowd_ax.legend(fontsize=8, loc="lower left")
    _tilt(crowd_ax)

    fig.suptitle(
        "echolab: our servers (solid, bold), the standard library's peers and the references "
        "(minimal-*, c-*, the bare fork loop)"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
