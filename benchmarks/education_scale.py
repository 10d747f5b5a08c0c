"""Bronze + silver education (and its quality checks) of a generated school-level EES file: wall time and
peak memory of the whole `kpi-lake sync` command, in a child process so its peak RSS is its own.

    .venv/bin/python benchmarks/education_scale.py --rows 2000000      # a 2M-row file (~400 MB)
    .venv/bin/python benchmarks/education_scale.py --rows 5000000

Everything is written under a temporary folder (removed unless --keep).
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


def run_sync(lake: Path, landing: Path) -> tuple[float, float]:
    """Seconds and peak RSS (MB) of one `kpi-lake sync` of the education tables."""
    env = {**os.environ, "KPI_LAKE_ROOT": str(lake), "KPI_LAKE_LANDING": str(landing)}
    env.pop("DAGSTER_HOME", None)
    started = time.perf_counter()
    subprocess.run([str(ROOT / ".venv/bin/kpi-lake"), "sync", "--select", SELECTION], env=env, check=True,
                   stdout=subprocess.DEVNULL)  # fmt: skip
    seconds = time.perf_counter() - started
    return seconds, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="kpi-lake-ees-"))
    try:
        csv = work / "landing/education/ees_school_level.csv"
        subprocess.run([sys.executable, str(ROOT / "benchmarks/generate_ees.py"), "--rows", str(args.rows),
                        "--out", str(csv)], check=True)  # fmt: skip
        seconds, peak = run_sync(work / "lake", work / "landing")
        load = os.getloadavg()[0]
        print(f"bronze + silver education + checks, {args.rows:,} rows: {seconds:.1f} s, peak RSS {peak:,.0f} MB "
              f"(load average {load:.1f})")  # fmt: skip
        return 0
    finally:
        if args.keep:
            print(f"kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
