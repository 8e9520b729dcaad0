"""A load generator: many verified echo sessions over raw sockets, one epoll loop.

Each session connects, writes its payload, half-closes, and reads until EOF, verifying every
byte as it arrives. A fixed number of sessions are in flight at once; when one ends the next
starts. Payloads are slices of one random pattern at a per-session offset, so a byte that
crossed from another session shows up as a mismatch, and no session's payload is stored twice.
Everything is bounded: a run stops at its deadline and reports what was left unfinished.
"""

from __future__ import annotations

import contextlib
import errno
import random
import selectors
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import TracebackType

from probe.sockets import HOST

MIB = 1024 * 1024
PATTERN_SIZE = 2 * MIB
SEND_SIZE = 256 * 1024
RECV_SIZE = 256 * 1024

PATTERN = random.Random(20240501).randbytes(PATTERN_SIZE)


def offset_of(index: int) -> int:
    """Where session `index` starts in the pattern: distinct for neighbouring sessions."""
    return (index * 40_961) % (PATTERN_SIZE - MIB)


def payload_of(index: int, size: int) -> memoryview:
    start = offset_of(index)
    return memoryview(PATTERN)[start : start + size]


# The soak's size mix: mostly small, some large, a few of the maximum (1 MiB).
SIZE_MIX: tuple[tuple[float, int, int], ...] = (
    (0.05, 0, 0),  # empty: connect, half-close, EOF
    (0.75, 1, 4 * 1024),
    (0.15, 4 * 1024, 64 * 1024),
    (0.04, 64 * 1024, 512 * 1024),
    (0.01, MIB, MIB),
)
SIZE_MIX_TEXT = "5% 0 B, 75% 1 B-4 KiB, 15% 4-64 KiB, 4% 64-512 KiB, 1% 1 MiB"


def mixed_sizes(count: int, seed: int) -> list[int]:
    rng = random.Random(seed)
    weights = [share for share, _, _ in SIZE_MIX]
    sizes = []
    for _ in range(count):
        (_, low, high) = rng.choices(SIZE_MIX, weights)[0]
        sizes.append(rng.randint(low, high))
    return sizes


@dataclass(eq=False)
class Session:
    index: int
    size: int
    sock: socket.socket
    started: float
    connected: bool = False
    sent: int = 0
    received: int = 0
    write_closed: bool = False
    error: str | None = None


@dataclass
class LoadResult:
    sessions: int = 0  # started
    ok: int = 0
    failed: int = 0
    mismatched: int = 0  # sessions that got a wrong byte or too many (too few: failed)
    unfinished: int = 0  # still open at the deadline
    bytes_sent: int = 0
    bytes_received: int = 0
    elapsed_s: float = 0.0
    latencies_s: list[float] = field(default_factory=list)  # ok sessions, connect to EOF
    errors: dict[str, int] = field(default_factory=dict)  # failure reason -> count

    def percentile_ms(self, fraction: float) -> float:
        return percentile(self.latencies_s, fraction) * 1000

    def summary(self) -> dict[str, object]:
        return {
            "sessions": self.sessions,
            "ok": self.ok,
            "failed": self.failed,
            "mismatched": self.mismatched,
            "unfinished": self.unfinished,
            "bytes": self.bytes_received,
            "elapsed_s": round(self.elapsed_s, 2),
            "p50_ms": round(self.percentile_ms(0.50), 2),
            "p99_ms": round(self.percentile_ms(0.99), 2),
            "errors": dict(sorted(self.errors.items(), key=lambda kv: -kv[1])[:5]),
        }


