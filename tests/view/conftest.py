"""The view tier: view processes started on this host over servers started on this host.

`view_factory` starts `python3 -m view` on an ephemeral port of 127.0.0.1 and stops it at
teardown; `browser` is a real browser, one test per engine, that fails loudly when the engine's
Debian packages are missing: deselect with -m 'not browser'.
"""

from __future__ import annotations

import abc
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from probe import procfs
from tests.host.support import REPO_ROOT, wait_until

if TYPE_CHECKING:  # selenium and websockets are imported by the engines that use them
    from selenium.webdriver.common.service import Service
    from selenium.webdriver.remote.webdriver import WebDriver
    from websockets.sync.client import ClientConnection

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


# ---------------------------------------------------------------- the browsers
# Each engine comes from Debian's packages and is started by a context manager that leaves
# no process behind, even when the start itself fails.

WINDOW = (1600, 1200)
PAGE_LOAD_TIMEOUT = 30  # seconds
START_TIMEOUT = 30.0  # seconds for a browser to start listening


class Browser(abc.ABC):
    """What a test asks of a browser, the same in every engine."""

    @abc.abstractmethod
    def get(self, url: str) -> None:
        """Open `url` afresh, returning once it has loaded."""

    @abc.abstractmethod
    def run(self, script: str) -> Any:
        """Run `script`, a function body (`return` gives its value), in the page: its value."""

    def text(self, selector: str) -> str:
        """The rendered text (innerText) of the first element matching `selector`."""
        value = self.run(
            f"const e = document.querySelector({json.dumps(selector)}); return e && e.innerText;"
        )
        assert isinstance(value, str), f"the page has no {selector}"
        return value


class WebDriverBrowser(Browser):
    """An engine driven by selenium through that engine's own WebDriver executable."""

    def __init__(self, driver: WebDriver) -> None:
        self.driver = driver

    def get(self, url: str) -> None:
        self.driver.get(url)

    def run(self, script: str) -> Any:
        return self.driver.execute_script(script)


class BidiBrowser(Browser):
    """Firefox over its built-in WebDriver BiDi: Debian ships Firefox without geckodriver."""

    def __init__(self, socket: ClientConnection) -> None:
        self.socket = socket
        self.last_id = 0
        self.command("session.new", capabilities={})
        self.context = self.command("browsingContext.getTree")["contexts"][0]["context"]

    def command(self, method: str, **params: Any) -> dict:
        """Send one BiDi command and wait for its answer: its result, or AssertionError."""
        self.last_id += 1
        self.socket.send(json.dumps({"id": self.last_id, "method": method, "params": params}))
        while True:  # past any event: none is subscribed to, but BiDi may send some anyway
            answer = json.loads(self.socket.recv(timeout=PAGE_LOAD_TIMEOUT))
            if answer.get("id") == self.last_id:
                break
        if answer.get("type") == "error":
            raise AssertionError(f"Firefox: {method}: {answer['error']}: {answer['message']}")
        return answer["result"]

    def get(self, url: str) -> None:
        self.command("browsingContext.navigate", context=self.context, url=url, wait="complete")

    def run(self, script: str) -> Any:
        # JSON.stringify in the page: plain JSON back, not BiDi's typed remote values
        function = f"function() {{ return JSON.stringify((function() {{\n{script}\n}})()); }}"
        result = self.command(
            "script.callFunction",
            functionDeclaration=function,
            target={"context": self.context},
            awaitPromise=False,
        )
        if result["type"] == "exception":
            raise AssertionError(f"the page's script failed: {result['exceptionDetails']['text']}")
        value = result["result"]
        return json.loads(value["value"]) if value["type"] == "string" else None


def own_group() -> dict[str, Any]:
    """Popen arguments for a process group of its own, so stop_group can end its helpers too.

    A new dict each time: selenium's Service pops keys from the one it is given."""
    return {"start_new_session": True}


