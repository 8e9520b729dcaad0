"""The checks: public ids, their fixed order, which model each applies to, what each needs.

Ids are a public interface (``--only``, ``--skip``, JSON, JUnit): never renamed. A check whose
prerequisite failed or was skipped is itself skipped, with that reason.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from check import echo, fork, multiplexing, robustness, stop

if TYPE_CHECKING:
    from check.context import Context
    from check.results import Outcome

MODELS = ("fork", "select")
ALL = frozenset(MODELS)
FORK = frozenset({"fork"})
SELECT = frozenset({"select"})


@dataclass(frozen=True)
class Check:
    id: str
    models: frozenset[str]
    title: str  # what passes, in one line (--list)
    run: Callable[[Context], Outcome]
    limit_s: float  # the check is cut off (failed) past this, on a full run
    needs: tuple[str, ...] = ("echo-exact",)

    def applies_to(self, model: str) -> bool:
        return model in self.models

    @property
    def model_text(self) -> str:
        return "all" if self.models == ALL else "/".join(sorted(self.models))


CHECKS: tuple[Check, ...] = (
    Check(
        "echo-exact",
        ALL,
        "0 B, 1 B, all 256 byte values, one byte per send, 8 MiB: every byte back in order",
        echo.echo_exact,
        20,
        needs=(),
    ),
    Check(
        "concurrent-clients",
        ALL,
        "100+ clients connected at once, each gets its own bytes, no cross-talk",
        echo.concurrent_clients,
        20,
    ),
    Check(
        "half-close",
        ALL,
        "after shutdown(SHUT_WR) the server echoes what is in flight, then closes (EOF)",
        echo.half_close,
        10,
    ),
    Check(
        "abrupt-peers",
        ALL,
        "resets mid-stream, vanishing and silent peers: the server keeps serving others",
        robustness.abrupt_peers,
        15,
    ),
    Check(
        "one-child-per-client",
        FORK,
        "one live child per connected client, the parent serving none itself",
        fork.one_child_per_client,
        10,
    ),
    Check(
        "reaping",
        FORK,
        "no zombie shortly after clients leave; a child killed with SIGKILL is reaped",
        fork.reaping,
        10,
    ),
    Check(
        "reaping-burst",
        FORK,
        "200+ clients closing in the same instant: every child reaped",
        fork.reaping_burst,
        25,
        needs=("echo-exact", "reaping"),
    ),
    Check(
        "listener-closed-in-child",
        FORK,
        "no child holds the listening socket",
        fork.listener_closed_in_child,
        10,
    ),
    Check(
        "client-closed-in-parent",
        FORK,
        "the parent holds no connected socket once a child serves it",
        fork.client_closed_in_parent,
        10,
    ),
    Check(
        "single-process",
        SELECT,
        "every client served by one process",
        multiplexing.single_process,
        10,
    ),
    Check(
        "no-stall",
        ALL,
        "a client that sends and never reads does not hold up the others",
        robustness.no_stall,
        20,
    ),
    Check(
        "past-fd-setsize",
        SELECT,
        "1,100 clients at once: no crash, each served at once or as places free up",
        multiplexing.past_fd_setsize,
        30,
    ),
    Check(
        "clean-stop",
        ALL,
        "SIGTERM with clients connected: exit 0 within 2 s, no process of the server left",
        stop.clean_stop,
        10,
        needs=(),
    ),
)

BY_ID = {c.id: c for c in CHECKS}


def parse_ids(text: str | None) -> list[str]:
    """'a,b' -> ['a', 'b']; ValueError naming the first unknown id."""
    if not text:
        return []
    ids = [part.strip() for part in text.split(",") if part.strip()]
    for check_id in ids:
        if check_id not in BY_ID:
            raise ValueError(f"unknown check id {check_id!r} (see --list)")
    return ids


def select_ids(only: list[str], skip: list[str]) -> list[str]:
    """The ids to run, in the fixed order."""
    wanted = set(only) if only else set(BY_ID)
    return [c.id for c in CHECKS if c.id in wanted and c.id not in skip]
