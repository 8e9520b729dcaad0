"""python3 -m view.benchmark: what one snapshot and the view cost (figures, not timed tests).

  1. one snapshot of a fork server with N children (target: 500 children within 100 ms);
  2. the view's CPU at 2.5 updates a second with M children (target: under 5% of a core).
On a busy host, reading /proc/net/tcp costs what its TIME_WAIT rows cost; netlink (used when
the kernel allows it) sends only the rows on the server's ports. The first line says which.

With --container IMAGE, the same two figures as the compose stack has them: the fork server in
a locked-down container (published on 127.0.0.1 only, the clients held from here), and, in a
container of the same lockdown sharing its pid namespace, (1) snapshots taken as the view agent
takes them, then (2) the agent itself, polled at 2.5 updates a second from its own network
namespace, its CPU read from this host's /proc. Every container it starts it removes.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request

from probe import procfs, snapshot
from probe.limits import raise_open_files

UPDATES_PER_SECOND = 2.5  # what the view's collector does (view/collector.py)
# The compose file's x-hardened, for the containers --container starts.
HARDENED = [
    "--read-only",
    "--cap-drop",
    "ALL",
    "--security-opt",
    "no-new-privileges:true",
    "--user",
    "10001:10001",
]


def hold(port: int, count: int) -> list[socket.socket]:
    """`count` connections, each echoed once: a child serves each (docker's proxy accepts and
    then closes when nothing listens behind it, so an empty reply is no connection)."""
    socks: list[socket.socket] = []
    try:
        for _ in range(count):
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            socks.append(s)
            s.sendall(b"x")
            if s.recv(1) != b"x":
                raise ConnectionError("no echo")
    except BaseException:
        for s in socks:
            s.close()
        raise
    return socks


def time_snapshots(runs: int = 20) -> tuple[list[float], list[float], int]:
    """Seconds (wall, CPU) per snapshot of every server in this /proc, as the agent takes them."""
    times, cpu, children = [], [], 0
    for _ in range(runs):
        started, cpu_started = time.perf_counter(), time.thread_time()
        found = snapshot.servers(exclude=[os.getpid()])
        times.append(time.perf_counter() - started)
        cpu.append(time.thread_time() - cpu_started)
        children = sum(len(s.children) for s in found)
    return times, cpu, children


def report_snapshots(times: list[float], cpu: list[float], children: int, where: str) -> None:
    # The CPU time says what a snapshot costs on a shared machine, where wall time waits too.
    print(
        f"snapshot of {children} children{where}: median "
        f"{statistics.median(times) * 1000:.1f} ms, max {max(times) * 1000:.1f} ms, "
        f"CPU median {statistics.median(cpu) * 1000:.1f} ms ({len(times)} runs)",
        flush=True,
    )


def poll(url: str, seconds: float) -> None:
    """GET url at the view's rate for `seconds` (run inside the agent's network namespace)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        started = time.monotonic()
        with urllib.request.urlopen(url, timeout=5) as reply:
            json.load(reply)
        time.sleep(max(0.0, 1 / UPDATES_PER_SECOND - (time.monotonic() - started)))


def docker(*argv: str) -> str:
    done = subprocess.run(["docker", *argv], capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"docker {' '.join(argv[:2])}: {done.stderr.strip()}")
    return done.stdout.strip()


