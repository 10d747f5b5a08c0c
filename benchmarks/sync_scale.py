"""Time the nightly sync at a given scale: generate a landing zone, run the job twice (first load, then a
rerun with nothing new), report wall time, rows and peak memory.

    .venv/bin/python benchmarks/sync_scale.py --scale 200      # ~10 million business-system rows

Results go to stdout as a small table; nothing is written outside a temporary folder unless --keep.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=20)
    parser.add_argument("--seed", type=int, default=20261126)
    parser.add_argument("--keep", action="store_true", help="keep the landing zone and lake")
    args = parser.parse_args()

    import dagster as dg

    from kpi_lake.sample_data import generate_landing
    from pipelines import definitions
    from tests.pipeline_helpers import local_resources

    work = Path(tempfile.mkdtemp(prefix="kpi-lake-bench-"))
    try:
        started = time.perf_counter()
        story = generate_landing(work / "landing", scale=args.scale, seed=args.seed)
        generated = time.perf_counter() - started
        business_rows = sum(story.business_rows.values())

        resources = local_resources(work / "lake", work / "landing")
        job = dg.Definitions(
            assets=definitions.defs.assets, jobs=definitions.defs.jobs, resources=resources
        ).resolve_job_def("nightly_sync")
        # One instance for both runs, as in production: the rerun knows when each table was last reconciled
        # in full (a fresh instance per run would make every rerun a full reconciliation).
        instance = dg.DagsterInstance.ephemeral()
        timings = {}
        for label in ("first sync", "rerun, nothing new"):
            started = time.perf_counter()
            result = job.execute_in_process(instance=instance, raise_on_error=False)
            timings[label] = time.perf_counter() - started
            if not result.success:
                print(f"{label}: FAILED", file=sys.stderr)
                return 1
        lake_rows = 0
        for event in result.get_asset_materialization_events():
            count = event.materialization.metadata.get("dagster/row_count")
            lake_rows += int(count.value) if count is not None else 0

        print(f"scale {args.scale:g}: {business_rows:,} business-system rows, {lake_rows:,} rows in the lake")
        print(f"{'step':<22}{'seconds':>10}")
        print(f"{'generate':<22}{generated:>10.1f}")
        for label, seconds in timings.items():
            print(f"{label:<22}{seconds:>10.1f}")
        print(f"peak memory (RSS): {_peak_rss_mb():,.0f} MB")
        return 0
    finally:
        if args.keep:
            print(f"kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
