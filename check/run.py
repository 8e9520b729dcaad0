"""Run the selected checks on a target, in the fixed order, each bounded in time.

    report = run_checks(target, ids, "auto", reporter, quick=False)

`run_checks` starts the target (``target.start()`` raises ``CannotCheck``); the caller closes
it (``target.close()``), also when this raises. A check whose prerequisite failed or was
skipped, or that comes after the server died, is skipped with the reason.
"""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from typing import Protocol

from check.context import Context
from check.model import decide_model
from check.registry import BY_ID, Check
from check.results import CheckResult, Outcome, Report
from check.robustness import HINT_SIGPIPE
from check.target import OPEN_FILES_WANTED, Target
from probe.limits import raise_open_files

QUICK_LIMIT_SHARE = 0.5  # under --quick a check gets half its time bound
HINT_NO_ANSWER = "the server refused, reset or dropped a connection a correct one would serve"
HINT_DIED = "a server outlives every client: find what ended it in its output"

__all__ = ["Report", "Reporter", "run_checks"]


class Reporter(Protocol):
    def note(self, text: str) -> None: ...

    def check_started(self, check: Check, index: int, total: int) -> None: ...

    def check_done(self, result: CheckResult, index: int, total: int) -> None: ...

    def finish(self, report: Report) -> None: ...


def run_checks(
    target: Target,
    selected_ids: list[str],
    model: str,
    reporter: Reporter,
    quick: bool,
    named: bool = False,
) -> Report:
    """`named`: the ids were asked for by name (--only): one that does not apply to the
    model is reported skipped with why, instead of left out."""
    started = time.monotonic()
    raise_open_files(OPEN_FILES_WANTED)  # 1,100 clients at once, past FD_SETSIZE
    target.start()
    if model == "auto":
        model, reason = decide_model(target)
        reporter.note(f"model: {model} (auto: {reason})")
    else:
        reason = "given"
        reporter.note(f"model: {model} (given with --model)")
    report = Report(target.describe(), model, reason)
    context = Context(target, model, quick)
    plan = [BY_ID[i] for i in selected_ids if BY_ID[i].applies_to(model) or named]
    verdicts: dict[str, bool | None] = {}
    died_in: str | None = None
    for index, check in enumerate(plan, start=1):
        reporter.check_started(check, index, len(plan))
        began = time.monotonic()
        outcome = _why_not(check, model, verdicts, died_in, target)
        if outcome is None:
            outcome = _bounded(check, context)
            if died_in is None and check.id != "clean-stop" and not target.alive():
                died_in = check.id
                outcome = _died(outcome, target.ended())
        result = CheckResult(
            check.id,
            check.title,
            outcome.passed,
            outcome.summary,
            outcome.figures,
            outcome.hint,
            round(time.monotonic() - began, 2),
        )
        verdicts[check.id] = result.passed
        report.checks.append(result)
        reporter.check_done(result, index, len(plan))
    report.seconds = round(time.monotonic() - started, 1)
    reporter.finish(report)
    return report


def _why_not(
    check: Check,
    model: str,
    verdicts: dict[str, bool | None],
    died_in: str | None,
    target: Target,
) -> Outcome | None:
    """The reason `check` cannot run now, as a skip; None when it can."""
    if not check.applies_to(model):
        return Outcome.skip(f"skipped: applies to {check.model_text} servers, this is {model}")
    for need in check.needs:
        if verdicts.get(need, True) is not True:
            state = "failed" if verdicts[need] is False else "was skipped"
            return Outcome.skip(f"skipped: {need} {state}")
    if died_in is not None:
        return Outcome.skip(f"skipped: the server died during {died_in}")
    return None


def _died(outcome: Outcome, how: str | None) -> Outcome:
    """The outcome of a check during which the server died: a failure that says how it died
    ('killed by SIGPIPE'), with the lesson for that death unless the check gave its own."""
    what = f"the server died ({how})" if how else "the server died"
    hint = HINT_SIGPIPE if how == "killed by SIGPIPE" else HINT_DIED
    if outcome.passed is True:
        return Outcome.fail(f"{outcome.summary}; but then {what}", hint, **outcome.figures)
    if outcome.passed is None or outcome.hint == HINT_NO_ANSWER:  # it saw only the aftermath
        return Outcome.fail(f"{what} during this check", hint, **outcome.figures)
    if "died" in outcome.summary:  # the check saw the death itself: add how
        return replace(outcome, summary=f"{outcome.summary} ({how})" if how else outcome.summary)
    return replace(outcome, summary=f"{outcome.summary}; {what}")


def _bounded(check: Check, context: Context) -> Outcome:
    """Run one check in a thread of its own; past its time bound it fails (and is left to
    end on its own bounded waits while the run goes on)."""
    limit = check.limit_s * (QUICK_LIMIT_SHARE if context.quick else 1.0)
    box: list[Outcome] = []
    failure: list[BaseException] = []

    def body() -> None:
        try:
            box.append(check.run(context))
        except BaseException as error:  # reported as the check's failure
            failure.append(error)

    thread = threading.Thread(target=body, name=f"check-{check.id}", daemon=True)
    thread.start()
    thread.join(limit)
    if thread.is_alive():
        return Outcome.fail(
            f"no verdict within {limit:g} s",
            "every wait of a correct server ends quickly: look for a client left waiting",
            limit_s=limit,
        )
    if failure:
        error = failure[0]
        return Outcome.fail(
            f"could not talk to the server: {type(error).__name__}: {error}"[:300],
            HINT_NO_ANSWER,
        )
    return box[0]
