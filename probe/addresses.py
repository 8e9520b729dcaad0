"""Where the lab may send traffic: the loopback range, or a compose service on its network."""

from __future__ import annotations

import ipaddress
import socket


def check_host(host: str) -> None:
    """Allow the loopback range, 'localhost', or a single-label name (a compose service).

    Raises ValueError, with one line saying why, for any other target.
    """
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        if host == "localhost":
            return
        if not host or "." in host or ":" in host:
            raise ValueError(f"{host!r}: only 127.0.0.1 or a compose service name") from None
        for info in socket.getaddrinfo(host, None, type=socket.SOCK_STREAM):
            resolved = ipaddress.ip_address(info[4][0])
            if not (resolved.is_loopback or resolved.is_private):
                raise ValueError(
                    f"{host!r} resolves to {resolved}: not a compose network"
                ) from None
        return
    if not address.is_loopback:
        raise ValueError(f"{host}: only the loopback range may be a target")
