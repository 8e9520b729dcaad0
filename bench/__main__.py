"""python -m bench: our servers and the standard library's peers, same scenarios, same run.

    python3 -m bench [--quick] [--out DIR] [--scenarios S ...] [--servers S ...] [--repeats R]
    python3 -m bench --target [NAME=]HOST:PORT ...     (a server already running: compose)
    python3 -m bench --command 'fork=python3 -m server fork --port 9000 ...'   (its own command)

Beside our servers and the standard library's peers it runs the references that bound each
model: the minimal Python server of each model, the C fork and select servers (compiled here
when cc or gcc is present, skipped with a note when not) and the bare fork()+_exit()+waitpid()
loop of the same interpreter.

Writes DIR/results.md (also printed), DIR/results.jsonl, DIR/chart.png and the servers' logs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench import cbuild, chart, ratios, report
from bench.runner import run_scenario
from bench.scenarios import DEFAULT, pick
from bench.servers import (
    DEFAULT_SERVERS,
    PROCESS,
    REFERENCE,
    SERVERS,
    LocalServer,
    Server,
    TargetServer,
)
from probe.addresses import check_host
from probe.limits import raise_open_files


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="scenarios: "
        + ", ".join(s.name for s in DEFAULT)
        + "\nservers: "
        + ", ".join(SERVERS),
    )
    parser.add_argument(
        "--quick", action="store_true", help="short windows, one repeat: seconds, rough figures"
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("bench-results"),
        metavar="DIR",
        help="results.md, results.jsonl, chart.png and logs/ (default: %(default)s)",
    )
    parser.add_argument("--scenarios", nargs="+", metavar="NAME", help="default: all")
    parser.add_argument(
        "--servers",
        nargs="+",
        metavar="NAME",
        choices=list(SERVERS),
        help="default: " + " ".join(DEFAULT_SERVERS),
    )
    parser.add_argument(
        "--repeats", type=int, metavar="R", help="runs of each scenario (default 3, --quick 1)"
    )
    parser.add_argument(
        "--target",
        action="append",
        default=[],
        metavar="[NAME=]HOST:PORT",
        help="bench a server already running (127.0.0.1 or a compose service)",
    )
    parser.add_argument(
        "--command",
        action="append",
        default=[],
        metavar="NAME=COMMAND",
        help="start server NAME with this command line (shlex-split), e.g. a compose "
        "service's; it must listen on --host's loopback address",
    )
    parser.add_argument("--host", default="127.0.0.1", help="where local servers listen")
    parser.add_argument(
        "--workers", type=int, default=0, help="load generator processes (default: one per core)"
    )
    parser.add_argument("--no-chart", action="store_true", help="skip chart.png (matplotlib)")
    args = parser.parse_args(argv)
    if args.repeats is None:
        args.repeats = 1 if args.quick else 3
    if not 1 <= args.repeats <= 20:
        parser.error("--repeats must be 1..20")
    check_host(args.host)
    args.commands = {}
    for text in args.command:
        name, _, line = text.partition("=")
        if name not in SERVERS or not line:
            parser.error(f"--command {text!r}: NAME=COMMAND with NAME one of {', '.join(SERVERS)}")
        args.commands[name] = shlex.split(line)
    return args


def parse_target(text: str) -> tuple[str, str, int]:
    name, _, address = text.rpartition("=")
    host, _, port = address.rpartition(":")
    check_host(host)
    return name or host, host, int(port)


def machine() -> str:
    return (
        f"{os.cpu_count()} cores, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}"
    )


ROOT = Path(__file__).resolve().parents[1]


def server_version() -> str:
    """Which servers/ code ran: the last commit touching it, and whether it was modified."""
    root = ROOT
    try:
        last = subprocess.run(
            ["git", "-C", str(root), "log", "-1", "--format=%h %s", "--", "server"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "diff", "--quiet", "HEAD", "--", "server"], timeout=5
        ).returncode
    except (OSError, subprocess.SubprocessError):
        return "unknown (no git here)"
    return last[:72] + (" + uncommitted changes" if dirty else "")


def one_minute_load() -> float:
    return round(os.getloadavg()[0], 2)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    scenarios = pick(args.scenarios, args.quick)
    raise_open_files()  # before the servers start: they inherit it
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("logs/*.log"):
        old.unlink()  # the servers' logs of this run only
    meta: dict[str, Any] = {
        "kind": "meta",
        "machine": machine(),
        "server_version": server_version(),
        "command": "python3 -m bench " + shlex.join(sys.argv[1:] if argv is None else argv),
        "repeats": args.repeats,
        "load_before": one_minute_load(),
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    records: list[dict[str, Any]] = []
    names = args.servers or ([] if args.target else list(DEFAULT_SERVERS))
    names, meta["notes"] = build_c(names, args)
    rate = next((s for s in scenarios if s.load.mode == "rate"), None)
    with open(out / "results.jsonl", "w") as jsonl:
        for repeat in range(args.repeats):
            if rate and any(SERVERS[n].model == PROCESS for n in names):
                records.append(fork_loop(args, rate.load.duration, repeat, jsonl))
            # Servers take turns within each repeat: a burst of outside load spreads over all.
            for name in names:
                records += bench_local(name, scenarios, args, repeat, jsonl)
            for text in args.target:
                records += bench_target(text, scenarios, args, repeat, jsonl)
        meta["load_after"] = one_minute_load()
        jsonl.write(json.dumps(meta) + "\n")
    titles = {s.name: s.title for s in scenarios}
    titles["fork-loop"] = "the bare fork()+_exit()+waitpid() loop of the fork server's interpreter"
    text = report.markdown(meta, records, titles, ratios.markdown(records))
    (out / "results.md").write_text(text + "\n")
    print(text)
    if not args.no_chart:
        drawn = chart.draw(records, out / "chart.png")
        print(f"\nchart: {drawn}" if drawn else "\nchart: skipped (no matplotlib here)")
    bad = [r for r in records if r["mismatches"] or (r["ours"] and (r["errors"] or r["crashed"]))]
    for r in bad:
        print(f"FAILED: {r['server']} {r['scenario']}: {r['samples'][:2]}", file=sys.stderr)
    return 1 if bad else 0


def build_c(names: list[str], args: argparse.Namespace) -> tuple[list[str], list[str]]:
    """Compile the C references asked for; drop them, with a note, where that cannot be done."""
    kept, notes = [], []
    for name in names:
        program = SERVERS[name].c_program
        if program and name not in args.commands:
            binary, why = cbuild.build(program, args.out / "c")
            if binary is None:
                notes.append(f"{name} skipped: {why}")
                continue
            args.commands[name] = SERVERS[name].command(args.host, binary.parent)
        kept.append(name)
    return kept, notes


def interpreter(args: argparse.Namespace) -> list[str]:
    """The fork server's interpreter and its flags (python3 -S ...), for the bare fork loop."""
    line = args.commands.get("fork", [sys.executable, "-m"])
    return line[: line.index("-m")] if "-m" in line else [sys.executable]


