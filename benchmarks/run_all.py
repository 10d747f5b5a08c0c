"""`make bench`: every benchmark of docs/BENCHMARKS.md in one run on this machine, then one summary of the floors.

    .venv/bin/python benchmarks/run_all.py            # everything (tens of minutes of both cores)
    .venv/bin/python benchmarks/run_all.py --quick    # smaller inputs, to try the harness itself

Each benchmark runs as its own command and prints its own table; lines that compare a result with one of issue
11's floors end in PASS or FAIL and are gathered at the end. The whole output is also written to
``benchmarks/results/<date>-<time>.txt`` (git-ignored) with the machine, the load average and the date, so a
result can be copied into docs/BENCHMARKS.md as measured.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYTHON = str(ROOT / ".venv/bin/python")
VERDICT = re.compile(r"\b(PASS|FAIL)\b")


def benchmarks(quick: bool) -> list[tuple[str, list[str]]]:
    """(title, command) of each benchmark, full size or ``quick``."""
    rows = "200000" if quick else "2000000"
    scale = "20" if quick else "200"
    runs = [
        ("code location load", [PYTHON, str(ROOT / "benchmarks/run_all.py"), "--load-time"]),
        ("bronze against polars and pandas", [PYTHON, "benchmarks/bronze_peers.py", "--rows", rows]),
        ("education, bronze + silver + checks", [PYTHON, "benchmarks/education_scale.py", "--rows", rows]),
    ]
    if not quick:
        runs.append(("education at 5M rows", [PYTHON, "benchmarks/education_scale.py", "--rows", "5000000"]))
    runs += [
        ("nightly cost against change", [PYTHON, "benchmarks/sync_scale.py", "--scale", scale]),
        (
            "SQL models against dbt-duckdb",
            [PYTHON, "benchmarks/dbt_duckdb.py", "--scale", "20" if quick else "100"],
        ),
    ]
    return [(title, command) for title, command in runs if (ROOT / command[1]).exists()]


def load_time(repeat: int = 5) -> int:
    """Seconds to import the code location (what the UI and each run pay), in fresh processes; and Dagster's
    own import, for scale."""

    def timed(code: str) -> float:
        seconds = []
        for _ in range(repeat):
            started = time.perf_counter()
            subprocess.run([PYTHON, "-c", code], cwd=ROOT, check=True)
            seconds.append(time.perf_counter() - started)
        return min(seconds)  # the cost itself; the slower runs measure what else the machine was doing

    python = timed("pass")
    dagster = timed("import dagster")
    location = timed("import pipelines.definitions")
    print(f"python start-up {python:.2f} s; import dagster {dagster:.2f} s; "
          f"import pipelines.definitions {location:.2f} s (best of {repeat})")  # fmt: skip
    print(f"code location load beyond Dagster's own import: {location - dagster:.2f} s")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller inputs (not the issue's sizes)")
    parser.add_argument("--load-time", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.load_time:
        return load_time()

    started = dt.datetime.now()
    header = [
        f"kpi-lake benchmarks, {started:%Y-%m-%d %H:%M}{' (quick sizes)' if args.quick else ''}",
        f"machine: {os.cpu_count()} CPUs, {_memory_gb():.0f} GB RAM, {platform.platform()}, "
        f"Python {platform.python_version()}",
    ]
    lines = list(header)
    verdicts: list[str] = []
    failed_runs: list[str] = []
    for line in header:
        print(line, flush=True)
    for title, command in benchmarks(args.quick):
        load = os.getloadavg()[0]
        heading = f"\n== {title} (load average {load:.1f} at start): {' '.join(command[1:])}"
        print(heading, flush=True)
        lines.append(heading)
        process = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
        output = process.stdout.rstrip()
        print(output, flush=True)
        lines.append(output)
        if process.returncode != 0:
            failed_runs.append(title)
            tail = process.stderr.strip().splitlines()[-15:]
            print("\n".join(tail), flush=True)
            lines.extend(tail)
        verdicts += [f"{title}: {line.strip()}" for line in output.splitlines() if VERDICT.search(line)]

    summary = ["", "== floors (issue 11)"] + (verdicts or ["(no benchmark printed a floor)"])
    if failed_runs:
        summary.append("benchmarks that did not finish: " + ", ".join(failed_runs))
    print("\n".join(summary))
    lines += summary
    results = ROOT / "benchmarks/results"
    results.mkdir(exist_ok=True)
    target = results / f"{started:%Y-%m-%d-%H%M}.txt"
    target.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"\nwritten to {target.relative_to(ROOT)}")
    return 1 if failed_runs else 0


def _memory_gb() -> float:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9
    except (ValueError, OSError):
        return 0.0


if __name__ == "__main__":
    sys.exit(main())
