"""Bronze + silver education (and its quality checks) of a generated school-level EES file: wall time and
peak memory of the whole `kpi-lake sync` command, in a child process so its peak RSS is its own, against
issue 11's ceilings (under 2 GB at 2M rows, under 3 GB at 5M rows), with the peak of each step.

    .venv/bin/python benchmarks/education_scale.py --rows 2000000      # a 2M-row file (~400 MB)
    .venv/bin/python benchmarks/education_scale.py --rows 5000000 --data /tmp/ees-bench

Everything is written under a temporary folder, removed at the end (unless --keep). ``--data DIR`` keeps the
generated file in DIR (``ees_<rows>.csv``) and reuses it next time. With ``--check``, the exit status is 1 when
the ceiling is missed.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SELECTION = " or ".join(
    f'key:"{key}"'
    for key in (
        "bronze/education/ees_data",
        "bronze/education/ees_metadata",
        "silver/open_data/education",
        "silver/open_data/education_quarantine",
    )
)
#: Issue 11: peak RSS of the whole command, bytes, by rows of the file (decimal GB: the stricter reading).
CEILINGS = {2_000_000: 2_000_000_000, 5_000_000: 3_000_000_000}


def run_sync(lake: Path, landing: Path, steps: Path) -> tuple[float, int]:
    """Seconds and peak RSS (bytes) of one `kpi-lake sync` of the education tables; each step's peak RSS
    goes to ``steps`` (see benchmarks/rss_trace.py)."""
    env = {**os.environ, "KPI_LAKE_ROOT": str(lake), "KPI_LAKE_LANDING": str(landing)}
    env.pop("DAGSTER_HOME", None)
    command = [sys.executable, str(ROOT / "benchmarks/rss_trace.py"), "--out", str(steps), "sync", "--select",
               SELECTION]  # fmt: skip
    started = time.perf_counter()
    subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL, cwd=ROOT)
    seconds = time.perf_counter() - started
    return seconds, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024


def ees_file(rows: int, data: Path | None, work: Path) -> Path:
    """The generated file: from ``data`` when it was generated there before, else written (and kept there)."""
    target = (data or work) / f"ees_{rows}.csv"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, str(ROOT / "benchmarks/generate_ees.py"), "--rows", str(rows),
                        "--out", str(target)], check=True)  # fmt: skip
    return target


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--data", type=Path, default=None, help="keep and reuse the generated file here")
    parser.add_argument("--keep", action="store_true", help="keep the temporary lake and landing zone")
    parser.add_argument("--check", action="store_true", help="exit 1 when the ceiling is missed")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="kpi-lake-ees-"))
    try:
        source = ees_file(args.rows, args.data, work)
        landing = work / "landing"
        (landing / "education").mkdir(parents=True)
        os.symlink(source.resolve(), landing / "education/ees_school_level.csv")
        steps = work / "steps.tsv"
        seconds, peak = run_sync(work / "lake", landing, steps)
        load = os.getloadavg()
        print(f"bronze + silver education + checks, {args.rows:,} rows: {seconds:.1f} s, peak RSS "
              f"{peak / 1e9:.2f} GB ({peak / 2**20:,.0f} MiB) (load average {load[0]:.1f} {load[1]:.1f})")  # fmt: skip
        import polars as pl

        for table in ("silver/open_data/education", "silver/open_data/education_quarantine"):
            count = pl.scan_delta(str(work / "lake" / table)).select(pl.len()).collect().item()
            print(f"  {table}: {count:,} rows")
        print("peak RSS by step (MiB, seconds):")
        for line in steps.read_text().splitlines():
            step, mib, sampled = line.split("\t")
            print(f"  {step:<42} {int(mib):>6,} {float(sampled):>7.1f}")
        ceiling = CEILINGS.get(args.rows)
        if ceiling is None:
            print(
                f"no ceiling for {args.rows:,} rows (issue 11 sets {', '.join(f'{r:,}' for r in CEILINGS)})"
            )
            return 0
        passed = peak < ceiling
        print(f"{'PASS' if passed else 'FAIL'}: peak RSS {peak / 1e9:.2f} GB "
              f"{'<' if passed else '>='} {ceiling / 1e9:.0f} GB at {args.rows:,} rows")  # fmt: skip
        return 0 if passed or not args.check else 1
    finally:
        if args.keep:
            print(f"kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
