"""Hardened by default: what Docker was asked for, and what the kernel applies to PID 1."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from docker.models.containers import Container

from probe.procfs import parse_status
from tests.docker.conftest import SERVERS
from tests.docker.support import read_proc_files

pytestmark = pytest.mark.docker

SERVICES = (*sorted(SERVERS), "fork-clients", "select-clients")
NO_CAPABILITIES = 0


def uid_of(user: str) -> str:
    return user.partition(":")[0]


@pytest.mark.parametrize("service", SERVICES)
def test_the_container_is_locked_down(
    service: str, service_container: Callable[[str], Container]
) -> None:
    attrs = service_container(service).attrs
    host = attrs["HostConfig"]
    assert host["ReadonlyRootfs"] is True
    assert [cap.upper() for cap in host["CapDrop"] or []] in (["ALL"], ["CAP_ALL"])
    assert any(
        opt.replace("=", ":") in ("no-new-privileges", "no-new-privileges:true")
        for opt in host["SecurityOpt"] or []
    ), host["SecurityOpt"]
    assert (host["PidsLimit"] or 0) > 0, "no pids limit: a fork storm would reach the host"
    assert host["Memory"] > 0, "no memory limit"
    assert uid_of(attrs["Config"]["User"]) not in ("", "0", "root")


@pytest.mark.parametrize("service", sorted(SERVERS))
def test_ports_are_published_on_loopback_only(
    service: str, service_container: Callable[[str], Container]
) -> None:
    attrs = service_container(service).attrs
    key = f"{SERVERS[service]}/tcp"
    requested = attrs["HostConfig"]["PortBindings"][key]
    bound = attrs["NetworkSettings"]["Ports"][key]
    assert requested and bound
    assert {b["HostIp"] for b in requested + bound} == {"127.0.0.1"}


@pytest.mark.parametrize("service", sorted(SERVERS))
def test_the_server_runs_unprivileged(
    service: str, service_container: Callable[[str], Container]
) -> None:
    files = read_proc_files(service_container(service), "/proc/1/status", "/proc/1/mounts")
    status = parse_status(files["/proc/1/status"])
    assert all(int(uid) != 0 for uid in status["Uid"].split()), status["Uid"]
    assert all(int(gid) != 0 for gid in status["Gid"].split()), status["Gid"]
    for capabilities in ("CapPrm", "CapEff", "CapBnd"):
        assert int(status[capabilities], 16) == NO_CAPABILITIES, (capabilities, status)
    assert status["NoNewPrivs"] == "1"
    root_options = [
        line.split()[3].split(",")
        for line in files["/proc/1/mounts"].splitlines()
        if line.split()[1] == "/"
    ]
    assert root_options and "ro" in root_options[-1], "the root filesystem is writable"
