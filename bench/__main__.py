"""python -m bench [--quick] [--only N]: run the benchmark suite, write docs/BENCHMARKS.md.

Exits non-zero when a scenario crashed or a ratio target is missed by more than a factor
of 2 (a gross regression; a plain miss is reported, not failed, as noise can cause it).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import platform
import shlex
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from . import dbload, fanout, feeds, idle, logtail, pagescale, statscale, viewer_delay, writers
from .client import raise_fd_limit
from .hubs import nchan_versions
from .postgres import BenchPostgres, cpu_model, load_average
from .report import ScenarioResult, write_plot, write_report

__all__ = ["main"]

Scenario = Callable[[BenchPostgres, bool], ScenarioResult]
SCENARIOS: dict[int, Scenario] = {
    1: fanout.run,
    2: idle.run,
    3: dbload.run,
    4: statscale.run,
    5: writers.run,
    6: logtail.run,
    7: viewer_delay.run,
    8: feeds.run,
    9: pagescale.run,
}
PACKAGES = (
    "aiohttp",
    "aiohttp-sse",
    "aiopg",
    "psycopg2-binary",
    "sse-starlette",
    "starlette",
    "uvicorn",
    "uvloop",
    "httptools",
)
DOCS = Path(__file__).resolve().parent.parent / "docs"


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "--quick", action="store_true", help="Smaller sizes and shorter steps (CI, < 3 minutes)."
    )
    parser.add_argument(
        "--only", type=int, action="append", choices=sorted(SCENARIOS), help="Run scenario N."
    )
    parser.add_argument(
        "--dsn",
        default=os.environ.get("ZAPJOBS_BENCH_DSN"),
        help="Superuser DSN of the PostgreSQL to use (env ZAPJOBS_BENCH_DSN); "
        "default: an embedded PostgreSQL in a temporary directory.",
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=None,
        help="Markdown report to write, plots beside it (default: docs/BENCHMARKS.md for a "
        "full run of every scenario; no file for --quick or --only).",
    )
    args = parser.parse_args(argv)
    raise_fd_limit()
    chosen = args.only or sorted(SCENARIOS)
    full = not args.quick and not args.only
    output: Path | None = args.output or (DOCS / "BENCHMARKS.md" if full else None)
    started = time.monotonic()
    load_before = load_average()
    postgres = BenchPostgres(args.dsn)
    postgres.start()
    results: list[ScenarioResult] = []
    try:
        for number in chosen:
            began = time.monotonic()
            print(f"bench: scenario {number} ...", flush=True)
            try:
                result = SCENARIOS[number](postgres, args.quick)
            except Exception as error:
                traceback.print_exc()
                result = ScenarioResult(number, f"scenario {number}", [], error=repr(error))
            result.seconds = time.monotonic() - began
            results.append(result)
            print(f"bench:   ({result.seconds:.0f} s)", flush=True)
            for target in result.targets:
                state = "met" if target.met else "MISSED"
                if not target.met and target.ratio and target.ratio.known_limit:
                    state = f"MISSED (a known limit, not gated: {target.ratio.known_limit})"
                if target.grossly_missed:
                    state = "GROSSLY MISSED (below half the target)"
                print(f"bench:   {state}: {target.text}: {target.measured}", flush=True)
    finally:
        postgres.stop()
    elapsed = time.monotonic() - started
    header = [
        f"Command: `{shlex.join(['python', '-m', 'bench', *sys.argv[1:]])}`"
        f" ({'quick' if args.quick else 'full'} mode),"
        f" {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())},"
        f" {elapsed:.0f} s.",
        "",
        f"Machine: {os.cpu_count()} CPUs ({cpu_model()}), {platform.system()} {platform.release()},"
        f" load average (1/5/15 min) {load_before} at the start and {load_average()} at the end."
        " The load generator, PostgreSQL and the system under test share these CPUs;"
        " compare the ratios measured in the same run, not absolute figures across machines.",
        "",
        f"Versions: Python {platform.python_version()}, PostgreSQL {postgres.version}, "
        + ", ".join(f"{package} {_version(package)}" for package in PACKAGES)
        + f", {nchan_versions()}.",
    ]
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        write_report(results, output, header, with_plots=True)
        for result in results:
            for plot in result.plots:
                write_plot(plot, output.parent)
        print(f"bench: report written to {output}", flush=True)
    targets = [target for result in results for target in result.targets]
    met = sum(target.met for target in targets)
    crashed = [result.number for result in results if result.error]
    gross = [
        result.number for result in results for target in result.targets if target.grossly_missed
    ]
    print(
        f"bench: {len(results)} scenarios, {met} targets met, {len(targets) - met} missed,"
        f" {elapsed:.0f} s in all"
        + (f", scenarios {crashed} crashed" if crashed else "")
        + (f", scenarios {sorted(set(gross))} below half a ratio target" if gross else ""),
        flush=True,
    )
    return 1 if crashed or gross else 0


if __name__ == "__main__":
    sys.exit(main())
