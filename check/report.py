"""How a run is shown: a line per check as it completes, a summary; JSON and JUnit files.

On a terminal the current check shows as a progress line that its verdict replaces; piped,
only the finished lines, plain. A failure's line is followed by its hint: the lesson.
"""

from __future__ import annotations

import os
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import TextIO

from check.registry import Check
from check.results import CheckResult, Report

MARKS = {True: "PASS", False: "FAIL", None: "SKIP"}
COLOURS = {True: "\033[32m", False: "\033[31m", None: "\033[33m"}
RESET = "\033[0m"


class TextReporter:
    """Lines on a stream; progress and colour only when the stream is a terminal that can
    show them (not TERM=dumb), and colour not when NO_COLOR is set (no-color.org)."""

    def __init__(self, stream: TextIO | None = None, tty: bool | None = None) -> None:
        self.stream = stream or sys.stdout
        if tty is None:
            tty = self.stream.isatty() and os.environ.get("TERM") != "dumb"
        self.tty = tty
        self.colour = tty and not os.environ.get("NO_COLOR")

    def _write(self, text: str) -> None:
        self.stream.write(text)
        self.stream.flush()

    def note(self, text: str) -> None:
        self._write(f"{text}\n")

    def check_started(self, check: Check, index: int, total: int) -> None:
        if self.tty:
            self._write(f"[{index:>2}/{total}] {check.id} ...")

    def check_done(self, result: CheckResult, index: int, total: int) -> None:
        mark = MARKS[result.passed]
        if self.colour:
            mark = f"{COLOURS[result.passed]}{mark}{RESET}"
        if self.tty:
            self._write("\r\033[K")  # over the progress line
        took = f"({result.seconds:.1f} s)"
        self._write(f"[{index:>2}/{total}] {mark} {result.id:<25} {result.summary} {took}\n")
        if result.hint and result.passed is False:
            self._write(f"        hint: {result.hint}\n")

    def finish(self, report: Report) -> None:
        counts = report.counts()
        verdict = "PASSED" if report.passed else "FAILED"
        self._write(
            f"{verdict}: {counts['pass']} passed, {counts['FAIL']} failed, "
            f"{counts['skip']} skipped in {report.seconds:.1f} s "
            f"({report.model} model: {report.target})\n"
        )


class QuietReporter:
    """Says nothing (the tests and callers that only want the Report)."""

    def note(self, text: str) -> None:
        pass

    def check_started(self, check: Check, index: int, total: int) -> None:
        pass

    def check_done(self, result: CheckResult, index: int, total: int) -> None:
        pass

    def finish(self, report: Report) -> None:
        pass


def write_json(report: Report, path: str) -> None:
    Path(path).write_text(report.to_json())


def junit_xml(report: Report) -> str:
    """One <testsuite>, one <testcase> per check: <failure> for a fail, <skipped> for a skip."""
    counts = report.counts()
    suite = ET.Element(
        "testsuite",
        name="echolab-check",
        tests=str(len(report.checks)),
        failures=str(counts["FAIL"]),
        errors="0",
        skipped=str(counts["skip"]),
        time=f"{report.seconds:.2f}",
    )
    properties = ET.SubElement(suite, "properties")
    ET.SubElement(properties, "property", name="target", value=report.target)
    ET.SubElement(properties, "property", name="model", value=report.model)
    for result in report.checks:
        case = ET.SubElement(
            suite,
            "testcase",
            classname=f"check.{report.model}",
            name=result.id,
            time=f"{result.seconds:.2f}",
        )
        if result.passed is False:
            failure = ET.SubElement(case, "failure", message=result.summary)
            failure.text = f"{result.summary}\nhint: {result.hint}\nfigures: {result.figures}"
        elif result.passed is None:
            ET.SubElement(case, "skipped", message=result.summary)
        else:
            ET.SubElement(case, "system-out").text = f"{result.summary}\nfigures: {result.figures}"
    ET.indent(suite)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suite, "unicode") + "\n"


def write_junit(report: Report, path: str) -> None:
    Path(path).write_text(junit_xml(report))
