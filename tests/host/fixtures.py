"""Fixtures for every tier that runs the programs as host processes (host, lessons, faults).

Registered once for the whole suite in tests/conftest.py (`pytest_plugins`); each has one
job and can be overridden by name in a directory's conftest.py.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from probe.limits import more_open_files
from tests.host.support import ClientResult, ServerProcess, run_client, start_server

StartServer = Callable[..., ServerProcess]


@pytest.fixture
def server_factory() -> Iterator[StartServer]:
    """start(model, *args, user=None, group=None): a listening server, stopped at teardown."""
    started: list[ServerProcess] = []

    def start(model: str, *args: str, **kwargs: object) -> ServerProcess:
        server = start_server(model, *args, **kwargs)  # type: ignore[arg-type]
        started.append(server)
        return server

    yield start
    for server in started:
        server.cleanup()


@pytest.fixture(params=["fork", "select", "epoll"])
def server(request: pytest.FixtureRequest, server_factory: StartServer) -> ServerProcess:
    """Each server model in turn, with default options (epoll: select's logic, another wait)."""
    return server_factory(request.param)


@pytest.fixture
def fork_server(server_factory: StartServer) -> ServerProcess:
    return server_factory("fork")


@pytest.fixture
def select_server(server_factory: StartServer) -> ServerProcess:
    return server_factory("select")


@pytest.fixture
def no_fd_cap_select(server_factory: StartServer, many_fds: int) -> ServerProcess:
    """A select server with --no-fd-cap, and room in this process for 1,100 clients of it."""
    assert many_fds > 1100 + 64, "this process needs a descriptor per connection"
    server = server_factory("select", "--no-fd-cap")
    server.wait_for_log(r"BREAK-IT --no-fd-cap")
    return server


@pytest.fixture
def client() -> Callable[..., ClientResult]:
    """client(port, *args, timeout=60, stdin=None): run the split-I/O client to completion."""
    return run_client


@pytest.fixture
def many_fds() -> Iterator[int]:
    """Raise this process's RLIMIT_NOFILE soft limit to the hard limit; restore it after."""
    with more_open_files() as limit:
        yield limit
