"""(being written)"""

from __future__ import annotations

from check.context import Context
from check.results import Outcome


def one_child_per_client(ctx: Context) -> Outcome:
    return Outcome.skip("skipped: not written yet")


def reaping(ctx: Context) -> Outcome:
    return Outcome.skip("skipped: not written yet")


def reaping_burst(ctx: Context) -> Outcome:
    return Outcome.skip("skipped: not written yet")


def listener_closed_in_child(ctx: Context) -> Outcome:
    return Outcome.skip("skipped: not written yet")


def client_closed_in_parent(ctx: Context) -> Outcome:
    return Outcome.skip("skipped: not written yet")
