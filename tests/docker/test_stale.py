"""A stack left by an interrupted run is found by its project label and removed; a live run's
stack and everything else on the engine are left alone."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator

import docker
import pytest
from docker.errors import NotFound

from tests.docker.support import PROJECT_PREFIX, owner_token, remove_stale_stacks

pytestmark = pytest.mark.docker

LABEL = "com.docker.compose.project"


@pytest.fixture
def labelled_networks(docker_client: docker.DockerClient) -> Iterator[dict[str, str]]:
    """Three networks as compose labels them: a dead run's, this live run's, and a stranger's."""
    tag = secrets.token_hex(3)
    projects = {
        "dead": f"{PROJECT_PREFIX}-stale-c000000dead00-1-{tag}",  # its test container is gone
        "live": f"{PROJECT_PREFIX}-stale-{owner_token()}-{os.getpid()}-{tag}",
        "other": f"someone-else-{tag}",
    }
    made = {
        kind: docker_client.networks.create(f"{name}_default", labels={LABEL: name}).id
        for kind, name in projects.items()
    }
    yield made
    for network_id in made.values():
        with contextlib.suppress(NotFound):
            docker_client.networks.get(network_id).remove()


def test_only_the_dead_runs_stack_is_removed(
    docker_client: docker.DockerClient, labelled_networks: dict[str, str]
) -> None:
    lines = remove_stale_stacks(docker_client)
    left = {n.id for n in docker_client.networks.list()}
    assert labelled_networks["dead"] not in left
    assert labelled_networks["live"] in left
    assert labelled_networks["other"] in left
    assert [line for line in lines if "-stale-c000000dead00-" in line], lines