def fork_loop(args: argparse.Namespace, seconds: float, repeat: int, jsonl: Any) -> dict[str, Any]:
    """The ceiling of any fork server's connection rate: fork, _exit, waitpid, nothing else."""
    command = [*interpreter(args), "-m", "bench.forkloop", str(seconds)]
    run = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=seconds + 30, check=False
    )
    result: dict[str, Any] = {
        "kind": "run",
        "server": ratios.FORK_LOOP,
        "model": PROCESS,
        "ours": False,
        "role": REFERENCE,
        "scenario": "fork-loop",
        "mode": "forkloop",
        "interpreter": shlex.join(command[:-3]),
        "errors": 0 if run.returncode == 0 else 1,
        "mismatches": 0,
        "crashed": run.returncode != 0,
        "samples": [run.stderr[-300:]] if run.returncode else [],
        "repeat": repeat,
        "load_1min": one_minute_load(),
    }
    if run.returncode == 0:
        result.update(json.loads(run.stdout))
    jsonl.write(json.dumps(result) + "\n")
    jsonl.flush()
    print(
        f"[{repeat + 1}/{args.repeats}] {ratios.FORK_LOOP:24} {result.get('forks_per_s')}/s",
        file=sys.stderr,
        flush=True,
    )
    return result


def bench_local(
    name: str, scenarios: list, args: argparse.Namespace, repeat: int, jsonl: Any
) -> list[dict[str, Any]]:
    spec = SERVERS[name]
    chosen = [s for s in scenarios if s.applies_to(spec.model, spec.role)]
    log = args.out / "logs" / f"{name}.log"
    records = []
    server: LocalServer | None = None
    try:
        for scenario in chosen:
            if server is None or not server.alive():
                if server is not None:
                    server.stop()
                server = LocalServer(spec, args.host, log, args.commands.get(name))
            records.append(record(server, scenario, args, repeat, jsonl))
    finally:
        if server is not None:
            server.stop()
    return records


def bench_target(
    text: str, scenarios: list, args: argparse.Namespace, repeat: int, jsonl: Any
) -> list[dict[str, Any]]:
    name, host, port = parse_target(text)
    server = TargetServer(name, host, port)
    return [record(server, s, args, repeat, jsonl) for s in scenarios if s.applies_to(server.model)]


def record(
    server: Server, scenario: Any, args: argparse.Namespace, repeat: int, jsonl: Any
) -> dict[str, Any]:
    result = run_scenario(server, scenario, args.workers)
    result["repeat"] = repeat
    result["load_1min"] = one_minute_load()
    jsonl.write(json.dumps(result) + "\n")
    jsonl.flush()
    headline = next(
        (
            f"{k}={result[k]}"
            for k in ("requests_per_s", "sessions_per_s", "mb_per_s", "served_at_once")
            if k in result
        ),
        "",
    )
    print(
        f"[{repeat + 1}/{args.repeats}] {server.name:24} {scenario.name:14} {headline:28} "
        f"errors={result['errors']} mismatches={result['mismatches']}"
        + (" CRASHED" if result["crashed"] else ""),
        file=sys.stderr,
        flush=True,
    )
    return result


if __name__ == "__main__":
    sys.exit(main())
