"""Docker-tier fixtures over pytest-docker: each has one job and can be overridden by name.

One compose stack per session, under a project name of its own and on ephemeral host ports,
so parallel runs never collide. It is torn down even when `up` fails, which pytest-docker's
own setup does not do.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable, Iterator

import docker
import pytest
from docker.models.containers import Container
from pytest_docker.plugin import DockerComposeExecutor, Services, get_docker_services

from tests.docker.support import (
    IN_CONTAINER,
    REPO_ROOT,
    Server,
    address_of,
    compose_labels,
    container_logs,
    detach,
    detect_compose_command,
    health_of,
    poll,
    remove_stale_stacks,
    resolve_base_image,
    stack_project_name,
)

SERVERS = {"fork-server": 9000, "select-server": 9001}
SCRIPTED_CLIENTS = ("fork-clients", "select-clients")
SCRIPTED_CLIENTS_TIMEOUT_SECONDS = 60.0
HEALTHY_TIMEOUT_SECONDS = 90.0
STOPS_STACK = "stops_stack"

_timings = pytest.StashKey[dict[str, float]]()


def _interrupted(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", f"{STOPS_STACK}: stops the session's stack; runs after every other test"
    )
    # SIGTERM (`docker stop`, a CI cancel) as Ctrl-C: pytest unwinds, and every stack's
    # teardown runs instead of the process just dying with the stack left running.
    signal.signal(signal.SIGTERM, _interrupted)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that stop the servers run last, whatever order they were collected in."""
    items.sort(key=lambda item: item.get_closest_marker(STOPS_STACK) is not None)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    timings = terminalreporter.config.stash.get(_timings, None)
    if timings:
        terminalreporter.write_line(
            "echolab stack: `up` took {up:.1f} s, both servers healthy {healthy:.1f} s "
            "after `up` started".format(**timings)
        )


# ---------------------------------------------------------------- the engine and the tool


@pytest.fixture(scope="session")
def docker_client() -> Iterator[docker.DockerClient]:
    """A docker SDK client to a live engine; no engine is a failure, not a skip."""
    unix_socket = "DOCKER_HOST" not in os.environ and os.path.exists("/var/run/docker.sock")
    if IN_CONTAINER and not unix_socket and "DOCKER_HOST" not in os.environ:
        pytest.fail(
            "the engine's socket is not mounted in this container: run the suite with "
            "`docker compose -f docker-compose.test.yml run --rm test`, "
            'or `-m "not docker"` for the other tiers',
            pytrace=False,
        )
    problem = None
    try:
        client = docker.from_env()
        client.ping()
    except Exception as error:
        problem = error
    if problem is not None:  # failed outside the handler: the message alone, no chained trace
        pytest.fail(
            f"Docker engine not reachable: {problem}; start Docker, or run "
            '`pytest -m "not docker"` for the host tier only',
            pytrace=False,
        )
    for line in remove_stale_stacks(client):
        print(line, flush=True)
    yield client
    client.close()


@pytest.fixture(scope="session")
def docker_compose_command() -> str:
    command = detect_compose_command()
    if command is None:
        pytest.fail(
            "neither `docker compose` (v2) nor `docker-compose` (v1) answers `version`; "
            'install one, or run `pytest -m "not docker"` for the host tier only',
            pytrace=False,
        )
    return command


@pytest.fixture(scope="session")
def docker_compose_file() -> str:
    return str(REPO_ROOT / "docker-compose.yml")


@pytest.fixture(scope="session")
def docker_compose_project_name() -> str:
    return stack_project_name("session")


@pytest.fixture(scope="session")
def docker_setup() -> list[str]:
    # `--wait` exists in v2 only; the health wait is done below for both.
    return ["up --build -d"]


@pytest.fixture(scope="session")
def docker_cleanup() -> list[str]:
    # The images stay: they are the cache for the next run.
    return ["down -v --remove-orphans"]


@pytest.fixture(scope="session")
def compose_environment() -> Iterator[dict[str, str]]:
    """What the compose command sees: ephemeral host ports and a base image that exists.

    pytest-docker runs compose through the shell with this process's environment, so the
    variables are set here for the session and restored after it.
    """
    problem = None
    try:
        base = os.environ.get("PYTHON_IMAGE") or resolve_base_image()
    except Exception as error:
        problem = error
    if problem is not None:
        pytest.fail(f"no Python base image for the build: {problem}", pytrace=False)
    # Every published port ephemeral: a demo (or anything else) on 9000, 9001 or 8080 stays
    # undisturbed, and the stack never fails with "port is already allocated".
    ports = ("FORK", "SELECT", "VIEW", "DELAY")
    env = {f"ECHOLAB_{name}_PORT": "" for name in ports} | {"PYTHON_IMAGE": base}
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        yield env


# ---------------------------------------------------------------- the stack


def _compose_executor(command: str, files: list[str] | str, project: str) -> DockerComposeExecutor:
    return DockerComposeExecutor(command, files, project)


def _find_container(client: docker.DockerClient, project: str, service: str) -> Container:
    found = client.containers.list(all=True, filters={"label": compose_labels(project, service)})
    if len(found) != 1:
        raise LookupError(f"{len(found)} containers for service {service} of project {project}")
    return found[0]