def stop_group(proc: subprocess.Popen, grace: float = 10.0) -> None:
    """End `proc` and all of its process group: a browser's helpers can outlive their parent."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass  # the whole group is gone already
    else:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(grace)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # what SIGTERM left
    proc.wait()


@contextlib.contextmanager
def driven(service: Service, start: Callable[[], WebDriver]) -> Iterator[WebDriver]:
    """A selenium session from `start`; its driver's process group is ended afterwards."""
    try:
        driver = start()
        try:
            driver.set_page_load_timeout(PAGE_LOAD_TIMEOUT)
            yield driver
        finally:
            driver.quit()
    finally:
        # selenium stops the driver it started, not what the driver started
        if getattr(service, "process", None) is not None:
            stop_group(service.process)


CHROMIUM = ("chromium", "chromium-browser")


@contextlib.contextmanager
def chromium() -> Iterator[Browser]:
    """Headless Chromium through chromedriver (Debian's chromium, chromium-driver)."""
    binary = next((p for name in CHROMIUM if (p := shutil.which(name))), None)
    driver = shutil.which("chromedriver") or (
        "/usr/bin/chromedriver" if Path("/usr/bin/chromedriver").exists() else None
    )
    if binary is None or driver is None:
        pytest.fail(
            "the chromium browser tests need Debian's chromium and chromium-driver "
            "(apt-get install -y chromium chromium-driver fonts-dejavu-core); "
            "or deselect them with -m 'not browser'",
            pytrace=False,
        )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service as ChromeService

    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        f"--window-size={WINDOW[0]},{WINDOW[1]}",
    ):
        options.add_argument(flag)
    service = ChromeService(executable_path=driver, log_output=os.devnull, popen_kw=own_group())
    with driven(service, lambda: webdriver.Chrome(options=options, service=service)) as session:
        yield WebDriverBrowser(session)


BIDI_LISTENING = "WebDriver BiDi listening on "


def bidi_address(proc: subprocess.Popen, log: Path) -> str:
    """The ws:// address Firefox prints once its BiDi server listens (port 0: a free one)."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        for line in log.read_text(errors="replace").splitlines():
            if line.startswith(BIDI_LISTENING):
                return line.removeprefix(BIDI_LISTENING).strip()
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    tail = log.read_text(errors="replace").strip().splitlines()[-3:]
    pytest.fail(f"Firefox never opened WebDriver BiDi: {' | '.join(tail)}", pytrace=False)


@contextlib.contextmanager
def firefox() -> Iterator[Browser]:
    """Headless Firefox ESR with a throwaway profile, over WebDriver BiDi (Debian's firefox-esr)."""
    binary = shutil.which("firefox-esr") or shutil.which("firefox")
    if binary is None:
        pytest.fail(
            "the firefox browser tests need Debian's firefox-esr "
            "(apt-get install -y firefox-esr); or deselect them with -m 'not browser'",
            pytrace=False,
        )
    from websockets.sync.client import connect

    with tempfile.TemporaryDirectory(prefix="echolab-firefox-") as scratch:
        profile, log = Path(scratch, "profile"), Path(scratch, "firefox.log")
        profile.mkdir()
        argv = [binary, "--headless", "--no-remote", "--profile", str(profile)]
        argv += ["--remote-debugging-port=0"]
        # Its log goes to a file: a pipe left unread would block a chatty Firefox.
        with log.open("wb") as out:
            proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out, **own_group()
            )
        try:
            with connect(
                bidi_address(proc, log) + "/session", max_size=None, open_timeout=START_TIMEOUT
            ) as socket:
                page = BidiBrowser(socket)
                # The other engines' viewport (here --window-size left it at 1366x682).
                size = {"width": WINDOW[0], "height": WINDOW[1]}
                page.command("browsingContext.setViewport", context=page.context, viewport=size)
                yield page
        finally:
            stop_group(proc)


