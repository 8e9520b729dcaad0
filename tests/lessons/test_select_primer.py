"""The notes' select() primer: input is echoed, quiet time-outs are re-armed, EOF ends it."""

from __future__ import annotations

import subprocess
import sys

from tests.host.support import REPO_ROOT, LogCapture, wait_until


def primer(*args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "lab.select_primer", *args],
        cwd=REPO_ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def test_a_piped_line_comes_back_as_a_message_and_eof_ends_it() -> None:
    proc = primer()
    out, err = proc.communicate(b"hi\n", timeout=10)
    assert proc.returncode == 0, err
    assert out.decode() == "message from console: hi\n"


def test_quiet_input_times_out_again_and_again_until_a_line_arrives() -> None:
    proc = primer("--timeout", "0.3")
    assert proc.stdin is not None
    lines = LogCapture(proc.stdout, "primer-stdout")
    try:
        # Two in a row: the timeout is re-armed for every select() call.
        wait_until(
            lambda: lines.snapshot()[:2] == ["Time-out!", "Time-out!"], 10, what="two time-outs"
        )
        proc.stdin.write(b"Hello~\n")
        proc.stdin.flush()
        lines.wait_for(r"^message from console: Hello~$", timeout=10)
        proc.stdin.close()  # EOF: read() returns 0 and the loop ends
        assert proc.wait(10) == 0
        assert set(lines.snapshot()) == {"Time-out!", "message from console: Hello~"}
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
