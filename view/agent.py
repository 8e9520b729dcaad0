"""python3 -m view.agent: the servers of one pid namespace, as JSON, for the view to collect.

Runs in its own locked-down container that shares a server container's pid namespace (compose
`pid: "service:fork-server"`), as the servers' user: it reads that namespace's /proc and
nothing else, and answers GET /snapshot. The server never depends on it; if it fails, the view
says so and the server serves on.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys

from probe import procfs, snapshot
from view.sources import server_document
from view.web import CappedHTTPServer, QuietHandler

MAX_CONNECTIONS = 8


class AgentHandler(QuietHandler):
    proc_root = procfs.PROC

    def do_GET(self) -> None:
        if self.path.split("?", 1)[0] != "/snapshot":
            self.not_found()
            return
        found = snapshot.servers(self.proc_root, exclude=[os.getpid()])
        docs = [server_document("", s, self.proc_root) for s in found]
        body = json.dumps({"servers": docs}, separators=(",", ":")).encode()
        self.send_body(200, "application/json", body)

    do_HEAD = do_GET


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m view.agent", description=__doc__)
    parser.add_argument("--listen", default="0.0.0.0:7070", metavar="HOST:PORT")
    args = parser.parse_args(argv)
    host, _, port = args.listen.rpartition(":")
    try:
        server = CappedHTTPServer((host, int(port)), AgentHandler, MAX_CONNECTIONS)
    except (OSError, ValueError) as error:
        print(f"python3 -m view.agent: cannot listen on {args.listen}: {error}", file=sys.stderr)
        return 1
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    print(f"view agent on {args.listen}: the servers of this pid namespace", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