def percentile(values: Sequence[float], fraction: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def run_sessions(
    port: int,
    sizes: Sequence[int],
    in_flight: int,
    deadline_s: float,
    first_index: int = 0,
    stop: threading.Event | None = None,
    result: LoadResult | None = None,
    host: str = HOST,
) -> LoadResult:
    """Run one session per entry of `sizes`, `in_flight` at a time, for at most `deadline_s`.

    Once `stop` is set no new session starts; those already running finish. `result`, if
    given, is filled in as the run goes (another thread may watch its counters).
    """
    result = LoadResult() if result is None else result
    selector = selectors.EpollSelector()  # no FD_SETSIZE ceiling on the test's side
    buffer = bytearray(RECV_SIZE)
    view = memoryview(buffer)
    todo = iter(enumerate(sizes, start=first_index))
    live = 0
    started = time.monotonic()
    deadline = started + deadline_s

    def start_next() -> bool:
        nonlocal live
        if stop is not None and stop.is_set():
            return False
        item = next(todo, None)
        if item is None:
            return False
        index, size = item
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        session = Session(index, size, sock, time.monotonic())
        result.sessions += 1
        code = sock.connect_ex((host, port))
        if code not in (0, errno.EINPROGRESS):
            finish(session, f"connect: {errno.errorcode.get(code, code)}", registered=False)
            return True
        selector.register(sock, selectors.EVENT_READ | selectors.EVENT_WRITE, session)
        live += 1
        return True

    def finish(session: Session, error: str | None, registered: bool = True) -> None:
        nonlocal live
        if registered:
            selector.unregister(session.sock)
            live -= 1
        session.sock.close()
        result.bytes_sent += session.sent
        result.bytes_received += session.received
        if error is None:
            result.ok += 1
            result.latencies_s.append(time.monotonic() - session.started)
            return
        result.failed += 1
        if error.startswith(("mismatch", "extra")):
            result.mismatched += 1  # a wrong byte: never acceptable, even when cut off
        reason = error.split(" at ")[0]
        result.errors[reason] = result.errors.get(reason, 0) + 1
        session.error = error

    def on_writable(session: Session) -> None:
        if not session.connected:
            code = session.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if code:
                finish(session, f"connect: {errno.errorcode.get(code, code)}")
                return
            session.connected = True
        payload = payload_of(session.index, session.size)
        try:
            while session.sent < session.size:
                session.sent += session.sock.send(payload[session.sent : session.sent + SEND_SIZE])
        except BlockingIOError:
            return
        except OSError as error:
            finish(session, f"send: {errno.errorcode.get(error.errno or 0, error)}")
            return
        try:
            session.sock.shutdown(socket.SHUT_WR)  # the server sees EOF once our bytes are in
        except OSError as error:  # the server went away first (ENOTCONN)
            finish(session, f"shutdown: {errno.errorcode.get(error.errno or 0, error)}")
            return
        session.write_closed = True
        selector.modify(session.sock, selectors.EVENT_READ, session)

    def on_readable(session: Session) -> None:
        try:
            count = session.sock.recv_into(buffer)
        except BlockingIOError:
            return
        except OSError as error:
            if not session.connected:
                finish(session, f"connect: {errno.errorcode.get(error.errno or 0, error)}")
            else:
                finish(session, f"recv: {errno.errorcode.get(error.errno or 0, error)}")
            return
        if count == 0:
            if session.received == session.size and session.write_closed:
                finish(session, None)
            elif session.received == session.size:
                finish(session, f"early EOF at {session.sent} of {session.size} sent")
            else:
                finish(session, f"short echo at {session.received} of {session.size}")
            return
        start = offset_of(session.index) + session.received
        if session.received + count > session.size:
            finish(session, f"extra bytes at {session.received + count} of {session.size}")
            return
        if view[:count] != memoryview(PATTERN)[start : start + count]:
            finish(session, f"mismatch at byte {session.received}")
            return
        session.received += count

    for _ in range(in_flight):
        if not start_next():
            break
    while live and time.monotonic() < deadline:
        for key, events in selector.select(0.2):
            session = key.data
            if session.sock.fileno() < 0:
                continue  # finished earlier in this batch
            if events & selectors.EVENT_WRITE:
                on_writable(session)
            if session.sock.fileno() >= 0 and events & selectors.EVENT_READ:
                on_readable(session)
            if session.sock.fileno() < 0:
                start_next()
    for key in list(selector.get_map().values()):
        result.unfinished += 1
        finish(key.data, "unfinished at the deadline")
    if stop is None or not stop.is_set():
        result.unfinished += sum(1 for _ in todo)  # never started: unfinished too
    selector.close()
    result.elapsed_s = time.monotonic() - started
    return result


class BackgroundLoad:
    """Normal clients in a thread while a test does something bad: `with BackgroundLoad(...)`.

    Small sessions (1 B-16 KiB), `in_flight` at a time, until the block ends (or `deadline_s`,
    or `limit` sessions); `result` then holds what they saw.
    """

    def __init__(
        self,
        port: int,
        in_flight: int = 4,
        deadline_s: float = 60.0,
        limit: int = 50_000,
        host: str = HOST,
    ) -> None:
        rng = random.Random(port)
        self.sizes = [rng.randint(1, 16 * 1024) for _ in range(limit)]
        self.port = port
        self.host = host
        self.in_flight = in_flight
        self.deadline_s = deadline_s
        self.stop = threading.Event()
        self.result = LoadResult()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="background-load", daemon=True)

    def _run(self) -> None:
        try:
            run_sessions(
                self.port,
                self.sizes,
                self.in_flight,
                self.deadline_s,
                900_000,
                self.stop,
                self.result,
                self.host,
            )
        except BaseException as error:  # re-raised in the test's thread by __exit__
            self.error = error

    def __enter__(self) -> BackgroundLoad:
        self.thread.start()
        return self

    def wait_for_sessions(self, count: int, timeout: float = 10.0) -> None:
        """Block until the load has got going (`count` sessions started)."""
        deadline = time.monotonic() + timeout
        while self.result.sessions < count and time.monotonic() < deadline:
            time.sleep(0.01)

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop.set()
        self.thread.join(self.deadline_s + 5)
        if self.error is not None and kind is None:
            raise AssertionError("the background load crashed") from self.error


