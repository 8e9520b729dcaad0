"""The command line of `python -m server {fork,select,epoll}`, parsed with argparse.

Imported only for the parse: server/__main__.py drops this module, argparse and whatever
they imported before the server starts (see there why).
"""

from __future__ import annotations

import argparse

DEFAULT_PORTS = {"fork": 9000, "select": 9001, "epoll": 9002}


def port_number(text: str) -> int:
    port = int(text)
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a TCP port (0-65535)")
    return port


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m server",
        description="Multi-client TCP echo servers, one per concurrency model.",
    )
    models = parser.add_subparsers(dest="model", required=True, metavar="MODEL")

    def add_model(name: str, help_text: str) -> argparse.ArgumentParser:
        model = models.add_parser(name, help=help_text, description=help_text)
        model.add_argument(
            "--host", default="0.0.0.0", help="address to listen on (default: %(default)s)"
        )
        model.add_argument(
            "--port",
            type=port_number,
            default=DEFAULT_PORTS[name],
            help="TCP port; 0 picks a free one and logs it (default: %(default)s)",
        )
        model.add_argument(
            "--quiet-peer",
            action="append",
            default=[],
            metavar="IP",
            help="serve connections from IP without logging them (the container's own "
            "health probe); may be repeated",
        )
        return model

    fork = add_model("fork", "accept() in the parent, fork() one child per connection")
    fork.add_argument(
        "--max-children",
        type=int,
        default=512,
        metavar="N",
        help="at N live children stop accepting; new connections wait in the listen "
        "backlog until a child exits (default: %(default)s)",
    )
    for flag, effect in (
        ("--no-reap", "never waitpid(): exited children stay zombies"),
        ("--child-keeps-listener", "children do not close the listening socket"),
        ("--parent-keeps-client", "the parent does not close client sockets"),
        (
            "--single-waitpid",
            "the SIGCHLD handler calls waitpid() once per signal: one signal can stand for "
            "many exits, so children closing together stay zombies",
        ),
    ):
        fork.add_argument(flag, action="store_true", help=f"break it (teaching): {effect}")
    multiplexers = (
        (
            "select",
            "select()",
            "FD_SETSIZE (1024: select() watches no descriptor beyond it) or RLIMIT_NOFILE if lower",
        ),
        ("epoll", "epoll", "RLIMIT_NOFILE, raised toward 65536"),
    )
    for name, mechanism, ceiling in multiplexers:
        model = add_model(name, f"one process multiplexing every client with {mechanism}")
        model.add_argument(
            "--max-clients",
            type=int,
            default=None,
            metavar="N",
            help="at N clients stop accepting; new connections wait in the listen backlog "
            f"(default and ceiling: {ceiling}, minus 16 reserved descriptors)",
        )
        model.add_argument(
            "--blocking-send",
            action="store_true",
            help="break it (teaching): echo with a blocking sendall(), so one client that "
            "sends and never reads stalls every other client",
        )
        if name == "select":
            model.add_argument(
                "--no-fd-cap",
                action="store_true",
                help="break it (teaching): no FD_SETSIZE cap: accept past 1024 descriptors, "
                "and select() then fails",
            )
    args = parser.parse_args(argv)
    for option in ("max_children", "max_clients"):
        value = getattr(args, option, None)
        if value is not None and value < 1:
            parser.error(f"--{option.replace('_', '-')} must be at least 1")
    return args
