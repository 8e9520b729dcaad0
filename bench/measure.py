"""What a server costs, read from /proc: CPU time, memory of its process tree, zombies.

A small reader of its own (not probe/procfs.py): the benchmark also runs inside the image,
which holds no tests.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")
TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Stat:
    pid: int
    state: str  # 'R', 'S', 'Z', ...
    ppid: int
    cpu_ticks: int  # utime + stime
    reaped_ticks: int  # cutime + cstime: children that were waited for
    threads: int


def read_stat(pid: int) -> Stat | None:
    try:
        text = (PROC / str(pid) / "stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None  # gone
    # comm may hold spaces and parentheses: the fields start after the last ')'.
    f = text[text.rindex(")") + 2 :].split()
    # f[0] is field 3 of proc(5): utime is field 14, so f[11]; num_threads (20) is f[17].
    return Stat(pid, f[0], int(f[1]), int(f[11]) + int(f[12]), int(f[13]) + int(f[14]), int(f[17]))


def process_tree(root: int) -> list[Stat]:
    """The root and all its descendants, zombies included (one scan of /proc)."""
    by_parent: dict[int, list[Stat]] = {}
    top: Stat | None = None
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        stat = read_stat(int(entry.name))
        if stat is None:
            continue
        if stat.pid == root:
            top = stat
        by_parent.setdefault(stat.ppid, []).append(stat)
    if top is None:
        return []
    tree, todo = [top], [root]
    while todo:
        kids = by_parent.get(todo.pop(), [])
        tree.extend(kids)
        todo.extend(k.pid for k in kids)
    return tree


def cpu_seconds(root: int) -> float:
    """CPU used by the tree so far: the root, the children it reaped, the ones not reaped yet.

    A child's time reaches the parent's cutime/cstime only once the parent waits for it, so
    live children and zombies are added from their own stat.
    """
    tree = process_tree(root)
    if not tree:
        return 0.0
    top, rest = tree[0], tree[1:]
    ticks = top.cpu_ticks + top.reaped_ticks + sum(s.cpu_ticks for s in rest)
    return ticks / TICKS


def machine_busy_seconds() -> float:
    """CPU time all cores spent busy since boot (/proc/stat): less ours, it is other load."""
    fields = [int(x) for x in (PROC / "stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / TICKS


def zombies(root: int) -> int:
    return sum(1 for s in process_tree(root) if s.state == "Z")


@dataclass(frozen=True)
class Footprint:
    processes: int
    threads: int
    rss_kb: int  # summed over the tree: shared pages counted once per process
    pss_kb: int  # summed over the tree: each shared page split among its sharers
    private_kb: int  # Private_Clean + Private_Dirty, summed
    zombies: int


def smaps_rollup(pid: int) -> dict[str, int]:
    try:
        text = (PROC / str(pid) / "smaps_rollup").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return {}
    out: dict[str, int] = {}
    for line in text.splitlines():
        f = line.split()
        if len(f) >= 2 and f[0].endswith(":") and f[1].isdigit():
            out[f[0][:-1]] = int(f[1])
    return out


def footprint(root: int) -> Footprint:
    tree = process_tree(root)
    rss = pss = private = 0
    for s in tree:
        m = smaps_rollup(s.pid)
        rss += m.get("Rss", 0)
        pss += m.get("Pss", 0)
        private += m.get("Private_Clean", 0) + m.get("Private_Dirty", 0)
    return Footprint(
        processes=len(tree),
        threads=sum(s.threads for s in tree),
        rss_kb=rss,
        pss_kb=pss,
        private_kb=private,
        zombies=sum(1 for s in tree if s.state == "Z"),
    )