class Crowd:
    """Many raw connections at once, each sending one small tagged payload.

    A member is `served` once its exact echo is back, `refused` if the server closes or
    resets it first, `pending` while it waits (in the accept backlog, say).
    """

    def __init__(self, port: int, size: int = 64, host: str = HOST) -> None:
        self.port = port
        self.host = host
        self.size = size
        self.socks: list[socket.socket] = []
        self.got: list[bytearray] = []
        self.state: list[str] = []
        self.connect_failures: dict[str, int] = {}

    def connect(self, count: int, limit_s: float = 30.0) -> float:
        """Open `count` connections as fast as the kernel takes them; seconds it took."""
        started = time.monotonic()
        for _ in range(count):
            if time.monotonic() - started > limit_s:
                break
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.settimeout(10)
            try:
                sock.connect((self.host, self.port))
            except OSError as error:
                sock.close()
                name = errno.errorcode.get(error.errno or 0, type(error).__name__)
                self.connect_failures[name] = self.connect_failures.get(name, 0) + 1
                continue
            sock.setblocking(False)
            self.socks.append(sock)
            self.got.append(bytearray())
            self.state.append("pending")
        return time.monotonic() - started

    def payload(self, i: int) -> memoryview:
        return payload_of(i, self.size)

    def send_all(self) -> None:
        for i, sock in enumerate(self.socks):
            try:
                sock.send(self.payload(i))  # small: the socket buffer takes it whole
            except OSError:
                self.state[i] = "refused"

    def count(self, state: str) -> int:
        return self.state.count(state)

    def drive(
        self,
        quiet_s: float,
        limit_s: float,
        close_served: bool = True,
        until: Callable[[], bool] | None = None,
    ) -> None:
        """Read echoes until everyone is served or refused, `until()` holds, nothing happens
        for `quiet_s`, or `limit_s` passes. `close_served` hangs up each member once served,
        making room for the next."""
        selector = selectors.EpollSelector()
        for i, sock in enumerate(self.socks):
            if self.state[i] == "pending":
                selector.register(sock, selectors.EVENT_READ, i)
        started = last = time.monotonic()
        while selector.get_map():
            now = time.monotonic()
            if now - last > quiet_s or now - started > limit_s or (until and until()):
                break
            for key, _ in selector.select(0.1):
                i = key.data
                last = time.monotonic()
                try:
                    data = self.socks[i].recv(65536)
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                if not data:
                    self.state[i] = "refused"
                else:
                    self.got[i] += data
                    if len(self.got[i]) < self.size:
                        continue
                    ok = self.got[i] == self.payload(i)
                    self.state[i] = "served" if ok else "mismatched"
                selector.unregister(self.socks[i])
                if close_served or self.state[i] != "served":
                    self.socks[i].close()
        selector.close()

    def close(self, only: str | None = None, most: int | None = None) -> int:
        """Hang up members in state `only` (every member if None), at most `most` of them."""
        closed = 0
        for i, sock in enumerate(self.socks):
            if most is not None and closed >= most:
                break
            if (only is None or self.state[i] == only) and sock.fileno() >= 0:
                sock.close()
                closed += 1
        return closed


@dataclass
class StreamResult:
    sent: int = 0
    received: int = 0
    first_wrong_byte: int | None = None
    ended: str = ""  # 'eof', 'reset', 'timeout'
    seconds: float = 0.0

    @property
    def exact(self) -> bool:
        return self.first_wrong_byte is None and self.ended == "eof" and self.sent == self.received


def stream_echo(
    port: int, total: int, chunk_size: int = 65536, limit_s: float = 60.0, host: str = HOST
) -> StreamResult:
    """One connection: send `total` bytes (a 1 MiB pattern, cycled) while reading the echo,
    half-close, read to EOF; every byte is compared as it arrives, nothing is kept."""
    out = StreamResult()
    pattern = payload_of(7, MIB)
    sock = socket.create_connection((host, port), timeout=10)
    sock.setblocking(False)
    selector = selectors.EpollSelector()
    selector.register(sock, selectors.EVENT_READ | selectors.EVENT_WRITE)
    started = time.monotonic()
    try:
        while time.monotonic() - started < limit_s:
            for _, events in selector.select(0.2):
                if events & selectors.EVENT_WRITE:
                    at = out.sent % MIB
                    size = min(chunk_size, MIB - at, total - out.sent)
                    with contextlib.suppress(BlockingIOError):
                        out.sent += sock.send(pattern[at : at + size])
                    if out.sent == total:
                        sock.shutdown(socket.SHUT_WR)
                        selector.modify(sock, selectors.EVENT_READ)
                if events & selectors.EVENT_READ:
                    try:
                        data = sock.recv(RECV_SIZE)
                    except BlockingIOError:
                        continue
                    except OSError:
                        out.ended = "reset"
                        return out
                    if not data:
                        out.ended = "eof"
                        return out
                    if out.first_wrong_byte is None:
                        at = out.received % MIB
                        want = bytes(pattern[at : at + len(data)])
                        if len(want) < len(data):
                            want += bytes(pattern[: len(data) - len(want)])
                        if data != want:
                            wrong = next(i for i in range(len(data)) if data[i] != want[i])
                            out.first_wrong_byte = out.received + wrong
                    out.received += len(data)
        out.ended = "timeout"
        return out
    finally:
        out.seconds = time.monotonic() - started
        selector.close()
        sock.close()
