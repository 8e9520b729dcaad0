"""What a run found: one result per check, and the report that gathers them (JSON here)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

Figures = dict[str, Any]


@dataclass(frozen=True)
class Outcome:
    """What a check function returns: a verdict, one line, the figures behind it, a hint."""

    passed: bool | None  # None: skipped (the reason is the summary)
    summary: str
    figures: Figures = field(default_factory=dict)
    hint: str = ""  # the lesson, for a failure: what to change and why

    @classmethod
    def ok(cls, summary: str, **figures: Any) -> Outcome:
        return cls(True, summary, figures)

    @classmethod
    def fail(cls, summary: str, hint: str, **figures: Any) -> Outcome:
        return cls(False, summary, figures, hint)

    @classmethod
    def skip(cls, reason: str) -> Outcome:
        return cls(None, reason)


@dataclass(frozen=True)
class CheckResult:
    id: str
    title: str
    passed: bool | None
    summary: str
    figures: Figures
    hint: str
    seconds: float

    @property
    def verdict(self) -> str:
        return {True: "pass", False: "FAIL", None: "skip"}[self.passed]

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "passed": self.passed,
            "summary": self.summary,
            "figures": self.figures,
            "hint": self.hint,
        }


@dataclass
class Report:
    target: str
    model: str  # "fork" or "select": the model checked
    model_reason: str = ""  # how --model auto decided, or "given"
    checks: list[CheckResult] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        """No check failed and at least one passed (a check is skipped only after a failure,
        or when asked for by name on a model it does not apply to)."""
        verdicts = [c.passed for c in self.checks]
        return False not in verdicts and True in verdicts

    def counts(self) -> dict[str, int]:
        out = {"pass": 0, "FAIL": 0, "skip": 0}
        for c in self.checks:
            out[c.verdict] += 1
        return out

    def as_json(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "model": self.model,
            "passed": self.passed,
            "checks": [c.as_json() for c in self.checks],
        }

    def to_json(self) -> str:
        return json.dumps(self.as_json(), indent=2) + "\n"
