"""Run ``kpi-lake`` in this process and say which step its memory peaked in: peak RSS per step.

    .venv/bin/python benchmarks/rss_trace.py --out steps.tsv sync --select '...'

A thread reads this process's RSS (``/proc/self/status``) every 50 ms and files it under the step the main
thread is in, found from its stack (the first rule below whose function is on it). At exit the steps are
written to ``--out``, one a line: step, peak RSS in MiB, seconds sampled. Linux only.
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

#: (step, function on the main thread's stack), most specific first.
STEPS = [
    ("Data Docs rendering", "render_data_docs"),
    ("checks: uniqueness (polars aggregates)", "_polars_outcomes"),
    ("checks: GX on the sample", "_run_gx"),
    ("checks: sample", "_plan"),
    ("checks: fingerprint", "_fingerprint"),
    ("checks: other", "validate_table"),
    ("silver: key uniqueness guard", "_refuse_duplicate_keys"),
    ("silver: whole-file facts", "_file_facts"),
    ("silver: whole-file facts", "_flag_cut_short"),
    ("silver: whole-file facts", "_column_kinds"),
    ("silver: conform slices to Parquet parts", "stream_education"),
    ("silver: parts -> Delta write", "_build_streamed"),
    ("bronze: read / validate", "read_raw_file"),
    ("bronze: hash", "file_hash"),
    ("bronze: Delta write", "land_files"),
]


def _rss_mib() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) // 1024
    return 0


def _step(main_id: int) -> str:
    frame = sys._current_frames().get(main_id)
    names = set()
    while frame is not None:
        names.add(frame.f_code.co_name)
        frame = frame.f_back
    return next((step for step, function in STEPS if function in names), "start-up and other")


def main() -> int:
    if len(sys.argv) < 3 or sys.argv[1] != "--out":
        print(__doc__)
        return 2
    out = Path(sys.argv[2])
    peaks: dict[str, list[float]] = {}
    main_id = threading.get_ident()

    def sample() -> None:
        while True:
            step, rss = _step(main_id), _rss_mib()
            seen = peaks.setdefault(step, [0, 0.0])
            seen[0] = max(seen[0], rss)
            seen[1] += 0.05
            time.sleep(0.05)

    threading.Thread(target=sample, daemon=True).start()
    from kpi_lake.cli import main as kpi_lake

    try:
        return kpi_lake(sys.argv[3:])
    finally:
        out.write_text("".join(f"{step}\t{peak}\t{seconds:.1f}\n" for step, (peak, seconds) in peaks.items()))


if __name__ == "__main__":
    raise SystemExit(main())
