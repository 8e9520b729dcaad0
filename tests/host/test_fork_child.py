"""A forked child never returns into the parent's accept loop, and the server works as a library.

The failure is injected by patching the child's echo in a `python -c` wrapper: whatever goes
wrong on the child's path, the child exits (status 70, logged by the parent) and the parent
stays the only process holding the listening socket.
"""

from __future__ import annotations

from collections.abc import Callable

from probe import procfs
from probe.sockets import connect, roundtrip, sees_close
from tests.host.support import ServerProcess, wait_until

StartServer = Callable[..., ServerProcess]

# The child fails when its client's first bytes are b"boom"; others are echoed as usual.
INJECT_CHILD_FAILURE = """
import socket, sys
import server.forking
from server.__main__ import main

echo = server.forking.echo_until_eof

def failing_echo(client, buffer):
    if client.recv(4, socket.MSG_PEEK) == b"boom":
        raise RuntimeError("injected failure")
    return echo(client, buffer)

server.forking.echo_until_eof = failing_echo
sys.exit(main(sys.argv[1:]))
"""

# ForkingEchoServer(host, port) with every default: no CLI, no Mistakes.
LIBRARY_DEFAULTS = """
import sys
from server.forking import ForkingEchoServer

host, port = sys.argv[3], int(sys.argv[5])
sys.exit(ForkingEchoServer(host, port).serve_forever())
"""


def holders_of_listener(server: ServerProcess) -> list[int]:
    listening = procfs.listening_inodes(server.port)
    tree = [server.pid, *procfs.descendants_of(server.pid)]
    return [pid for pid in tree if listening & procfs.socket_inodes(pid)]


def test_a_child_that_fails_exits_with_its_status_logged_and_never_accepts(
    server_factory: StartServer,
) -> None:
    server = server_factory("fork", code=INJECT_CHILD_FAILURE)
    doomed = connect(server.port)
    doomed.sendall(b"boom")
    assert sees_close(doomed, timeout=5), "the failed child's end closes the connection"
    doomed.close()
    failed = server.wait_for_log(r"fork-child\[(?P<pid>\d+)\] child failed\.\.\. .*injected")
    child = int(failed["pid"])
    server.wait_for_log(rf"removed proc id: {child} \(exit 70\)")
    wait_until(lambda: not procfs.is_alive(child), 5, what="the failed child to be gone")
    assert not [line for line in server.log_lines() if "Traceback" in line]

    sock = connect(server.port)  # the parent accepts on, and only the parent
    assert roundtrip(sock, b"hello") == b"hello"
    [kid] = server.wait_children(1)
    assert kid != child
    assert holders_of_listener(server) == [server.pid]
    sock.close()
    server.wait_children(0)


def test_forking_echo_server_works_as_a_library_with_its_defaults(
    server_factory: StartServer,
) -> None:
    server = server_factory("fork", code=LIBRARY_DEFAULTS)
    assert server.limit == 512, "the default max_children"
    sock = connect(server.port)
    assert roundtrip(sock, b"library") == b"library"
    sock.close()
    server.wait_for_log(r"removed proc id: \d+ \(exit 0\)")
    assert server.stop() == 0
    assert server.wait_for_log(r"shut down")
