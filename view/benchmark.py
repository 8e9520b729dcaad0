"""python3 -m view.benchmark: what one snapshot and the view cost (figures, not timed tests).

  1. one snapshot of a fork server with N children (target: 500 children within 100 ms);
  2. the view's CPU at 2.5 updates a second with M children (target: under 5% of a core).
On a busy host, reading /proc/net/tcp costs what its TIME_WAIT rows cost; netlink (used when
the kernel allows it) sends only the rows on the server's ports. The first line says which.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import subprocess
import sys
import time

from probe import procfs, snapshot
from probe.limits import raise_open_files


def hold(port: int, count: int) -> list[socket.socket]:
    socks = []
    for _ in range(count):
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(b"x")
        s.recv(1)
        socks.append(s)
    return socks


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
    args = parser.parse_args(argv)
    raise_open_files(4 * args.children + 256)
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
        times = []
        for _ in range(20):
            started = time.perf_counter()
            snap = snapshot.take(root)
            times.append(time.perf_counter() - started)
        print(
            f"snapshot of {len(snap.children)} children: median "
            f"{statistics.median(times) * 1000:.1f} ms, max {max(times) * 1000:.1f} ms"
        )
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
            f"view at 2.5 updates/s over {args.view_children} children: {share:.1f}% of a core "
            f"over {args.seconds:.0f} s"
        )
    finally:
        for s in socks:
            s.close()
        server.terminate()
        server.wait(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
