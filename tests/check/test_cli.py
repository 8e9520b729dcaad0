"""The command's own behaviour: bad servers and bad arguments, --list, --only/--skip, the
report files, skips with reasons, Ctrl-C. Every run is bounded and leaves nothing running."""

from __future__ import annotations

import os
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

from check.registry import CHECKS
from probe import procfs
from tests.check.support import run_check, server_command, verdicts

PY = sys.executable

SILENT = """
import socket, sys
l = socket.socket(); l.bind(("127.0.0.1", int(sys.argv[1]))); l.listen(128)
held = []
while True:
    held.append(l.accept()[0])  # accepts, never answers
"""

GARBAGE = """
import socket, sys
l = socket.socket(); l.bind(("127.0.0.1", int(sys.argv[1]))); l.listen(128)
while True:
    c = l.accept()[0]; c.sendall(b"garbage!"); c.close()
"""

# Echoes, a thread per client, but with a listen queue of one behind a slow accept loop.
TINY_BACKLOG = """
import socket, sys, threading, time
def echo(c):
    with c:
        while data := c.recv(65536):
            c.sendall(data)
l = socket.socket(); l.bind(("127.0.0.1", int(sys.argv[1]))); l.listen(0)
while True:
    threading.Thread(target=echo, args=(l.accept()[0],), daemon=True).start()
    time.sleep(0.005)
"""

# Listens, then forks without end; a pids limit (RLIMIT_NPROC, as an unused uid when we are
# root, whom the limit does not bind) stops it.
FORK_BOMB = """
import os, resource, socket, sys, time
l = socket.socket(); l.bind(("127.0.0.1", int(sys.argv[1]))); l.listen(16)
if os.getuid() == 0:
    os.setgid(54321); os.setuid(54321)
resource.setrlimit(resource.RLIMIT_NPROC, (int(sys.argv[2]), int(sys.argv[2])))
while True:
    try:
        os.fork()
    except OSError:
        time.sleep(0.2)
"""


