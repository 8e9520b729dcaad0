"""Locked down: the running stack's containers, as Docker configured them and as the kernel
and the filesystem inside show them.

Non-root, read-only root filesystem, no capability (CapEff 0), no-new-privileges, pids and
memory limits, ports on 127.0.0.1 only, no secret in the environment or the filesystem, and
an image with nothing beyond what runs: no compiler, no pip, no package caches.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import pytest
from docker.models.containers import Container

from probe.procfs import parse_status
from tests.docker.conftest import SCRIPTED_CLIENTS, SERVERS
from tests.docker.support import read_proc_files
from tests.faults.figures import record

pytestmark = pytest.mark.docker

ALL_SERVICES = (*sorted(SERVERS), *SCRIPTED_CLIENTS)
SECRET_NAME = re.compile(r"PASSWORD|PASSWD|TOKEN|SECRET|KEY|CREDENTIAL", re.IGNORECASE)
# apt's own binary comes with any Debian base, official or ours; what must not ship is a
# compiler, an installer the app could use, or a package cache.
TOOLS_THAT_DO_NOT_RUN_HERE = ("gcc", "cc", "c++", "g++", "clang", "make", "pip", "pip3")

# Runs inside a server container (stdlib only, writes nothing but the attempts below): what is
# on the filesystem that should not be, and whether anything on / can be written.
INSPECT = r"""
import glob, importlib.util, json, os, shutil, stat, sys
KEY_NAMES = ("id_rsa", "id_dsa", "id_ecdsa", "id_ed25519", ".netrc", ".git-credentials",
             ".pypirc", ".env", ".npmrc", ".dockercfg")
KEY_SUFFIXES = (".pem", ".key", ".p12", ".pfx", ".jks", ".keystore")
root_dev = os.stat("/").st_dev
keys, private = [], []
for top, dirs, files in os.walk("/"):
    dirs[:] = [d for d in dirs
               if os.lstat(os.path.join(top, d)).st_dev == root_dev]  # -xdev: no /proc, /sys
    for name in files:
        path = os.path.join(top, name)
        if name.startswith(KEY_NAMES) or name.endswith(KEY_SUFFIXES):
            keys.append(path)
        try:
            info = os.lstat(path)
            if stat.S_ISREG(info.st_mode) and info.st_size < 1 << 20:
                with open(path, "rb") as f:
                    if b"PRIVATE KEY-----" in f.read():
                        private.append(path)
        except OSError:
            pass
writable = []
for place in ("/", "/app", "/tmp", "/var/tmp", os.path.expanduser("~")):
    try:
        probe = os.path.join(place, ".echolab-write-test")
        with open(probe, "w"):
            pass
        os.remove(probe)
        writable.append(place)
    except OSError:
        pass
tools = {t: shutil.which(t) for t in sys.argv[1:]}
lists = [p for p in glob.glob("/var/lib/apt/lists/*") if not p.endswith(("/lock", "/partial"))]
print(json.dumps({
    "key_files": keys,
    "private_keys": private,
    "writable": writable,
    "tools": {t: p for t, p in tools.items() if p},
    "pip_module": importlib.util.find_spec("pip") is not None,
    "apt_archives": [p for p in glob.glob("/var/cache/apt/archives/*.deb")],
    "apt_lists": lists,
    "pip_caches": [p for p in glob.glob("/root/.cache/pip") + glob.glob("/*/.cache/pip")],
}))
"""


def inspect_inside(container: Container) -> dict[str, Any]:
    code, (stdout, stderr) = container.exec_run(
        ["python3", "-c", INSPECT, *TOOLS_THAT_DO_NOT_RUN_HERE], demux=True
    )
    assert code == 0, stderr
    return dict(json.loads(stdout))


@pytest.mark.parametrize("service", ALL_SERVICES)
def test_docker_runs_it_locked_down(
    service: str, service_container: Callable[[str], Container]
) -> None:
    attrs = service_container(service).attrs
    host, config = attrs["HostConfig"], attrs["Config"]
    user = (config.get("User") or "").partition(":")[0]
    secrets = [v.partition("=")[0] for v in config.get("Env") or [] if SECRET_NAME.search(v)]
    engine_sockets = [m["Source"] for m in attrs["Mounts"] if m["Source"].endswith("docker.sock")]
    bindings = [
        b["HostIp"] for values in (host.get("PortBindings") or {}).values() for b in values or []
    ]
    record(
        "lockdown (docker)",
        service,
        user=config.get("User"),
        read_only=host["ReadonlyRootfs"],
        cap_drop=host["CapDrop"],
        security_opt=host["SecurityOpt"],
        pids_limit=host["PidsLimit"],
        memory_mib=(host["Memory"] or 0) // 2**20,
        port_hosts=sorted(set(bindings)),
        secret_env=secrets,
        engine_socket=engine_sockets,
    )
    assert engine_sockets == [], "the engine's socket (root on the engine) is never mounted"
    assert user not in ("", "0", "root"), "runs as a non-root user"
    assert host["ReadonlyRootfs"] is True
    assert [c.upper() for c in host["CapDrop"] or []] in (["ALL"], ["CAP_ALL"])
    assert host["CapAdd"] in (None, [])
    assert host["Privileged"] is False
    assert any(o.replace("=", ":").startswith("no-new-privileges") for o in host["SecurityOpt"])
    assert (host["PidsLimit"] or 0) > 0 and (host["Memory"] or 0) > 0
    assert set(bindings) <= {"127.0.0.1"}, "ports are published on loopback only"
    assert secrets == [], "no password, token, secret or key in the environment"


@pytest.mark.parametrize("service", sorted(SERVERS))
def test_inside_the_server_nothing_is_privileged_writable_or_secret(
    service: str, service_container: Callable[[str], Container]
) -> None:
    container = service_container(service)
    status = parse_status(read_proc_files(container, "/proc/1/status")["/proc/1/status"])
    found = inspect_inside(container)
    record(
        "lockdown inside (docker)",
        service,
        uid=status["Uid"],
        cap_eff=status["CapEff"],
        no_new_privs=status["NoNewPrivs"],
        writable=found["writable"],
        key_files=found["key_files"],
        private_keys=found["private_keys"],
        tools=found["tools"],
        pip=found["pip_module"],
        apt_archives=len(found["apt_archives"]),
        apt_lists=len(found["apt_lists"]),
    )
    assert all(int(uid) != 0 for uid in status["Uid"].split())
    assert int(status["CapEff"], 16) == 0 and int(status["CapPrm"], 16) == 0
    assert int(status["CapBnd"], 16) == 0
    assert status["NoNewPrivs"] == "1"
    assert found["writable"] == [], "the root filesystem (and /tmp, /app) is read-only"
    assert found["private_keys"] == [] and found["key_files"] == [], "no keys or credentials"
    assert found["tools"] == {}, "no compiler, make or pip in the image"
    assert found["pip_module"] is False
    assert found["apt_archives"] == [] and found["apt_lists"] == [], "no package caches"
    assert found["pip_caches"] == []
