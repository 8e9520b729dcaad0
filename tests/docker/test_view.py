"""The compose stack's live view serves a snapshot with both servers (self-contained stack).

Its own project name and ephemeral host ports; torn down (containers, network) at the end.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import docker
import pytest

from tests.docker.support import address_of, compose_labels, detach

pytestmark = pytest.mark.docker

REPO = Path(__file__).resolve().parents[2]
SERVICES = ("view", "fork-view-agent", "select-view-agent")


def compose_command() -> list[str]:
    if subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    pytest.fail("neither 'docker compose' nor 'docker-compose' is installed", pytrace=False)


def test_the_stacks_view_shows_both_servers() -> None:
    project = f"view-test-{secrets.token_hex(3)}"
    env = {
        **os.environ,
        "ECHOLAB_FORK_PORT": "",
        "ECHOLAB_SELECT_PORT": "",
        "ECHOLAB_VIEW_PORT": "",
        "ECHOLAB_TAG": os.environ.get("ECHOLAB_TAG", "view"),
    }
    env.setdefault("PYTHON_IMAGE", "echolab/python-base:trixie")
    compose = [*compose_command(), "-p", project]
    try:
        subprocess.run(
            [*compose, "up", "--build", "-d", *SERVICES],
            cwd=REPO,
            env=env,
            check=True,
            capture_output=True,
            timeout=600,
        )
        # 127.0.0.1 and the published port from the host; by name on its network from the
        # test container (support.address_of), whose loopback is its own.
        client = docker.from_env()
        (view,) = client.containers.list(filters={"label": compose_labels(project, "view")})
        host, port = address_of(client, view, 8080)
        url = f"http://{host}:{port}/api/snapshot"
        deadline, seen = time.monotonic() + 90, {}
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    servers = json.loads(response.read())["servers"]
                seen = {s["service"]: s for s in servers if not s.get("error")}
            except OSError:
                pass
            if {"fork-server", "select-server"} <= set(seen):
                break
            time.sleep(0.5)
        assert set(seen) >= {"fork-server", "select-server"}, f"the view shows {seen}"
        assert seen["fork-server"]["model"] == "fork"
        assert seen["select-server"]["model"] == "select"
        parent = seen["fork-server"]["processes"][0]
        assert parent["role"] == "parent" and parent["sockets"][0]["kind"] == "listen"
    finally:
        detach(docker.from_env(), [f"{project}_default"])
        subprocess.run(
            [*compose, "down", "-v", "--remove-orphans"],
            cwd=REPO,
            env=env,
            capture_output=True,
            timeout=120,
        )
