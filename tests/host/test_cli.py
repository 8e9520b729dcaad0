"""The command lines users type: help, refusals of bad options, the interactive client."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
from collections.abc import Callable

import pytest

from probe import procfs
from tests.host.support import REPO_ROOT, ClientResult, ServerProcess, wait_until

Client = Callable[..., ClientResult]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=30
    )


@pytest.mark.parametrize(
    ("argv", "options"),
    [
        (["server", "fork", "--help"], ["--host", "--port", "--max-children"]),
        (["server", "select", "--help"], ["--host", "--port", "--max-clients"]),
        (
            ["client", "--help"],
            ["--server", "--connections", "--bytes", "--script", "--stdin", "--json"],
        ),
    ],
    ids=["fork", "select", "client"],
)
def test_help_explains_each_option(argv: list[str], options: list[str]) -> None:
    done = run(*argv)
    assert done.returncode == 0, done.stderr
    for option in options:
        assert option in done.stdout


@pytest.mark.parametrize(
    "argv",
    [
        ["server", "fork", "--max-children", "0"],
        ["server", "select", "--max-clients", "0"],
        ["server", "fork", "--port", "not-a-port"],
        ["client", "--server", "127.0.0.1"],
        ["client", "--server", "127.0.0.1:1", "--bytes", "-1"],
        ["client", "--server", "127.0.0.1:1", "--bytes", "1", "--stdin"],
        ["server", "fork", "--port", "70000"],
        ["server", "select", "--port", "-1"],
        # getaddrinfo() takes the port modulo 65536: 70000 would silently mean port 4464.
        ["client", "--server", "127.0.0.1:70000"],
    ],
    ids=[
        "max-children-0",
        "max-clients-0",
        "port-word",
        "no-port",
        "negative-bytes",
        "two-modes",
        "server-port-70000",
        "server-port-negative",
        "client-port-70000",
    ],
)
def test_bad_options_are_refused_with_usage(argv: list[str]) -> None:
    done = run(*argv)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "usage:" in done.stderr


def test_the_client_fails_when_nobody_listens(client: Client) -> None:
    with socket.create_server(("127.0.0.1", 0)) as placeholder:
        port = placeholder.getsockname()[1]
    result = client(port, "--bytes", "10", "--timeout", "5")  # the port is closed now
    assert result.returncode == 1, result
    assert re.search(r"connection 0: .*refused", result.stderr, re.IGNORECASE), result


def test_the_interactive_client_echoes_lines_until_q(
    fork_server: ServerProcess, client: Client
) -> None:
    typed = b"hello\nsecond line\nq\nnever sent\n"
    result = client(fork_server.port, "--stdin", stdin=typed, timeout=20)
    assert result.returncode == 0, result
    assert "hello" in result.stdout and "second line" in result.stdout
    assert "never sent" not in result.stdout
    sent = len(b"hello\nsecond line\n")  # the quit line is not sent
    fork_server.wait_for_log(rf"client disconnected\.\.\. \S+ \({sent} bytes echoed\)")


def test_the_client_leaves_no_writer_behind(server: ServerProcess, client: Client) -> None:
    result = client(server.port, "--connections", "20", "--bytes", "50000", "--json")
    assert result.returncode == 0, result
    report = result.report()
    assert report["ok"] == 20 and report["elapsed_s"] >= 0
    # Its forked writers share its process group: none may outlive it, not even as zombies.
    wait_until(lambda: procfs.group_members(result.pid) == [], 2, what="no writer left")


def test_a_taken_port_is_one_line_not_a_traceback() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run("server", "select", "--host", "127.0.0.1", "--port", str(port))
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr


def test_bytes_sent_counts_only_what_was_sent() -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]  # bound, never listening: connect is refused
        done = run("client", "--server", f"127.0.0.1:{port}", "--bytes", "10", "--json")
    assert done.returncode == 1
    report = json.loads(done.stdout)
    assert report["bytes_sent"] == 0
