"""What the checker checks: a server it can reach, read in /proc, signal and stop.

* ``CommandTarget`` (``--command``): the checker starts the server itself, in a session and
  process group of its own, on a port it chose, and kills that whole group at the end.
* ``AttachedTarget``: a server already running that the checker did not start (``--image``
  mode runs the checker inside a container sharing the server container's pid namespace and
  network, and attaches there).

Either way the checks see the same things: an address, the server's root process (the
shallowest process holding the listening socket: a wrapper such as ``sh -c`` is looked
through), a /proc tree to read it in, and a way to stop it.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from typing import IO, Protocol

from probe import procfs, snapshot
from probe.exits import describe_returncode
from probe.limits import raise_open_files
from probe.sockets import HOST

LISTEN_TIMEOUT_S = 10.0  # how long a server may take to listen before the checker gives up
# Descriptors the checker and the server get: past FD_SETSIZE (1024) with room for 1,100
# clients and the checker's own ends of them.
OPEN_FILES_WANTED = 8192
ENDED_WAIT_S = 2.0  # for an exiting server's status to come (from its owner when attached)


class CannotCheck(Exception):
    """The server could not be checked at all (exit status 2): one line says why."""


class Target(Protocol):
    host: str
    port: int
    proc_root: str  # where this server's processes are seen ("/proc", or a mounted one)
    can_signal: bool  # False: the checker may not send the server signals (clean-stop skips)

    def describe(self) -> str:
        """One line naming the server: the command, or the image and address."""
        ...

    def start(self) -> None:
        """Make the server ready: started if need be, listening. Raises CannotCheck."""
        ...

    @property
    def root_pid(self) -> int:
        """The server's first process (the fork server's parent, the select process)."""
        ...

    def alive(self) -> bool:
        """True while the root process exists and is not a zombie."""
        ...

    def snapshot(self) -> snapshot.ServerSnapshot:
        """The server's processes, states and sockets at this instant."""
        ...

    def terminate(self, timeout: float) -> int | None:
        """SIGTERM the root and wait up to `timeout`: its exit status (a negative number for
        a signal), or None when it did not exit in time or its status is not known here."""
        ...

    def ended(self) -> str | None:
        """How the root ended on its own ('killed by SIGPIPE', 'exit 1'); None while it runs
        or when that is not known here."""
        ...

    def leftovers(self) -> list[int]:
        """Processes of the server that still exist (zombies included), its root excepted."""
        ...

    def close(self) -> None:
        """Leave nothing running that the checker started. Safe to call twice."""
        ...


def free_port(host: str = HOST) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class _Watched:
    """Remembers every (pid, starttime) seen in the server's tree: who to clean up after."""

    def __init__(self) -> None:
        self.seen: dict[int, int] = {}

    def note(self, snap: snapshot.ServerSnapshot, proc_root: str) -> None:
        for p in snap.processes:
            st = procfs.stat(p.pid, proc_root)
            if st is not None:
                self.seen.setdefault(p.pid, st.starttime)

    def note_tree(self, root: int, proc_root: str) -> None:
        """The same from the process tree alone: cheap enough just before a timed stop."""
        for st in procfs.process_tree(root, proc_root):
            self.seen.setdefault(st.pid, st.starttime)

    def existing(self, proc_root: str, but: int | None = None) -> list[int]:
        return sorted(
            pid
            for pid, start in list(self.seen.items())
            if pid != but and procfs.exists(pid, start, proc_root)
        )


def _wait_for_listener(
    root: int,
    port: int,
    proc_root: str,
    timeout: float,
    gone: Callable[[list[procfs.Stat]], str | None],
    late: Callable[[], str],
) -> int:
    """The pid in root's tree that listens on `port`, polled for up to `timeout`; CannotCheck
    with `gone`'s reason when the server is gone, or `late()` when nothing listened in time."""
    deadline = time.monotonic() + timeout
    while True:
        tree = procfs.process_tree(root, proc_root)
        if (reason := gone(tree)) is not None:
            raise CannotCheck(reason)
        if (holder := _listening_holder(tree, port, proc_root)) is not None:
            return holder
        if time.monotonic() >= deadline:
            raise CannotCheck(late())
        time.sleep(0.05)


