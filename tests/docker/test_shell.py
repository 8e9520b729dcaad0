"""The Linux shell (compose service `shell`) as a student with nothing but Docker uses it.

The `shell` stage is built and run locked down as compose runs it; the lab's code goes in
with put_archive, not a bind mount (inside the test container the checkout's host path is
unknown). There the book's select server is compiled with the shell's gcc and checked with
`python3 -m check --command`: it echoes, and dies of SIGPIPE on a reset peer.
"""

from __future__ import annotations

import io
import json
import os
import secrets
import shlex
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest
from docker.errors import APIError, NotFound
from docker.models.containers import Container

from tests.docker.support import REPO_ROOT, build_image, poll

pytestmark = pytest.mark.docker

TAG = os.environ.get("ECHOLAB_TAG", "latest")
USER = "10001:10001"
LAB = "/tmp/lab"  # the shell's /tmp is writable by anyone; the archive makes lab/ the user's
SHIPPED = ("check", "probe", "server", "examples/echo_selectserv.c")
LIFETIME_S = 600  # the container's own command: it ends even if this process is killed
# Every exec is bounded inside by coreutils' timeout, below the SDK's 60 s read timeout.
COMPILE_TIMEOUT_S = 45
CHECK_TIMEOUT_S = 50  # two checks on this server take seconds; listening may take 10
# What the student types in the shell.
COMPILE = "gcc -O2 -o echo_selectserv examples/echo_selectserv.c"
CHECK = (
    'python3 -m check --command "./echo_selectserv {port}" --model select'
    " --only echo-exact,abrupt-peers --json r.json"
)


def lab_archive() -> bytes:
    """check/, probe/, server/ and the C server under lab/, owned by the shell's user."""
    uid, gid = (int(part) for part in USER.split(":"))

    def owned(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
        if "__pycache__" in info.name.split("/") or info.name.endswith((".pyc", ".pyo")):
            return None
        info.uid, info.gid, info.uname, info.gname = uid, gid, "", ""
        info.mode = 0o755 if info.isdir() else 0o644
        return info

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        top = tarfile.TarInfo("lab")
        top.type = tarfile.DIRTYPE
        tar.addfile(owned(top))
        for name in SHIPPED:
            tar.add(REPO_ROOT / name, arcname=f"lab/{name}", filter=owned)
    return buffer.getvalue()


def read_file(container: Container, path: str) -> bytes:
    """One file's bytes, through the archive API (the way the lab's code went in)."""
    chunks, _stat = container.get_archive(path)
    with tarfile.open(fileobj=io.BytesIO(b"".join(chunks))) as tar:
        member = tar.extractfile(Path(path).name)
        assert member is not None, f"{path} is not a regular file"
        return member.read()


class Exec:
    def __init__(self, argv: list[str], status: int, stdout: bytes | None, stderr: bytes | None):
        self.argv, self.status = argv, status
        self.stdout = (stdout or b"").decode(errors="replace")
        self.stderr = (stderr or b"").decode(errors="replace")

    def __repr__(self) -> str:
        return f"$ {shlex.join(self.argv)}\nexit {self.status}\n{self.stdout}\n{self.stderr}"


def run_in(container: Container, argv: list[str], timeout_s: int) -> Exec:
    """argv in the lab directory, as the shell's user; killed after timeout_s (exit 124)."""
    bounded = ["timeout", "-k", "5", str(timeout_s), *argv]
    status, (stdout, stderr) = container.exec_run(bounded, workdir=LAB, demux=True)
    return Exec(argv, status, stdout, stderr)


@pytest.fixture(scope="module")
def shell_image(docker_client: docker.DockerClient) -> str:
    return build_image(docker_client, REPO_ROOT, f"echolab-shell:{TAG}", target="shell")


@pytest.fixture(scope="module")
def shell(docker_client: docker.DockerClient, shell_image: str) -> Iterator[Container]:
    """A shell container with compose's lock-down and the lab's code in LAB; removed after."""
    run = secrets.token_hex(4)
    name = f"echolab-test-shell-{run}"
    labels = {"org.echolab.test": "shell", "org.echolab.test.run": run}
    try:
        container = docker_client.containers.create(
            shell_image,
            ["sleep", str(LIFETIME_S)],
            name=name,
            labels=labels,
            # As docker-compose.yml's shell service: non-root, no capability but strace's,
            # no-new-privileges, pids and memory limits.
            user=USER,
            cap_drop=["ALL"],
            cap_add=["SYS_PTRACE"],
            security_opt=["no-new-privileges:true"],
            pids_limit=512,
            mem_limit="1g",
            # Stricter than compose, no network: the checker and the server use loopback only.
            network_mode="none",
            auto_remove=True,  # gone once `sleep` ends, even if the removal below never runs
        )
        assert container.put_archive("/tmp", lab_archive()), "put_archive failed"
        container.start()
        yield container
    finally:
        try:
            docker_client.containers.get(name).remove(force=True)
        except NotFound:
            pass  # never created, or auto-removed already
        except APIError as error:
            if error.status_code != 409:  # 409: its auto-removal is under way
                raise
        by_run = {"label": f"org.echolab.test.run={run}"}
        left = poll(
            lambda: docker_client.api.containers(all=True, filters=by_run), lambda f: not f, 10
        )
        assert left == [], f"container left behind: {[c['Names'] for c in left]}"


def test_the_shell_has_the_tools_the_lessons_use(shell: Container) -> None:
    found = run_in(shell, ["bash", "-c", "command -v ps ss strace make"], 20)
    assert found.status == 0, found
    assert [Path(line).name for line in found.stdout.split()] == ["ps", "ss", "strace", "make"]


def test_a_c_server_compiles_and_is_checked_in_the_shell(shell: Container) -> None:
    compiled = run_in(shell, shlex.split(COMPILE), COMPILE_TIMEOUT_S)
    assert compiled.status == 0, compiled

    checked = run_in(shell, shlex.split(CHECK), CHECK_TIMEOUT_S)
    print(checked)  # the report card, in pytest's output (-rA)
    assert checked.status == 1, checked  # a check failed; 2 would be "could not check"
    report: dict[str, Any] = json.loads(read_file(shell, f"{LAB}/r.json"))
    verdicts = {check["id"]: check["passed"] for check in report["checks"]}
    assert report["model"] == "select", report
    assert verdicts == {"echo-exact": True, "abrupt-peers": False}, report
