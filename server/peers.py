"""How a peer is named in the log, and which peers are served without a line (quiet peers)."""

from __future__ import annotations

_quiet_hosts: frozenset[str] = frozenset()


def set_quiet_hosts(hosts: list[str]) -> None:
    """Serve these hosts without logging them: a container's own health probe, every few
    seconds, would otherwise bury the demo's lines."""
    global _quiet_hosts
    _quiet_hosts = frozenset(hosts)


def is_quiet(address: tuple) -> bool:
    return address[0] in _quiet_hosts


def peer_name(address: tuple) -> str:
    host, port = address[0], address[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
