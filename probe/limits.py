"""Room for descriptors: raise RLIMIT_NOFILE's soft limit toward what a process needs."""

from __future__ import annotations

import contextlib
import resource
from collections.abc import Iterator


def open_files_limit() -> int:
    """How many descriptors this process may open now (the soft limit; unlimited as 2**20)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return soft if soft != resource.RLIM_INFINITY else 1 << 20


def raise_open_files(wanted: int | None = None) -> int:
    """Raise the soft limit to `wanted` (None: the hard limit), never past the hard limit.

    Returns the soft limit in force afterwards. Never lowers it.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if wanted is None else wanted
    if hard != resource.RLIM_INFINITY:
        target = min(target, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return open_files_limit()


@contextlib.contextmanager
def more_open_files(wanted: int | None = None) -> Iterator[int]:
    """`raise_open_files` for the span of a `with` block; the old soft limit comes back after."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        yield raise_open_files(wanted)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