def _listening_holder(tree: list[procfs.Stat], port: int, proc_root: str) -> int | None:
    """The shallowest process of `tree` holding a LISTEN socket on `port` (None: none yet).

    `tree` is root-first breadth order from procfs.process_tree. When descriptors cannot be
    read (another user's process), a LISTEN row in the tree's namespace is taken for the top.
    """
    if not tree:
        return None
    rows = [
        s
        for s in procfs.tcp_sockets(proc_root, pid=tree[0].pid, local_port=port)
        if s.state == "LISTEN"
    ]
    if not rows:
        return None
    inodes = {s.inode for s in rows}
    unreadable = False
    for st in tree:
        try:
            if procfs.socket_inodes(st.pid, proc_root) & inodes:
                return st.pid
        except PermissionError:
            unreadable = True
    return tree[0].pid if unreadable else None


class CommandTarget:
    """`--command "CMD ... {port} ..."`: the checker runs the server as a process group."""

    def __init__(
        self,
        command: str,
        port: int | None = None,
        listen_timeout: float = LISTEN_TIMEOUT_S,
        cwd: str | None = None,
    ) -> None:
        self.command = command
        self.host = HOST
        self.port = port if port is not None else free_port()
        self.argv = shlex.split(command.replace("{port}", str(self.port)))
        if not self.argv:
            raise CannotCheck("the command is empty")
        self.listen_timeout = listen_timeout
        self.cwd = cwd
        self.proc_root = procfs.PROC
        self.can_signal = True
        self.proc: subprocess.Popen[bytes] | None = None
        self._root: int | None = None
        self._watched = _Watched()
        self._output: IO[bytes] | None = None
        self._status: int | None = None

    def describe(self) -> str:
        return shlex.join(self.argv)

    # ------------------------------------------------------------ starting

    def start(self) -> None:
        raise_open_files(OPEN_FILES_WANTED)  # inherited by the server: room past FD_SETSIZE
        # The server's output goes to a file, never a pipe nobody drains; closed in close().
        self._output = tempfile.TemporaryFile(prefix="echolab-check-")  # noqa: SIM115
        try:
            self.proc = subprocess.Popen(
                self.argv,
                cwd=self.cwd,
                stdin=subprocess.DEVNULL,
                stdout=self._output,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own session and process group: killed as one
            )
        except OSError as error:
            raise CannotCheck(f"cannot run {self.argv[0]!r}: {error.strerror}") from None
        self._wait_listening()

    def _wait_listening(self) -> None:
        assert self.proc is not None
        proc = self.proc

        def exited(_tree: list[procfs.Stat]) -> str | None:
            status = proc.poll()
            if status is None:
                return None
            self._status = status
            return (
                f"the command exited at once ({describe_returncode(status)}) before listening "
                f"on port {self.port}{self._last_words()}"
            )

        self._root = _wait_for_listener(
            proc.pid,
            self.port,
            self.proc_root,
            self.listen_timeout,
            gone=exited,
            late=lambda: (
                f"nothing listened on port {self.port} within {self.listen_timeout:g} s "
                f"(does the server listen on the port it is given?){self._last_words()}"
            ),
        )
        self._watched.note(self.snapshot(), self.proc_root)

    def _last_words(self) -> str:
        """The last line the server wrote, to say why it did not start."""
        if self._output is None:
            return ""
        with contextlib.suppress(OSError):
            self._output.seek(0, os.SEEK_END)
            size = self._output.tell()
            self._output.seek(max(0, size - 2048))
            lines = self._output.read().decode(errors="replace").strip().splitlines()
            if lines:
                return f"; it said: {lines[-1][:200]}"
        return ""

    # ------------------------------------------------------------ reading

    @property
    def root_pid(self) -> int:
        if self._root is None:
            raise RuntimeError("the server has not been started")
        return self._root

    def alive(self) -> bool:
        return self._root is not None and procfs.is_alive(self._root, root=self.proc_root)

    def snapshot(self) -> snapshot.ServerSnapshot:
        snap = snapshot.take(self.root_pid, self.proc_root)
        self._watched.note(snap, self.proc_root)
        return snap

    def leftovers(self) -> list[int]:
        alive = set(self._watched.existing(self.proc_root, but=self._root))
        if self.proc is not None:
            alive.update(procfs.group_members(self.proc.pid, self.proc_root))
            alive.discard(self.proc.pid)
        alive.discard(self._root or -1)
        return sorted(alive)

    # ------------------------------------------------------------ stopping

    def terminate(self, timeout: float) -> int | None:
        if self.proc is None or self._root is None:
            return None
        self._watched.note_tree(self.root_pid, self.proc_root)
        with contextlib.suppress(ProcessLookupError):
            os.kill(self._root, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        if self._root == self.proc.pid:
            try:
                self._status = self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                return None
            return self._status
        # A wrapper started the server: its status is not ours to collect; watch it go.
        while procfs.is_alive(self._root, root=self.proc_root):
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.02)
        return None

    def ended(self) -> str | None:
        if self.proc is None or self._root != self.proc.pid or self.alive():
            return None  # running, or started by a wrapper whose child's status is not ours
        try:  # exiting: its status comes once exit() is done (a large process takes a while)
            return describe_returncode(self.proc.wait(ENDED_WAIT_S))
        except subprocess.TimeoutExpired:
            return None

    def close(self) -> None:
        """SIGKILL the process group and everyone seen in the tree, until none is left."""
        if self.proc is not None:
            for _ in range(50):  # a process that forks endlessly needs more than one round
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                for pid, start in list(self._watched.seen.items()):
                    if procfs.exists(pid, start, self.proc_root):
                        with contextlib.suppress(ProcessLookupError, PermissionError):
                            os.kill(pid, signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.proc.wait(0.05)
                if self.proc.returncode is not None and not self._group_left():
                    break
                time.sleep(0.02)
        if self._output is not None:
            self._output.close()
            self._output = None

    def _group_left(self) -> list[int]:
        assert self.proc is not None
        left = procfs.group_members(self.proc.pid, self.proc_root)
        return [p for p in left if procfs.process_state(p, self.proc_root) != "Z"]

    def __enter__(self) -> CommandTarget:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


class AttachedTarget:
    """A server already running, started by someone else; the checker only reads and signals.

    `wait_exit(timeout)`, when given, returns the server's exit status once it has exited
    (None if it did not within `timeout`): the owner of the server knows it, this side may not.
    """

    def __init__(
        self,
        host: str,
        port: int,
        root_pid: int,
        proc_root: str = procfs.PROC,
        can_signal: bool = True,
        wait_exit: Callable[[float], int | None] | None = None,
        description: str | None = None,
        listen_timeout: float = LISTEN_TIMEOUT_S,
    ) -> None:
        self.host = host
        self.port = port
        self.proc_root = proc_root
        self.can_signal = can_signal
        self._given_root = root_pid
        self._root: int | None = None
        self._wait_exit = wait_exit
        self._description = description
        self.listen_timeout = listen_timeout
        self._watched = _Watched()

    def describe(self) -> str:
        where = f"the server at {self.host}:{self.port} (pid {self._given_root})"
        return self._description or where

    def start(self) -> None:
        def missing(tree: list[procfs.Stat]) -> str | None:
            return None if tree else f"no process {self._given_root} to check"

        self._root = _wait_for_listener(
            self._given_root,
            self.port,
            self.proc_root,
            self.listen_timeout,
            gone=missing,
            late=lambda: f"nothing listened on port {self.port} within {self.listen_timeout:g} s",
        )
        self._watched.note(self.snapshot(), self.proc_root)

    @property
    def root_pid(self) -> int:
        return self._root if self._root is not None else self._given_root

    def alive(self) -> bool:
        return procfs.is_alive(self.root_pid, root=self.proc_root)

    def snapshot(self) -> snapshot.ServerSnapshot:
        snap = snapshot.take(self.root_pid, self.proc_root)
        self._watched.note(snap, self.proc_root)
        return snap

    def leftovers(self) -> list[int]:
        return self._watched.existing(self.proc_root, but=self.root_pid)

    def terminate(self, timeout: float) -> int | None:
        if not self.can_signal:
            return None
        self._watched.note_tree(self.root_pid, self.proc_root)
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.root_pid, signal.SIGTERM)
        if self._wait_exit is not None:
            return self._wait_exit(timeout)
        deadline = time.monotonic() + timeout
        while procfs.is_alive(self.root_pid, root=self.proc_root):
            if time.monotonic() >= deadline:
                break
            time.sleep(0.02)
        return None  # exited or not, its status is its parent's to collect

    def ended(self) -> str | None:
        if self._wait_exit is None or self.alive():
            return None
        status = self._wait_exit(ENDED_WAIT_S)  # the owner knows: the process is not our child
        return None if status is None else describe_returncode(status)

    def close(self) -> None:
        """Nothing to do: the owner of the server (the container) removes it."""
