"""Unit: the events between two snapshots, and a history that never grows past its bound."""

from __future__ import annotations

from view.timeline import Timeline, diff


def proc(pid: int, role: str, *peers: str, listen: bool = False) -> dict:
    sockets = [{"kind": "connected", "local": "127.0.0.1:9000", "peer": p} for p in peers]
    if listen:
        sockets.insert(0, {"kind": "listen", "local": "0.0.0.0:9000", "peer": None})
    state = "zombie" if role == "zombie" else "sleeping"
    return {"pid": pid, "ppid": 1, "state": state, "role": role, "sockets": sockets}


def server(model: str, *processes: dict) -> dict:
    return {
        "service": "s",
        "model": model,
        "root": 1,
        "listen": ["0.0.0.0:9000"],
        "processes": [proc(1, "parent", listen=True), *processes],
    }


def texts(before: dict, after: dict) -> list[str]:
    return [e.text for e in diff([before], [after], 0.0)]


def test_a_child_appears_serving_its_client_then_exits_as_a_zombie_then_is_reaped() -> None:
    empty = server("fork")
    serving = server("fork", proc(7, "child", "10.0.0.1:5"))
    zombie = server("fork", proc(7, "zombie"))
    assert texts(empty, serving) == ["child 7 appeared (fork), serving 10.0.0.1:5"]
    assert texts(serving, zombie) == ["child 7 exited: a zombie until its parent waits"]
    assert texts(zombie, empty) == ["zombie 7 reaped by waitpid()"]
    assert texts(serving, empty) == ["child 7 exited and was reaped"]


def test_select_clients_connect_and_leave() -> None:
    before = server("select")
    after = server("select")
    after["processes"][0]["sockets"].append(
        {"kind": "connected", "local": "127.0.0.1:9000", "peer": "10.0.0.2:6"}
    )
    assert texts(before, after) == ["client 10.0.0.2:6 connected"]
    assert texts(after, before) == ["client 10.0.0.2:6 left"]


def test_a_source_that_cannot_be_seen_is_said_once_then_its_return() -> None:
    seen = server("fork")
    unseen = {"service": "s", "model": None, "processes": [], "error": "agent unreachable"}
    assert [e.kind for e in diff([seen], [unseen], 0)] == ["unseen", "server"]
    assert diff([unseen], [unseen], 0) == [], "the same failure is not repeated every tick"
    assert [e.kind for e in diff([unseen], [seen], 0)] == ["seen", "server"]


def test_the_history_is_bounded() -> None:
    timeline = Timeline(limit=50)
    for i in range(1000):
        timeline.extend(diff([server("fork")], [server("fork", proc(i + 10, "child"))], i))
    assert len(timeline.events) == 50
    assert len(timeline.last(10)) == 10
