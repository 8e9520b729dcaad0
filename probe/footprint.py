"""What a server costs, as /proc shows it: CPU time, memory of its process tree, zombies.

One reading serves both users: the benchmark (PSS per client of the whole tree) and the fault
suite (what must come back to its idle level after load: descriptors, processes, RSS).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from probe import procfs
from probe.procfs import CLOCK_TICKS, PROC


@dataclass(frozen=True)
class Footprint:
    """A process and its descendants at one moment."""

    fds: int  # open descriptors of the root process
    processes: int  # the root and all its descendants, zombies included
    threads: int  # summed over the tree
    zombies: int  # among the descendants
    rss_kib: int  # resident memory of the root process
    children_rss_kib: int  # summed over its descendants (the fork server's children)
    pss_kib: int  # summed over the tree: each shared page split among its sharers
    private_kib: int  # Private_Clean + Private_Dirty, summed over the tree

    @property
    def tree_rss_kib(self) -> int:
        """RSS summed over the tree: shared pages counted once per process."""
        return self.rss_kib + self.children_rss_kib

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


def _memory(pid: int, root: str) -> dict[str, int]:
    try:
        return procfs.memory_kb(pid, root) or {}
    except PermissionError:  # another user's process: its memory is not ours to read
        return {}


def _private(memory: dict[str, int]) -> int:
    return memory.get("Private_Clean", 0) + memory.get("Private_Dirty", 0)


def private_kib(pid: int, root: str = PROC) -> int:
    """Pages only this process maps (0 once it is gone): what a fork server's child adds."""
    return _private(_memory(pid, root))


def footprint(pid: int, root: str = PROC) -> Footprint:
    """The footprint of `pid` and its descendants (all zeros once `pid` is gone)."""
    tree = procfs.process_tree(pid, root)
    memory = [_memory(s.pid, root) for s in tree]
    return Footprint(
        fds=procfs.open_fd_count(pid, root) if tree else 0,
        processes=len(tree),
        threads=sum(s.num_threads for s in tree),
        zombies=sum(1 for s in tree[1:] if s.state == "Z"),
        rss_kib=memory[0].get("Rss", 0) if tree else 0,
        children_rss_kib=sum(m.get("Rss", 0) for m in memory[1:]),
        pss_kib=sum(m.get("Pss", 0) for m in memory),
        private_kib=sum(_private(m) for m in memory),
    )


def zombies(pid: int, root: str = PROC) -> int:
    """Zombies among the descendants of `pid`: children that exited and were not reaped."""
    return sum(1 for s in procfs.process_tree(pid, root)[1:] if s.state == "Z")


def cpu_seconds(pid: int, root: str = PROC) -> float:
    """User + system CPU time `pid` itself has used so far (0 once it is gone)."""
    s = procfs.stat(pid, root)
    return s.cpu_ticks / CLOCK_TICKS if s else 0.0


def tree_cpu_seconds(pid: int, root: str = PROC) -> float:
    """CPU used by the tree so far: the root, the children it reaped, the ones not reaped yet.

    A child's time reaches the parent's cutime/cstime only once the parent waits for it, so
    live children and zombies are added from their own stat.
    """
    tree = procfs.process_tree(pid, root)
    if not tree:
        return 0.0
    top, rest = tree[0], tree[1:]
    ticks = top.cpu_ticks + top.reaped_ticks + sum(s.cpu_ticks for s in rest)
    return ticks / CLOCK_TICKS


def machine_busy_seconds(root: str = PROC) -> float:
    """CPU time all cores spent busy since boot: less what we used, it is other load."""
    busy, _ = procfs.machine_ticks(root)
    return busy / CLOCK_TICKS
