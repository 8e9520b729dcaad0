"""One line per event, `HH:MM:SS.mmm role[pid] message`, and the pids are the real ones."""

from __future__ import annotations

import re
from collections.abc import Callable

from tests.host.support import LOG_LINE, ClientResult, ServerProcess, wait_until

Client = Callable[..., ClientResult]
CONNECTED = re.compile(r"^new client connected\.\.\. (?P<peer>\S+) -> child (?P<pid>\d+)$")
DISCONNECTED = re.compile(r"^client disconnected\.\.\. (?P<peer>\S+) ")


def test_every_log_line_is_one_event_from_the_process_it_names(
    server: ServerProcess, client: Client
) -> None:
    result = client(server.port, "--connections", "5", "--bytes", "1000")
    assert result.returncode == 0, result

    def count(word: str) -> int:
        return sum(word in line for line in server.log_lines())

    wait_until(lambda: count("client disconnected...") == 5, 5, what="5 disconnections logged")
    if server.model == "fork":
        wait_until(lambda: count("removed proc id") == 5, 5, what="5 children reaped")
    assert server.stop() == 0
    server.wait_for_log(r"\] shut down$")

    lines = server.log_lines()
    assert [line for line in lines if not LOG_LINE.match(line)] == []
    events = server.messages()
    main_role = f"{server.model}-server"
    assert {pid for role, pid, _ in events if role == main_role} == {server.pid}
    if server.model != "fork":
        assert {role for role, _, _ in events} == {main_role}
        return
    # Each child speaks under its own pid, about the client the parent gave it.
    assert {role for role, _, _ in events} == {"fork-server", "fork-child"}
    given = {
        int(m["pid"]): m["peer"]
        for role, _, message in events
        if role == "fork-server" and (m := CONNECTED.match(message))
    }
    served = {
        pid: m["peer"]
        for role, pid, message in events
        if role == "fork-child" and (m := DISCONNECTED.match(message))
    }
    assert len(given) == 5
    assert served == given