@contextlib.contextmanager
def xvfb_display(binary: str) -> Iterator[str]:
    """A private X display on a free number: Debian's WebKitGTK browser has no headless mode."""
    read_end, write_end = os.pipe()
    screen = f"{WINDOW[0]}x{WINDOW[1]}x24"
    proc = subprocess.Popen(
        [binary, "-displayfd", str(write_end), "-screen", "0", screen, "-nolisten", "tcp"],
        pass_fds=(write_end,),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        **own_group(),
    )
    os.close(write_end)
    try:
        # Read to the newline: a pipe closed before Xvfb's last write kills it ("Cannot write
        # display number to fd"), and WebKit then waits for a display that never comes.
        with os.fdopen(read_end) as pipe:
            number = pipe.readline().strip()
        if not number:
            pytest.fail("Xvfb exited before it opened a display", pytrace=False)
        yield f":{number}"
    finally:
        stop_group(proc)


def start_webkit(service: Service) -> WebDriver:
    """selenium's WebKitGTK session, without the warning selenium 4.27 gives about itself."""
    from selenium import webdriver

    with warnings.catch_warnings():
        # Its own call into RemoteConnection, for every browser but Chromium's.
        warnings.filterwarnings("ignore", "setting remote_server_addr", DeprecationWarning)
        return webdriver.WebKitGTK(options=webdriver.WebKitGTKOptions(), service=service)


@contextlib.contextmanager
def webkit() -> Iterator[Browser]:
    """WebKitGTK's MiniBrowser through WebKitWebDriver, on its own Xvfb display (Debian's
    webkit2gtk-driver, xvfb)."""
    driver, xvfb = shutil.which("WebKitWebDriver"), shutil.which("Xvfb")
    missing = [pkg for pkg, path in (("webkit2gtk-driver", driver), ("xvfb", xvfb)) if not path]
    if missing:
        pytest.fail(
            f"the webkit browser tests need Debian's {' and '.join(missing)} "
            f"(apt-get install -y {' '.join(missing)}); or deselect them with -m 'not browser'",
            pytrace=False,
        )
    from selenium.webdriver.webkitgtk.service import Service as WebKitService

    with xvfb_display(xvfb) as display:
        # WebKit's bubblewrap sandbox needs user namespaces, which Docker's default seccomp
        # profile (and many hardened hosts) forbid: there the web process aborts. This
        # browser loads nothing but the view on 127.0.0.1.
        env = {**os.environ, "DISPLAY": display, "WEBKIT_DISABLE_SANDBOX_THIS_IS_DANGEROUS": "1"}
        service = WebKitService(
            executable_path=driver,
            env=env,
            # selenium 4.27's WebKitGTK Service names no such key, and its base then calls
            # os.getenv(None): a TypeError before the driver starts.
            driver_path_env_key="SE_WEBKITGTKDRIVER",
            popen_kw=own_group(),
        )
        with driven(service, lambda: start_webkit(service)) as session:
            session.set_window_size(*WINDOW)
            yield WebDriverBrowser(session)


ENGINES: dict[str, Callable[[], contextlib.AbstractContextManager[Browser]]] = {
    "chromium": chromium,
    "firefox": firefox,
    "webkit": webkit,
}


@pytest.fixture(scope="module", params=list(ENGINES))
def browser(request: pytest.FixtureRequest) -> Iterator[Browser]:
    """Each engine in turn, one browser for all of a module's tests; each test navigates it."""
    with ENGINES[request.param]() as started:
        yield started


def wait_page(
    browser: Browser, script: str, check: Callable[[Any], bool], timeout: float = 20.0
) -> Any:
    """Run `script` in the page until `check` holds for what it returns."""
    deadline = time.monotonic() + timeout
    while True:
        value = browser.run(script)
        if check(value):
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"the page never showed it in {timeout} s (last: {value!r})")
        time.sleep(0.1)
