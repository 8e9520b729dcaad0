"""What a load is (mode, connections, size, time) and what it counted (the tally)."""

from __future__ import annotations

from dataclasses import dataclass, field, fields

MODES = ("rr", "rate", "hold", "stream")
MAX_CONNECTIONS = 12000
MAX_SECONDS = 120.0
SAMPLES = 5  # error descriptions kept per run


class LoadError(RuntimeError):
    """The run could not take place (a worker died or stopped answering)."""


@dataclass(frozen=True)
class Load:
    mode: str
    connections: int = 100  # rate: sessions in flight
    size: int = 64  # message bytes; stream: bytes in flight per connection
    duration: float = 2.0  # rr, rate, stream: measured seconds
    hold: float = 1.0  # hold: seconds between the two proofs
    serve_timeout: float = 2.0  # hold: an echo later than this was not served "at once"
    late_timeout: float = 10.0  # hold: how long a waiting client may wait once others left
    workers: int = 0  # 0: one per core
    seed: int = 1

    def checked(self) -> Load:
        if self.mode not in MODES:
            raise ValueError(f"unknown mode {self.mode!r}")
        if not 1 <= self.connections <= MAX_CONNECTIONS:
            raise ValueError(f"connections must be 1..{MAX_CONNECTIONS}")
        if not 1 <= self.size <= 16 << 20:
            raise ValueError("size must be 1 B .. 16 MiB")
        longest = max(self.duration, self.hold + self.serve_timeout + self.late_timeout)
        if longest > MAX_SECONDS or min(self.duration, self.hold) < 0:
            raise ValueError(f"a run is bounded: at most {MAX_SECONDS:.0f} s")
        return self


@dataclass
class Tally:
    """What the workers counted; summed over workers by `merge`."""

    ops: int = 0  # rr: round trips, rate: sessions, stream: bytes echoed, in the window
    bytes_sent: int = 0
    bytes_received: int = 0
    connected: int = 0
    served_at_once: int = 0  # hold: echoed within serve_timeout while all were connected
    proven_again: int = 0  # hold: echoed a second time after the hold
    served_later: int = 0  # hold: echoed only once the others had left
    never_served: int = 0
    errors: int = 0  # refused, reset, closed early, timed out
    mismatches: int = 0  # a byte came back different
    cpu_seconds: float = 0.0  # the workers' own user+system time
    closed_at: float = 0.0  # monotonic time the last client closed
    samples: list[str] = field(default_factory=list)

    def error(self, what: str) -> None:
        self.errors += 1
        self._keep(what)

    def mismatch(self, what: str) -> None:
        self.mismatches += 1
        self._keep(what)

    def _keep(self, what: str) -> None:
        if len(self.samples) < SAMPLES:
            self.samples.append(what)

    def merge(self, other: Tally) -> None:
        for f in fields(self):
            if f.name == "samples":
                self.samples.extend(other.samples[: SAMPLES - len(self.samples)])
            elif f.name == "closed_at":
                self.closed_at = max(self.closed_at, other.closed_at)
            else:
                setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))
