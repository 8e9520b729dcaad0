"""Where an echo went wrong, in one line: the first byte that differs, or the lengths."""

from __future__ import annotations


def first_difference(sent: bytes | bytearray, received: bytes | bytearray, offset: int = 0) -> str:
    """Describe the first mismatch; `offset` is where these bytes start in the whole stream."""
    if sent == received:
        return "identical"
    for i, (a, b) in enumerate(zip(sent, received, strict=False)):
        if a != b:
            return f"byte {offset + i} differs (sent {a:#04x}, got {b:#04x})"
    return f"lengths differ (sent {len(sent)}, got {len(received)})"
