"""The text report: progress and colour on a terminal, plain lines when piped, NO_COLOR kept."""

from __future__ import annotations

import io

import pytest

from check.registry import BY_ID
from check.report import TextReporter
from check.results import CheckResult

FAILED = CheckResult("reaping", "title", False, "3 zombies", {}, "loop on waitpid", 1.0)


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def shown(stream: io.StringIO) -> str:
    reporter = TextReporter(stream)
    reporter.check_started(BY_ID["reaping"], 6, 11)
    reporter.check_done(FAILED, 6, 11)
    return stream.getvalue()


def test_piped_output_is_plain_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert shown(io.StringIO()) == (
        "[ 6/11] FAIL reaping                   3 zombies (1.0 s)\n        hint: loop on waitpid\n"
    )


def test_a_terminal_gets_a_progress_line_and_colour(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm")
    text = shown(Terminal())
    assert text.startswith("[ 6/11] reaping ...\r\033[K")
    assert "\033[31mFAIL\033[0m" in text


def test_no_color_keeps_the_progress_and_drops_the_colour(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("TERM", "xterm")
    text = shown(Terminal())
    assert "\r\033[K" in text and "\033[31m" not in text and "FAIL reaping" in text


def test_a_dumb_terminal_gets_plain_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TERM", "dumb")
    assert "\033" not in shown(Terminal()) and "\r" not in shown(Terminal())
