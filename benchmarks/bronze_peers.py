"""Bronze ingest of a school-level EES file: the whole `kpi-lake sync` command against a bare polars script and
a pandas script that do the same job (the file's columns as text, the same lineage columns, one Delta table).

    .venv/bin/python benchmarks/bronze_peers.py --rows 2000000          # a 2M-row file (~400 MB)
    .venv/bin/python benchmarks/bronze_peers.py --csv landing/x.csv     # a file you have

Each contender runs as its own command (a child process, timed from start to exit, so start-up counts), into
a fresh lake, interleaved, best of ``--repeat``. Also timed: `kpi-lake sync` of the same selection with
nothing to land (its fixed cost) and Python's own start. The result is the ratios; the issue's floors are
kpi-lake >= 0.8x the polars script's throughput and >= 1.5x pandas'.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SELECTION = 'key:"bronze/education/ees_data"'

#: The polars peer: what a data engineer would write by hand with no framework (text columns, lineage, sink).
POLARS_SCRIPT = """
import datetime as dt, hashlib, sys, uuid
import polars as pl
csv, table = sys.argv[1], sys.argv[2]
digest = hashlib.sha256()
with open(csv, "rb") as handle:
    while chunk := handle.read(1 << 20):
        digest.update(chunk)
(
    pl.scan_csv(csv, infer_schema=False)
    .with_columns(
        pl.lit(csv.rsplit("/", 1)[-1]).alias("_source_file"),
        pl.lit(digest.hexdigest()).alias("_source_hash"),
        (pl.int_range(pl.len(), dtype=pl.Int64) + 2).alias("_source_row"),
        pl.lit(dt.datetime.now(dt.UTC)).dt.cast_time_unit("us").alias("_loaded_at"),
        pl.lit(str(uuid.uuid4())).alias("_run_id"),
    )
    .sink_delta(table, mode="overwrite")
)
"""

#: The pandas peer: read_csv as text, the same lineage columns, write_deltalake.
PANDAS_SCRIPT = """
import datetime as dt, hashlib, sys, uuid
import pandas as pd
from deltalake import write_deltalake
csv, table = sys.argv[1], sys.argv[2]
digest = hashlib.sha256()
with open(csv, "rb") as handle:
    while chunk := handle.read(1 << 20):
        digest.update(chunk)
frame = pd.read_csv(csv, dtype=str, keep_default_na=False)
frame["_source_file"] = csv.rsplit("/", 1)[-1]
frame["_source_hash"] = digest.hexdigest()
frame["_source_row"] = range(2, len(frame) + 2)
frame["_loaded_at"] = pd.Timestamp(dt.datetime.now(dt.UTC)).as_unit("us")
frame["_run_id"] = str(uuid.uuid4())
write_deltalake(table, frame, mode="overwrite")
"""


def _timed(command: list[str], env: dict[str, str] | None = None) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of one command run to its end (it must succeed)."""
    started = time.perf_counter()
    # A fresh process group per command; its RSS is read from wait4 so it is this command's alone.
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    stderr = process.stderr.read().decode(errors="replace") if process.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(command[:3])}... failed:\n{stderr[-2000:]}")
    return seconds, usage.ru_maxrss / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--csv", type=Path, help="an EES CSV to use instead of generating one")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    python = str(ROOT / ".venv/bin/python")
    work = Path(tempfile.mkdtemp(prefix="kpi-lake-bronze-peers-"))
    try:
        csv = work / "landing/education/ees_school_level.csv"
        if args.csv:
            csv.parent.mkdir(parents=True)
            shutil.copyfile(args.csv, csv)
        else:
            subprocess.run([python, str(ROOT / "benchmarks/generate_ees.py"), "--rows", str(args.rows),
                            "--out", str(csv)], check=True, stdout=subprocess.DEVNULL)  # fmt: skip
        size_mb = csv.stat().st_size / 1e6
        results: dict[str, list[tuple[float, float]]] = {}

        def record(name: str, measured: tuple[float, float]) -> None:
            results.setdefault(name, []).append(measured)

        record("python start-up", _timed([python, "-c", "pass"]))
        for attempt in range(args.repeat):
            lake = work / f"lake-{attempt}"
            env = {**os.environ, "KPI_LAKE_ROOT": str(lake), "KPI_LAKE_LANDING": str(work / "landing")}
            env.pop("DAGSTER_HOME", None)
            kpi_lake = [str(ROOT / ".venv/bin/kpi-lake"), "sync", "--select", SELECTION]
            record("kpi-lake sync (bronze)", _timed(kpi_lake, env))
            record("kpi-lake sync, nothing to land", _timed(kpi_lake, env))
            record("polars scan_csv -> sink_delta", _timed([python, "-c", POLARS_SCRIPT, str(csv),
                                                            str(work / f"polars-{attempt}")]))  # fmt: skip
            record("pandas read_csv -> write_deltalake", _timed([python, "-c", PANDAS_SCRIPT, str(csv),
                                                                 str(work / f"pandas-{attempt}")]))  # fmt: skip
            for folder in (lake, work / f"polars-{attempt}", work / f"pandas-{attempt}"):
                shutil.rmtree(folder, ignore_errors=True)
        best = {name: min(runs) for name, runs in results.items()}
        ours = best["kpi-lake sync (bronze)"][0]
        polars_s = best["polars scan_csv -> sink_delta"][0]
        pandas_s = best["pandas read_csv -> write_deltalake"][0]
        load = os.getloadavg()[0]
        print(f"bronze ingest of a {size_mb:,.0f} MB EES file, whole command, best of {args.repeat} "
              f"(load average {load:.1f})")  # fmt: skip
        print(f"{'command':<38} {'seconds':>8} {'MB/s':>7} {'peak RSS MB':>12}")
        for name, (seconds, rss) in best.items():
            rate = (
                f"{size_mb / seconds:7.0f}" if "start-up" not in name and "nothing" not in name else " " * 7
            )
            print(f"{name:<38} {seconds:8.2f} {rate} {rss:12,.0f}")
        vs_polars, vs_pandas = polars_s / ours, pandas_s / ours
        print(f"kpi-lake throughput: {vs_polars:.2f}x the polars script (floor 0.8x: "
              f"{'PASS' if vs_polars >= 0.8 else 'FAIL'}), {vs_pandas:.2f}x pandas (floor 1.5x: "
              f"{'PASS' if vs_pandas >= 1.5 else 'FAIL'})")  # fmt: skip
        idle = best["kpi-lake sync, nothing to land"][0] - best["python start-up"][0]
        print(f"kpi-lake sync with nothing to land: {idle:.2f} s beyond Python's start (floor 2 s: "
              f"{'PASS' if idle < 2 else 'FAIL'})")  # fmt: skip
        return 0
    finally:
        if args.keep:
            print(f"kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