def hold_when_up(port: int, count: int, timeout: float = 30) -> list[socket.socket]:
    """Through docker's published port: it accepts before the server listens, so retry."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return hold(port, count)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def in_containers(image: str, children: int, view_children: int, seconds: float) -> int:
    started: list[str] = []
    socks: list[socket.socket] = []
    try:
        server = docker(
            "run", "-d", *HARDENED, "--pids-limit", str(children + 50),
            "-p", "127.0.0.1::9000", image,
            "python3", "-m", "server", "fork", "--port", "9000",
            "--max-children", str(children + 10),
        )  # fmt: skip
        started.append(server)
        port = int(docker("port", server, "9000/tcp").splitlines()[0].rpartition(":")[2])
        socks = hold_when_up(port, children)
        beside = [*HARDENED, "--pid", f"container:{server}"]
        print(
            docker("run", "--rm", *beside, image, "python3", "-m", "view.benchmark", "--in-agent"),
            flush=True,
        )
        for s in socks[view_children:]:
            s.close()
        del socks[view_children:]
        agent = docker(
            "run", "-d", *beside, image,
            "python3", "-m", "view.agent", "--listen", "127.0.0.1:7070",
        )  # fmt: skip
        started.append(agent)
        agent_pid = int(docker("inspect", "-f", "{{.State.Pid}}", agent))
        url = "http://127.0.0.1:7070/snapshot"
        warm = ["python3", "-m", "view.benchmark", "--poll", url, "--seconds"]
        deadline = time.monotonic() + 30
        while (
            subprocess.run(
                ["docker", "exec", agent, *warm, "2"], stderr=subprocess.DEVNULL
            ).returncode
            != 0
        ):
            if time.monotonic() > deadline:
                raise RuntimeError("the agent does not answer")
            time.sleep(0.5)
        before = procfs.stat(agent_pid)
        docker("exec", agent, *warm, str(seconds))
        after = procfs.stat(agent_pid)
        ticks = after.cpu_ticks - before.cpu_ticks if before and after else 0
        print(
            f"agent at {UPDATES_PER_SECOND} updates/s over {view_children} children: "
            f"{ticks / procfs.CLOCK_TICKS / seconds * 100:.1f}% of a core over {seconds:.0f} s"
        )
    finally:
        for s in socks:
            s.close()
        for container in reversed(started):
            subprocess.run(["docker", "rm", "-f", container], capture_output=True, timeout=60)
    return 0


def start_server(count: int) -> tuple[subprocess.Popen, int]:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    argv = [
        sys.executable,
        "-m",
        "server",
        "fork",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--max-children",
        str(count + 10),
    ]
    server = subprocess.Popen(argv, stderr=subprocess.DEVNULL)
    for _ in range(100):
        if snapshot.on_ports([port])[port]:
            break
        time.sleep(0.05)
    return server, port


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m view.benchmark", description=__doc__)
    parser.add_argument("--children", type=int, default=500)
    parser.add_argument("--view-children", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument(
        "--container",
        metavar="IMAGE",
        help="measure in locked-down containers of IMAGE, as the compose stack runs them",
    )
    parser.add_argument("--in-agent", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--poll", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.in_agent:  # inside the agent-like container that --container starts
        report_snapshots(*time_snapshots(), " (locked-down container, its own netns)")
        return 0
    if args.poll:
        poll(args.poll, args.seconds)
        return 0
    raise_open_files(4 * args.children + 256)
    if args.container:
        return in_containers(args.container, args.children, args.view_children, args.seconds)
    rows = len(procfs.tcp_sockets())
    try:
        procfs.diag_tcp_sockets(procfs.LISTEN_STATES)
        how = "sockets read over netlink sock_diag, filtered by port in the kernel"
    except OSError as error:
        how = f"netlink refused ({error}): sockets read from /proc/net/tcp"
    print(f"this host's TCP tables: {rows} rows; {how}")
    server, port = start_server(args.children)
    socks = hold(port, args.children)
    try:
        root = server.pid
        times, cpu = [], []
        for _ in range(20):
            started, cpu_started = time.perf_counter(), time.thread_time()
            snap = snapshot.take(root)
            times.append(time.perf_counter() - started)
            cpu.append(time.thread_time() - cpu_started)
        report_snapshots(times, cpu, len(snap.children), " (host)")
        for s in socks[args.view_children :]:
            s.close()
        del socks[args.view_children :]
        view = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "view",
                "--listen",
                "127.0.0.1:0",
                "--local",
                f"fork-server={port}",
            ],
            stdout=subprocess.DEVNULL,
        )
        time.sleep(2)
        before = procfs.stat(view.pid)
        time.sleep(args.seconds)
        after = procfs.stat(view.pid)
        view.terminate()
        view.wait(10)
        ticks = after.cpu_ticks - before.cpu_ticks if before and after else 0
        share = ticks / procfs.CLOCK_TICKS / args.seconds * 100
        print(
            f"view at {UPDATES_PER_SECOND} updates/s over {args.view_children} children: "
            f"{share:.1f}% of a core over {args.seconds:.0f} s"
        )
    finally:
        for s in socks:
            s.close()
        server.terminate()
        server.wait(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
