"""Argument types shared by the client and the lab's tools (HOST:PORT, positive counts)."""

from __future__ import annotations

import argparse


def parse_address(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    # getaddrinfo() would silently wrap port 70000 to 4464: refuse it here.
    if not sep or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT with a port 1-65535, got {text!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value
