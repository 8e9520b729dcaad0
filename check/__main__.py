"""python3 -m check: the lab's checks for anyone's echo server.

Exit status: 0 every selected check passed, 1 a check failed, 2 the server could not be
checked at all (bad arguments, the command does not start or never listens, image missing);
then one line on stderr says which.
"""

from __future__ import annotations

import argparse
import signal
import sys
from types import FrameType

from check import registry
from check.report import TextReporter, write_json, write_junit
from check.target import LISTEN_TIMEOUT_S, CannotCheck, CommandTarget

EXIT_PASSED, EXIT_FAILED, EXIT_CANNOT_CHECK = 0, 1, 2

EPILOG = """\
--command runs the server as you, with your rights: use it for code you trust. For code you
did not write, --image runs it in a locked-down container (no capabilities, non-root, pids and
memory limits, no route beyond its own network).

examples:
  python3 -m check --command "python3 -m server fork --host 127.0.0.1 --port {port}"
  python3 -m check --command "./echo_selectserv {port}" --model select --quick
  python3 -m check --list
exit status: 0 all selected checks passed, 1 some failed, 2 could not check at all
"""


def port_number(text: str) -> int:
    port = int(text)
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a TCP port (1-65535)")
    return port


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python3 -m check",
        description="Check a multi-client TCP echo server against the lab's lessons: exact "
        "echo, concurrency, half-close, the fork model's children and zombies, the select "
        "model's one process and FD_SETSIZE, and a clean stop.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    what = parser.add_argument_group("what to check")
    what.add_argument(
        "--command",
        metavar="CMD",
        help='the server\'s command line; "{port}" is replaced by a free port the checker '
        "chose (split like a shell would, not run by one: use sh -c '...' for pipes or cd)",
    )
    what.add_argument(
        "--image", metavar="IMAGE", help="run the server from this Docker image, confined"
    )
    what.add_argument(
        "--checker-image",
        metavar="IMAGE",
        help="(--image) the image the checker itself runs in beside the server",
    )
    what.add_argument(
        "--port",
        type=port_number,
        metavar="P",
        help="the port the server listens on, for a server whose port is fixed",
    )
    what.add_argument(
        "--model",
        choices=("fork", "select", "auto"),
        default="auto",
        help="the concurrency model to check against; auto decides from a child per "
        "connection or one process, and says so (default: %(default)s)",
    )
    how = parser.add_argument_group("which checks, and the report")
    how.add_argument("--only", metavar="ID[,ID]", help="run only these checks")
    how.add_argument("--skip", metavar="ID[,ID]", help="run all but these checks")
    how.add_argument(
        "--quick", action="store_true", help="smaller crowds and streams: at most 15 s"
    )
    how.add_argument("--json", metavar="FILE", help="write the report as JSON")
    how.add_argument("--junit", metavar="FILE", help="write the report as JUnit XML")
    how.add_argument("--list", action="store_true", help="list the checks and exit")
    how.add_argument(
        "--listen-timeout",
        type=float,
        default=LISTEN_TIMEOUT_S,
        metavar="S",
        help="how long the server may take to listen (default: %(default)g s)",
    )
    args = parser.parse_args(argv)
    try:
        args.only_ids = registry.parse_ids(args.only)
        args.skip_ids = registry.parse_ids(args.skip)
    except ValueError as error:
        parser.error(str(error))
    if not args.list and not args.command and not args.image:
        parser.error("nothing to check: give --command CMD or --image IMAGE (or --list)")
    if args.command and not args.image and "{port}" not in args.command and not args.port:
        parser.error('--command needs "{port}" where the port goes, or --port P')
    if args.checker_image and not args.image:
        parser.error("--checker-image goes with --image")
    if args.listen_timeout <= 0:
        parser.error("--listen-timeout must be positive")
    return args


def list_checks() -> str:
    lines = [f"{'id':<25} {'model':<7} what passes"]
    for check in registry.CHECKS:
        lines.append(f"{check.id:<25} {check.model_text:<7} {check.title}")
    return "\n".join(lines) + "\n"


def _interrupted(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def main(argv: list[str] | None = None) -> int:
    try:
        args = parse_args(sys.argv[1:] if argv is None else argv)
    except SystemExit as done:  # argparse: --help is 0, a bad argument 2
        return int(done.code or 0)
    if args.list:
        sys.stdout.write(list_checks())
        return EXIT_PASSED
    if args.image:
        from check import container  # the docker SDK: imported only in this mode

        return int(container.main(args))
    # SIGTERM (a CI job cancelled) unwinds like Ctrl-C: the finally below kills the server.
    signal.signal(signal.SIGTERM, _interrupted)
    ids = registry.select_ids(args.only_ids, args.skip_ids)
    if not ids:
        print("python3 -m check: --only/--skip leave no check to run", file=sys.stderr)
        return EXIT_CANNOT_CHECK
    from check.run import run_checks

    target = None
    try:
        target = CommandTarget(args.command, args.port, args.listen_timeout)
        report = run_checks(
            target, ids, args.model, TextReporter(), args.quick, named=bool(args.only_ids)
        )
    except CannotCheck as error:
        print(f"python3 -m check: cannot check: {error}", file=sys.stderr)
        return EXIT_CANNOT_CHECK
    except KeyboardInterrupt:
        print("python3 -m check: interrupted; the server was stopped", file=sys.stderr)
        return 130
    finally:
        if target is not None:
            target.close()
    if args.json:
        write_json(report, args.json)
    if args.junit:
        write_junit(report, args.junit)
    return EXIT_PASSED if report.passed else EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
