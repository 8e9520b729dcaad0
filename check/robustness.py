"""(being written)"""

from __future__ import annotations

from check.context import Context
from check.results import Outcome


def abrupt_peers(ctx: Context) -> Outcome:
    return Outcome.skip("skipped: not written yet")


def no_stall(ctx: Context) -> Outcome:
    return Outcome.skip("skipped: not written yet")
