"""The view tier: view processes started on this host over servers started on this host.

`view_factory` starts `python3 -m view` on an ephemeral port of 127.0.0.1 and stops it at
teardown; `browser` is a headless Chromium (Debian's chromium + chromium-driver) that fails
loudly when either is missing: deselect with -m 'not browser'.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from probe import procfs
from tests.host.support import REPO_ROOT, wait_until

HOST = "127.0.0.1"


@dataclass
class ViewProcess:
    proc: subprocess.Popen
    url: str

    @property
    def pid(self) -> int:
        return self.proc.pid

    def get(self, path: str, timeout: float = 10.0) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(self.url + path, timeout=timeout) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()

    def snapshot(self) -> dict:
        status, body = self.get("/api/snapshot")
        assert status == 200, f"/api/snapshot answered {status}"
        return json.loads(body)

    def server(self, service: str, port: int | None = None) -> dict | None:
        """The first server document of `service` (listening on `port`, if given)."""
        for doc in self.snapshot()["servers"]:
            if doc["service"] == service and (port is None or doc.get("port") == port):
                return doc
        return None

    def wait_server(
        self,
        service: str,
        check: Callable[[dict], bool],
        timeout: float = 20.0,
        port: int | None = None,
        what: str = "the view to show it",
    ) -> dict:
        def ready() -> dict | None:
            doc = self.server(service, port)
            return doc if doc and not doc.get("error") and check(doc) else None

        return wait_until(ready, timeout, interval=0.1, what=what)

    def threads(self) -> int:
        return procfs.thread_count(self.pid) or 0

    def fds(self) -> int:
        return procfs.open_fd_count(self.pid)


StartView = Callable[..., ViewProcess]


@pytest.fixture
def view_factory() -> Iterator[StartView]:
    """start(("fork-server", port), ..., extra args): a view on 127.0.0.1:<ephemeral>."""
    started: list[subprocess.Popen] = []

    def start(*services: tuple[str, int], args: tuple[str, ...] = ()) -> ViewProcess:
        argv = [sys.executable, "-m", "view", "--listen", f"{HOST}:0", "--interval", "0.25"]
        for name, port in services:
            argv += ["--local", f"{name}={port}"]
        proc = subprocess.Popen(
            [*argv, *args],
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        started.append(proc)
        line = proc.stdout.readline() if proc.stdout else ""
        assert line.startswith("view on http://"), f"the view did not start: {line!r}"
        return ViewProcess(proc, line.split()[2].rstrip("/"))

    yield start
    for proc in started:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        if proc.stdout:
            proc.stdout.close()


@contextlib.contextmanager
def held_clients(port: int, count: int) -> Iterator[list[socket.socket]]:
    """`count` connections, each proven served by one echo, closed on exit."""
    socks: list[socket.socket] = []
    try:
        for i in range(count):
            sock = socket.create_connection((HOST, port), timeout=10)
            socks.append(sock)
            message = f"hello {i}\n".encode()
            sock.sendall(message)
            got = b""
            while len(got) < len(message) and (chunk := sock.recv(64)):
                got += chunk
            assert got == message, f"connection {i} was not echoed: {got!r}"
        yield socks
    finally:
        for sock in socks:
            sock.close()


# ---------------------------------------------------------------- the headless browser

CHROMIUM = ("chromium", "chromium-browser")
DRIVER = "chromedriver"


@pytest.fixture(scope="session")
def browser_binaries() -> tuple[str, str]:
    binary = next((p for name in CHROMIUM if (p := shutil.which(name))), None)
    driver = shutil.which(DRIVER) or (
        "/usr/bin/chromedriver" if Path("/usr/bin/chromedriver").exists() else None
    )
    if binary is None or driver is None:
        pytest.fail(
            "the browser tests need Debian's chromium and chromium-driver "
            "(apt-get install -y chromium chromium-driver fonts-dejavu-core); "
            "or deselect them with -m 'not browser'",
            pytrace=False,
        )
    return binary, driver


@pytest.fixture
def browser(browser_binaries: tuple[str, str]) -> Iterator[object]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary, driver = browser_binaries
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1600,1200",
    ):
        options.add_argument(flag)
    service = Service(executable_path=driver, log_output=os.devnull)
    session = webdriver.Chrome(options=options, service=service)
    session.set_page_load_timeout(30)
    try:
        yield session
    finally:
        session.quit()


def wait_page(
    session: object, script: str, check: Callable[[object], bool], timeout: float = 20.0
) -> object:
    """Run `script` in the page until `check` holds for what it returns."""
    deadline = time.monotonic() + timeout
    while True:
        value = session.execute_script(script)  # type: ignore[attr-defined]
        if check(value):
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"the page never showed it in {timeout} s (last: {value!r})")
        time.sleep(0.1)