def _wait_healthy(client: docker.DockerClient, project: str, timeout: float) -> None:
    """Every server's own echo healthcheck passes; fail at once if one dies or turns unhealthy."""
    deadline = time.monotonic() + timeout
    pending = set(SERVERS)
    while pending:
        for service in sorted(pending):
            container = _find_container(client, project, service)
            health = health_of(container)
            if health == "healthy":
                pending.discard(service)
            elif health == "unhealthy" or container.status in ("exited", "dead"):
                raise RuntimeError(
                    f"{service} is {container.status}/{health}:\n{container_logs(container, 40)}"
                )
        if pending and time.monotonic() > deadline:
            raise TimeoutError(f"not healthy within {timeout} s: {', '.join(sorted(pending))}")
        if pending:
            time.sleep(0.25)


@pytest.fixture(scope="session")
def docker_services(
    pytestconfig: pytest.Config,
    docker_client: docker.DockerClient,
    compose_environment: dict[str, str],
    docker_compose_command: str,
    docker_compose_file: list[str] | str,
    docker_compose_project_name: str,
    docker_setup: list[str] | str,
    docker_cleanup: list[str] | str,
) -> Iterator[Services]:
    """pytest-docker's stack, plus: torn down when `up` fails, and yielded only once healthy."""
    compose = _compose_executor(
        docker_compose_command, docker_compose_file, docker_compose_project_name
    )
    started = time.monotonic()
    with contextlib.ExitStack() as stack:
        problem = None
        try:
            services = stack.enter_context(
                get_docker_services(
                    docker_compose_command,
                    docker_compose_file,
                    docker_compose_project_name,
                    docker_setup,
                    docker_cleanup,
                )
            )
        except Exception as error:
            problem = f"{error}\n{_tear_down_after_failed_up(compose, docker_cleanup)}"
        except BaseException:  # a pytest-timeout or Ctrl-C during `up`: clean up, go on failing
            _tear_down_after_failed_up(compose, docker_cleanup)
            raise
        if problem is not None:
            pytest.fail(f"bringing the stack up failed: {problem}", pytrace=False)
        up_done = time.monotonic()
        # Runs before pytest-docker's `down` (last in, first out): a network this
        # container joined could not be removed.
        stack.callback(detach, docker_client, [f"{docker_compose_project_name}_default"])
        # From here on, pytest-docker's own `finally` runs the clean-up, whatever happens.
        try:
            _wait_healthy(docker_client, docker_compose_project_name, HEALTHY_TIMEOUT_SECONDS)
        except (RuntimeError, TimeoutError, LookupError) as error:
            problem = str(error)
        if problem is not None:
            pytest.fail(f"the stack did not become healthy: {problem}", pytrace=False)
        pytestconfig.stash[_timings] = {
            "up": up_done - started,
            "healthy": time.monotonic() - started,
        }
        yield services


def _tear_down_after_failed_up(compose: DockerComposeExecutor, cleanup: list[str] | str) -> str:
    """Best effort: keep the logs for the failure message, then remove whatever was created."""
    logs = ""
    with contextlib.suppress(Exception):
        logs = compose.execute("logs --no-color --tail=40").decode(errors="replace")
    for command in [cleanup] if isinstance(cleanup, str) else cleanup or ["down -v"]:
        with contextlib.suppress(Exception):
            compose.execute(command)
    return logs


@pytest.fixture(scope="session")
def compose(
    docker_services: Services,
    docker_compose_command: str,
    docker_compose_file: list[str] | str,
    docker_compose_project_name: str,
) -> DockerComposeExecutor:
    """Run a compose subcommand against the session's stack (same tool, project and env)."""
    return _compose_executor(
        docker_compose_command, docker_compose_file, docker_compose_project_name
    )


@pytest.fixture(scope="session")
def service_container(
    docker_services: Services,
    docker_client: docker.DockerClient,
    docker_compose_project_name: str,
) -> Callable[[str], Container]:
    """service_container(name): the stack's container for a compose service, found by label."""

    def find(service: str) -> Container:
        return _find_container(docker_client, docker_compose_project_name, service)

    return find


# ---------------------------------------------------------------- the servers under test


def _server(services: Services, find: Callable[[str], Container], service: str) -> Server:
    container = find(service)
    host, port = address_of(container.client, container, SERVERS[service])
    return Server(service, container, port, host)


@pytest.fixture(scope="session")
def fork_server(docker_services: Services, service_container: Callable[[str], Container]) -> Server:
    return _server(docker_services, service_container, "fork-server")


@pytest.fixture(scope="session")
def select_server(
    docker_services: Services, service_container: Callable[[str], Container]
) -> Server:
    return _server(docker_services, service_container, "select-server")


@pytest.fixture(params=sorted(SERVERS))
def server(
    request: pytest.FixtureRequest,
    docker_services: Services,
    service_container: Callable[[str], Container],
) -> Server:
    """Each server in turn."""
    return _server(docker_services, service_container, request.param)


@pytest.fixture(scope="session")
def scripted_clients_done(
    service_container: Callable[[str], Container],
) -> dict[str, Container]:
    """The stack's own client containers have finished: the servers serve nobody else now.

    Tests that count a server's connections or children use this, so the demo's clients
    (running for a few seconds after `up`) are not counted as theirs.
    """

    def states() -> dict[str, Container]:
        return {service: service_container(service) for service in SCRIPTED_CLIENTS}

    containers = poll(
        states,
        lambda found: all(c.status in ("exited", "dead") for c in found.values()),
        SCRIPTED_CLIENTS_TIMEOUT_SECONDS,
    )
    running = [s for s, c in containers.items() if c.status not in ("exited", "dead")]
    if running:
        pytest.fail(
            f"scripted clients still running after {SCRIPTED_CLIENTS_TIMEOUT_SECONDS} s: {running}",
            pytrace=False,
        )
    return containers
