"""(being written)"""

from __future__ import annotations

from check.context import Context
from check.results import Outcome


def echo_exact(ctx: Context) -> Outcome:
    return Outcome.skip("skipped: not written yet")


def concurrent_clients(ctx: Context) -> Outcome:
    return Outcome.skip("skipped: not written yet")


def half_close(ctx: Context) -> Outcome:
    return Outcome.skip("skipped: not written yet")
