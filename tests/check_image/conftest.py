"""`python3 -m check --image` fixtures: the two images it needs, built once per session.

The lab image (with check/ and probe/ in it) is both a server to check and the checker's own
image; the examples image holds the book's C programs. Tags end in ECHOLAB_TAG, so parallel
sessions of different helpers never share one. No engine is a failure, not a skip.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import docker
import pytest

from tests.docker.conftest import docker_client  # noqa: F401  # the one engine fixture
from tests.docker.support import REPO_ROOT, build_image

TAG = os.environ.get("ECHOLAB_TAG", "latest")


@pytest.fixture(scope="session")
def lab_image(docker_client: docker.DockerClient) -> str:  # noqa: F811
    return build_image(docker_client, REPO_ROOT, f"echolab:{TAG}", target="lab")


@pytest.fixture(scope="session")
def examples_image(docker_client: docker.DockerClient) -> str:  # noqa: F811
    return build_image(docker_client, REPO_ROOT / "examples", f"echolab-examples:{TAG}")


@pytest.fixture
def left_behind(docker_client: docker.DockerClient) -> Callable[[str], list[str]]:  # noqa: F811
    """What a run named `run` (ECHOLAB_CHECK_RUN) left on the engine: containers, networks."""

    def find(run: str) -> list[str]:
        # The low-level calls: the high-level list inspects each, racing their removal.
        by_run = {"label": f"echolab.check.run={run}"}
        found = [c["Names"][0] for c in docker_client.api.containers(all=True, filters=by_run)]
        found += [n["Name"] for n in docker_client.api.networks(filters=by_run)]
        return found

    return find