def script(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / f"{name}.py"
    path.write_text(text)
    path.chmod(0o644)
    tmp_path.chmod(0o755)
    return str(path)


def test_list_names_every_check_in_order_and_starts_nothing() -> None:
    run = run_check("--list")
    assert run.returncode == 0
    ids = [line.split()[0] for line in run.stdout.splitlines()[1:]]
    assert ids == [c.id for c in CHECKS]
    assert len(ids) == 13


def test_a_command_that_exits_at_once_cannot_be_checked() -> None:
    run = run_check("--command", "sh -c 'echo no such port >&2; exit 3' {port}")
    assert run.returncode == 2
    assert "exited at once (exit 3)" in run.stderr and "no such port" in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1


def test_a_command_that_never_listens_is_given_up_on_in_time() -> None:
    run = run_check("--command", "sleep 60 {port}", "--listen-timeout", "2")
    assert run.returncode == 2
    assert "nothing listened on port" in run.stderr and "within 2 s" in run.stderr
    assert run.seconds < 10


def test_a_missing_program_and_bad_arguments_exit_2_with_one_line() -> None:
    for args in (
        ["--command", "no-such-program-echolab {port}"],
        ["--command", "python3 -m server fork"],  # no {port}, no --port
        ["--only", "no-such-check", "--command", "x {port}"],
        [],
    ):
        run = run_check(*args)
        assert run.returncode == 2, args
        assert run.stderr.strip().splitlines()[-1].startswith("python3 -m check: "), run.stderr


def test_a_server_that_accepts_and_never_answers_fails_echo_and_the_rest_is_skipped(
    tmp_path: Path,
) -> None:
    out = tmp_path / "r.json"
    command = f"{PY} {script(tmp_path, 'silent', SILENT)} {{port}}"
    run = run_check("--command", command, "--json", str(out), timeout=60)
    assert run.returncode == 1
    report = run.report(out)
    found = verdicts(report)
    assert found["echo-exact"] is False
    for check in report["checks"]:
        if check["id"] not in ("echo-exact", "clean-stop"):
            assert check["passed"] is None
            assert check["summary"] == "skipped: echo-exact failed"


def test_a_server_that_answers_garbage_fails_echo_exact_naming_the_bytes(tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    command = f"{PY} {script(tmp_path, 'garbage', GARBAGE)} {{port}}"
    run = run_check("--command", command, "--json", str(out), timeout=60)
    assert run.returncode == 1
    [echo] = [c for c in run.report(out)["checks"] if c["id"] == "echo-exact"]
    assert echo["passed"] is False and "bytes" in echo["summary"] and echo["hint"]


def test_a_crowd_turned_away_by_a_tiny_listen_queue_is_blamed_on_the_backlog(
    tmp_path: Path,
) -> None:
    out = tmp_path / "r.json"
    command = f"{PY} {script(tmp_path, 'backlog', TINY_BACKLOG)} {{port}}"
    run = run_check(
        "--command", command, "--only", "echo-exact,concurrent-clients", "--json", str(out)
    )  # fmt: skip
    assert run.returncode == 1, run.stdout + run.stderr
    [crowd] = [c for c in run.report(out)["checks"] if c["id"] == "concurrent-clients"]
    assert crowd["passed"] is False
    assert crowd["figures"]["listen_overflows"] > 0, crowd
    assert "listen queue was full" in crowd["summary"] and "backlog" in crowd["hint"], crowd


def test_a_server_that_forks_endlessly_is_stopped_and_leaves_nothing(tmp_path: Path) -> None:
    limit = 40 if os.getuid() == 0 else procfs.tasks_of_uid(os.getuid()) + 40
    command = f"{PY} {script(tmp_path, 'bomb', FORK_BOMB)} {{port}} {limit}"
    run = run_check("--command", command, "--quick", "--only", "echo-exact", timeout=60)
    assert run.returncode == 1, run.stdout + run.stderr
    assert "FAIL echo-exact" in run.stdout


def test_json_and_junit_have_the_documented_shape(tmp_path: Path) -> None:
    out, xml = tmp_path / "r.json", tmp_path / "r.xml"
    run = run_check(
        "--command",
        server_command("select"),
        "--only",
        "echo-exact,half-close,one-child-per-client",
        "--json",
        str(out),
        "--junit",
        str(xml),
    )
    assert run.returncode == 0, run.stdout
    report = run.report(out)
    assert set(report) == {"target", "model", "passed", "checks"}
    assert report["passed"] is True and report["model"] == "select"
    for check in report["checks"]:
        assert set(check) == {"id", "passed", "summary", "figures", "hint"}
    assert verdicts(report) == {
        "echo-exact": True,
        "half-close": True,
        "one-child-per-client": None,  # asked for by name, on a model it does not apply to
    }
    suite = ET.parse(xml).getroot()
    assert suite.tag == "testsuite" and suite.get("tests") == "3" and suite.get("skipped") == "1"
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == ["echo-exact", "half-close", "one-child-per-client"]
    assert cases[2].find("skipped") is not None


def test_only_and_skip_choose_checks_in_the_fixed_order(tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    run = run_check(
        "--command", server_command("epoll"), "--quick", "--skip",
        "echo-exact,no-stall,past-fd-setsize,concurrent-clients", "--json", str(out),
    )  # fmt: skip
    assert run.returncode == 0, run.stdout
    assert list(verdicts(run.report(out))) == [
        "half-close", "abrupt-peers", "single-process", "clean-stop",
    ]  # fmt: skip


def test_a_given_model_is_checked_as_given() -> None:
    run = run_check(
        "--command", server_command("select"), "--model", "fork", "--only",
        "echo-exact,one-child-per-client",
    )  # fmt: skip
    assert run.returncode == 1
    assert "model: fork (given" in run.stdout and "FAIL one-child-per-client" in run.stdout


def test_ctrl_c_stops_the_server_too() -> None:
    # Early: a full fork check can be done in under 3 s on an idle machine.
    run = run_check("--command", server_command("fork"), interrupt_after=1.0)
    assert run.returncode == 130, run.stdout + run.stderr
    assert "interrupted" in run.stderr
