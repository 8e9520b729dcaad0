"""`python3 -m check --image IMAGE`: the server confined in a container, the checker beside it.

For code you did not write. The checker makes, for this run only and labelled
``echolab.check=1``:

* a network of its own, internal (no route beyond it);
* the checker's container (``--checker-image``, default the lab image, which holds check/
  and probe/), running ``check.observer`` as PID 1 of a new pid namespace;
* the server's container, in that pid namespace (``pid_mode=container:<checker>``) and on
  that network, locked down like the lab's services: user 10001, no capabilities,
  no-new-privileges, a read-only root, pids and memory limits.

The observer reads the server's processes and descriptors in its own /proc, so this works
where the host cannot see container processes (Docker Desktop on macOS and Windows). It
streams its progress as JSON lines; this side shows them with the same reporter, writes the
same JSON and JUnit, and exits 0/1/2 like host mode. Everything it made is removed at the
end, on Ctrl-C and SIGTERM too. The docker SDK is imported here only.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import signal
import sys
import threading
import time
import uuid
from types import FrameType
from typing import Any

from check import registry
from check.report import TextReporter, write_json, write_junit
from check.results import CheckResult, Report
from check.target import OPEN_FILES_WANTED, CannotCheck

EXIT_PASSED, EXIT_FAILED, EXIT_CANNOT_CHECK = 0, 1, 2
PROG = "python3 -m check"
DEFAULT_CHECKER_IMAGE = "echolab:latest"
DEFAULT_PORT = 9000  # where "{port}" points inside the server's container
LABEL = "echolab.check"
RUN_LABEL = "echolab.check.run"

# The server: like the lab's services, with room past FD_SETSIZE and for a 200-client burst
# of children, yet a fork storm stops at its own pids limit.
SERVER_LIMITS: dict[str, Any] = {"pids_limit": 1024, "mem_limit": "512m"}
CHECKER_LIMITS: dict[str, Any] = {"pids_limit": 256, "mem_limit": "1g"}
EXIT_POLL_S = 0.05


def main(args: argparse.Namespace) -> int:
    try:
        import docker
    except ImportError:
        print(
            f"{PROG}: --image needs the docker Python package: pip install docker", file=sys.stderr
        )
        return EXIT_CANNOT_CHECK
    ids = registry.select_ids(args.only_ids, args.skip_ids)
    if not ids:
        print(f"{PROG}: --only/--skip leave no check to run", file=sys.stderr)
        return EXIT_CANNOT_CHECK
    previous = signal.signal(signal.SIGTERM, _interrupted)  # a cancelled CI job cleans up too
    run: ImageRun | None = None
    try:
        run = ImageRun(docker, args, ids)
        report = run.go()
    except CannotCheck as error:
        print(f"{PROG}: cannot check: {error}", file=sys.stderr)
        return EXIT_CANNOT_CHECK
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; the containers and network were removed", file=sys.stderr)
        return 130
    finally:
        if run is not None:
            run.remove()
        signal.signal(signal.SIGTERM, previous)
    if args.json:
        write_json(report, args.json)
    if args.junit:
        write_junit(report, args.junit)
    return EXIT_PASSED if report.passed else EXIT_FAILED


def _interrupted(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def docker_status(code: int) -> int:
    """The engine's exit code as the checker's status: 128+N is death by signal N (-N)."""
    return -(code - 128) if 128 < code < 128 + 65 else code


class ImageRun:
    """One run: the network and two containers, made, watched and removed."""

    def __init__(self, docker: Any, args: argparse.Namespace, ids: list[str]) -> None:
        self.docker = docker
        self.args = args
        self.ids = ids
        # ECHOLAB_CHECK_RUN names a run (its label): a grader's script or a test finds it by it.
        self.run_id = os.environ.get("ECHOLAB_CHECK_RUN") or uuid.uuid4().hex[:10]
        self.name = f"echolab-check-{self.run_id}"
        self.labels = {LABEL: "1", RUN_LABEL: self.run_id}
        self.client: Any = None
        self.network: Any = None
        self.checker: Any = None
        self.server: Any = None
        self._stdin: Any = None
        self.listening = threading.Event()
        self.server_gone = threading.Event()

    # ------------------------------------------------------------ making

    def go(self) -> Report:
        errors = self.docker.errors
        try:
            self.client = self.docker.from_env()
            self.client.ping()
        except errors.DockerException as error:
            raise CannotCheck(f"cannot reach the Docker engine: {error}") from None
        image = self._image(self.args.image, "--image")
        checker_image = self.args.checker_image or DEFAULT_CHECKER_IMAGE
        self._image(checker_image, "--checker-image")
        argv, port = self._command(image)
        description = (
            f"image {self.args.image}: {shlex.join(argv) if argv else 'its own command'} "
            f"(port {port}, confined)"
        )
        try:
            self.network = self.client.networks.create(
                self.name, driver="bridge", internal=True, labels=self.labels
            )
            self.checker = self.client.containers.create(
                checker_image,
                self._observer_argv(port, description),
                name=f"{self.name}-checker",
                stdin_open=True,
                **self._confined(CHECKER_LIMITS),
            )
            self.checker.start()
            self._stdin = self.client.api.attach_socket(
                self.checker.id, params={"stdin": 1, "stream": 1}
            )
            self.server = self.client.containers.create(
                self.args.image,
                argv or None,
                name=f"{self.name}-server",
                pid_mode=f"container:{self.checker.id}",
                **self._confined(SERVER_LIMITS),
            )
            self.server.start()
        except errors.APIError as error:
            raise CannotCheck(f"cannot start the containers: {_explain(error)}") from None
        threading.Thread(target=self._watch_start, name="watch-start", daemon=True).start()
        return self._follow()

    def _image(self, name: str, option: str) -> Any:
        try:
            return self.client.images.get(name)
        except self.docker.errors.ImageNotFound:
            raise CannotCheck(
                f"{option} {name}: no such image here (build it first; nothing is pulled)"
            ) from None

    def _command(self, image: Any) -> tuple[list[str], int]:
        """The server's argv ([] = the image's own) and the port it listens on."""
        command = self.args.command
        if command and "{port}" in command:
            port = self.args.port or DEFAULT_PORT
            return shlex.split(command.replace("{port}", str(port))), port
        if self.args.port:
            return (shlex.split(command) if command else []), self.args.port
        exposed = sorted(
            int(p.split("/")[0])
            for p in (image.attrs.get("Config", {}).get("ExposedPorts") or {})
            if p.endswith("/tcp")
        )
        if not exposed:
            raise CannotCheck(
                'the image exposes no TCP port: give --port P or "{port}" in --command'
            )
        return (shlex.split(command) if command else []), exposed[0]

    def _observer_argv(self, port: int, description: str) -> list[str]:
        argv = ["python3", "-m", "check.observer", "--host", f"{self.name}-server"]
        argv += ["--port", str(port), "--model", self.args.model, "--ids", ",".join(self.ids)]
        argv += ["--listen-timeout", str(self.args.listen_timeout)]
        argv += ["--description", description]
        return argv + (["--quick"] if self.args.quick else [])

    def _confined(self, limits: dict[str, Any]) -> dict[str, Any]:
        """What both containers share: the lab services' lockdown, on this run's network."""
        types = self.docker.types
        return {
            "labels": self.labels,
            "network": self.name,
            "user": "10001:10001",
            "cap_drop": ["ALL"],
            "security_opt": ["no-new-privileges:true"],
            "read_only": True,
            "ulimits": [
                types.Ulimit(name="nofile", soft=OPEN_FILES_WANTED, hard=OPEN_FILES_WANTED)
            ],
            "log_config": types.LogConfig(type="json-file", config={"max-size": "1m"}),
            "environment": {"PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": "1"},
            "detach": True,
            **limits,
        }

    # ------------------------------------------------------------ watching

    def _watch_start(self) -> None:
        """A server container that exits before it listens ends the run (exit status 2)."""
        while not self.listening.is_set():
            code = self._exit_code(self.server)
            if code is not None:
                self.server_gone.set()
                with contextlib.suppress(Exception):
                    self.checker.kill()
                return
            time.sleep(EXIT_POLL_S)

    def _exit_code(self, container: Any) -> int | None:
        try:
            container.reload()
        except self.docker.errors.NotFound:
            return -1
        state = container.attrs["State"]
        return None if state.get("Running") else int(state.get("ExitCode", -1))

    def _follow(self) -> Report:
        reporter = TextReporter()
        report: Report | None = None
        cannot: str | None = None
        for line in _lines(self.checker.logs(stream=True, follow=True, stderr=False)):
            try:
                event = json.loads(line)
            except ValueError:
                print(line, file=sys.stderr)  # not ours: say it, don't parse it
                continue
            kind = event.get("event")
            if kind == "listening":
                self.listening.set()
            elif kind == "note":
                reporter.note(event["text"])
            elif kind == "check_started":
                check = registry.BY_ID[event["id"]]
                reporter.check_started(check, event["index"], event["total"])
            elif kind == "check_done":
                reporter.check_done(CheckResult(**event["result"]), event["index"], event["total"])
            elif kind == "wait_exit":
                threading.Thread(
                    target=self._answer_exit, args=(float(event["timeout"]),), daemon=True
                ).start()
            elif kind == "report":
                fields = event["report"]
                fields["checks"] = [CheckResult(**c) for c in fields["checks"]]
                report = Report(**fields)
                reporter.finish(report)
            elif kind == "cannot":
                cannot = event["reason"]
            elif kind == "error":
                cannot = f"the checker failed: {event['text']}"
        code = None if report is not None else self._exit_code(self.server)
        if self.server_gone.is_set() or code is not None:
            when = "at once, before listening" if not self.listening.is_set() else "early"
            raise CannotCheck(
                f"the server's container exited {when} (exit {code}){self._last_words(self.server)}"
            )
        if cannot is not None:
            raise CannotCheck(cannot + self._last_words(self.server))
        if report is None:
            raise CannotCheck(
                "the checker's container ended without a report"
                f"{self._last_words(self.checker, stderr=True)}"
            )
        return report

    def _answer_exit(self, timeout: float) -> None:
        """The observer asks for the server's exit status (after SIGTERM, or once it died):
        only the engine has it."""
        deadline = time.monotonic() + timeout
        code = self._exit_code(self.server)
        while code is None and time.monotonic() < deadline:
            time.sleep(EXIT_POLL_S)
            code = self._exit_code(self.server)
        status = None if code is None else docker_status(code)
        with contextlib.suppress(OSError):
            _send(self._stdin, json.dumps({"status": status}).encode() + b"\n")

    def _last_words(self, container: Any, stderr: bool = True) -> str:
        """The last line a container wrote, to say why it did not get going."""
        if container is None:
            return ""
        with contextlib.suppress(Exception):
            text = container.logs(stdout=True, stderr=stderr, tail=5).decode(errors="replace")
            lines = [ln for ln in text.strip().splitlines() if ln.strip()]
            if lines:
                return f"; it said: {lines[-1][:200]}"
        return ""

    # ------------------------------------------------------------ removing

    def remove(self) -> None:
        """Remove what this run made, found by its label: also what an interrupted create
        made before its answer came back. A second Ctrl-C must not leave half of it behind."""
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            with contextlib.suppress(Exception):
                if self._stdin is not None:
                    self._stdin.close()
            if self.client is None:
                return
            api, by_run = self.client.api, {"label": f"{RUN_LABEL}={self.run_id}"}
            # The server first: it lives in the checker's pid namespace.
            found = sorted(api.containers(all=True, filters=by_run), key=_server_first)
            for container in found:
                with contextlib.suppress(self.docker.errors.NotFound):
                    api.remove_container(container["Id"], force=True)
            for network in api.networks(filters=by_run):
                with contextlib.suppress(self.docker.errors.NotFound):
                    api.remove_network(network["Id"])
        finally:
            signal.signal(signal.SIGINT, previous)


def _server_first(container: dict[str, Any]) -> bool:
    return not any(name.endswith("-server") for name in container.get("Names") or [])


def _lines(chunks: Any) -> Any:
    """Whole lines out of a stream of byte chunks."""
    pending = b""
    for chunk in chunks:
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            if line.strip():
                yield line.decode(errors="replace")
    if pending.strip():
        yield pending.decode(errors="replace")


def _send(attached: Any, data: bytes) -> None:
    """Write to an attached stdin: the SDK hands back a socket wrapped in a SocketIO."""
    raw = getattr(attached, "_sock", attached)
    raw.sendall(data)


def _explain(error: Any) -> str:
    text = getattr(error, "explanation", None) or str(error)
    return str(text).strip().splitlines()[0][:300]
