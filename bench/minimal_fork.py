"""The simplest correct forking echo server: the reference our fork server is measured against.

    python -m bench.minimal_fork HOST PORT

accept, fork, the child echoes until EOF and _exits, the parent closes its copy, and a
SIGCHLD handler reaps with a waitpid(WNOHANG) loop. None of our features: no log per client,
no limit, no table of children, no graceful stop (SIGTERM kills the process group).
"""

import os
import signal
import socket
import sys


def reap(_signum: int, _frame: object) -> None:
    while True:  # one SIGCHLD may stand for many exits
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def main() -> None:
    listener = socket.create_server((sys.argv[1], int(sys.argv[2])), backlog=socket.SOMAXCONN)
    host, port = listener.getsockname()[:2]
    os.write(2, f"listening on {host}:{port} (minimal fork server)\n".encode())
    signal.signal(signal.SIGCHLD, reap)
    while True:
        client, _ = listener.accept()  # EINTR from SIGCHLD is retried by Python (PEP 475)
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if os.fork() == 0:
            listener.close()
            status = 0
            try:
                while data := client.recv(65536):
                    client.sendall(data)
            except OSError:
                status = 1
            os._exit(status)
        client.close()


if __name__ == "__main__":
    main()
