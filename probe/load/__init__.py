"""The load generator: worker processes, each driving many non-blocking connections on epoll.

    rr      N connections; each sends M bytes, waits for the whole echo, sends the next, T s
    rate    C sessions in flight: connect, echo M bytes, close, start the next one, T s
    hold    open N connections, prove each is served (one echo), hold H s, prove it again
    stream  N connections send and receive at once (full duplex), M bytes in flight each, T s

Every echoed byte is compared with what was sent; errors and mismatches are counted, and the
first few are described. The workers share the cores with the server under test, so each does
as little as a client can per event: one epoll, preallocated buffers, one memcmp per echo.

Only 127.0.0.1 (the loopback range) or a compose service name may be a target, and every run
is bounded in connections and in time.

* ``plan``: what a load is (``Load``) and what it counted (``Tally``).
* ``conns``: the client sockets, one message at a time. ``modes``: the four modes.
* ``workers``: the worker processes and the parent that sums their tallies (``run_load``).
"""

from probe.load.plan import MAX_CONNECTIONS, MAX_SECONDS, MODES, Load, LoadError, Tally
from probe.load.workers import run_load, split

__all__ = [
    "MAX_CONNECTIONS",
    "MAX_SECONDS",
    "MODES",
    "Load",
    "LoadError",
    "Tally",
    "run_load",
    "split",
]
