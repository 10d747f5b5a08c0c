"""The data-quality history: every check result of every run, appended to ``gold/data_quality/validation_history``
so the team can chart quality over time (and so an unchanged table need not be validated twice).

One row per check and run: which table, at which Delta version, which expectation, passed or not, what was
observed, how many rows failed, a few failing rows (sample columns only), and how long the suite took.
"""

from __future__ import annotations

import random
import re
import time
from typing import TYPE_CHECKING

import polars as pl

from kpi_lake.quality.results import ValidationReport, jsonable, observed_text, to_json
from kpi_lake.tables import TableRef

if TYPE_CHECKING:
    from resources.lake import DeltaLake

_CONFLICT = re.compile(r"already exists|conflict|concurrent|transaction", re.IGNORECASE)
#: Gold: it is read by people (quality dashboards), like the mart.
HISTORY = TableRef("gold", "data_quality", "validation_history")

HISTORY_SCHEMA: dict[str, pl.DataType] = {
    "run_id": pl.String(),
    "validated_at": pl.Datetime("us", "UTC"),
    "table": pl.String(),
    "layer": pl.String(),
    "delta_version": pl.Int64(),
    "suite": pl.String(),
    "suite_file": pl.String(),
    "suite_hash": pl.String(),
    "check_name": pl.String(),
    "check_kind": pl.String(),
    "expectation_type": pl.String(),
    "column": pl.String(),
    "severity": pl.String(),
    "success": pl.Boolean(),
    "observed_value": pl.String(),
    "unexpected_count": pl.Int64(),
    "unexpected_percent": pl.Float64(),
    "element_count": pl.Int64(),
    "sample_failing_rows": pl.String(),
    "message": pl.String(),
    "kwargs": pl.String(),
    "scope": pl.String(),
    "rows_in_table": pl.Int64(),
    "rows_validated": pl.Int64(),
    "validated_scope": pl.String(),
    "inputs_version": pl.String(),
    "fingerprint": pl.String(),
    "suite_seconds": pl.Float64(),
}


def history_rows(report: ValidationReport) -> pl.DataFrame:
    """The report as history rows (one per check outcome)."""
    suite = report.suite
    rows = [
        {
            "run_id": report.run_id,
            "validated_at": report.validated_at,
            "table": suite.ref.path,
            "layer": suite.ref.layer,
            "delta_version": report.delta_version,
            "suite": suite.name,
            "suite_file": suite.file,
            "suite_hash": suite.content_hash,
            "check_name": o.name,
            "check_kind": o.kind,
            "expectation_type": o.expectation_type or o.kind,
            "column": o.column,
            "severity": o.severity,
            "success": o.success,
            "observed_value": observed_text(o) or None,
            "unexpected_count": o.unexpected_count,
            "unexpected_percent": jsonable(o.unexpected_percent),
            "element_count": o.element_count,
            "sample_failing_rows": to_json(o.sample) if o.sample else None,
            "message": o.message or None,
            "kwargs": to_json(o.kwargs),
            "scope": o.scope,
            "rows_in_table": report.rows_in_table,
            "rows_validated": report.rows_validated,
            "validated_scope": report.validated_scope,
            "inputs_version": report.inputs_version,
            "fingerprint": report.fingerprint,
            "suite_seconds": round(report.seconds, 4),
        }
        for o in report.outcomes
    ]
    return pl.DataFrame(rows, schema=HISTORY_SCHEMA)


def append_history(lake: DeltaLake, report: ValidationReport, *, attempts: int = 6) -> int:
    """Append the report's rows; returns the history table's new version.

    Checks of different tables run in parallel processes and append at the same moment: delta-rs retries
    conflicting appends itself, and the very first commit (creating the table) may still collide, so a
    failed append is tried again a few times after a short random pause.
    """
    from resources.lake import LakeWriteError

    rows = history_rows(report)
    for attempt in range(attempts):
        try:
            version = lake.append(HISTORY, rows).version
            break
        except LakeWriteError as error:
            if attempt == attempts - 1 or not _CONFLICT.search(str(error)):
                raise
            time.sleep(random.uniform(0.05, 0.3) * (attempt + 1))
    else:
        raise AssertionError("unreachable")
    if version and version % COMPACT_EVERY == 0:
        _compact(lake)
    return version


#: Every this many versions, the history's files are compacted. Each suite's append adds a small file: a year of
#: nightly runs would leave ~7,000, read at the start of every run's checks (one request each on Azure).
COMPACT_EVERY = 100


def _compact(lake: DeltaLake) -> None:
    """Compact the history's files; a failure (another writer than an append meanwhile) waits for the next
    turn, and never fails the check that appended."""
    import dagster as dg

    from resources.lake import redact_error

    try:
        replaced = lake.compact(HISTORY)
    except Exception as error:  # compaction is upkeep: the results are recorded either way
        said = redact_error(error).splitlines()[0][:300]
        dg.get_dagster_logger("kpi_lake.quality").warning(f"{HISTORY}: compaction left for later ({said})")
        return
    dg.get_dagster_logger("kpi_lake.quality").info(f"{HISTORY}: {replaced} small files compacted")


def previous_results(lake: DeltaLake, table: TableRef, suite_hash: str, run_id: str = "") -> pl.DataFrame:
    """Earlier GX rows for this table under the same suite content (empty when none): what an unchanged
    table can reuse, and where the last fully passing version was.

    Rows of earlier runs do not change during a run, so the GX rows of the history are read once per run
    and process (every check of an in-process run shares one read) rather than once per table.
    """
    if not lake.exists(HISTORY):
        return pl.DataFrame(schema=HISTORY_SCHEMA)
    key = (lake.uri(HISTORY), run_id)
    if not run_id or key not in _EARLIER_RUNS:
        earlier = (
            lake.scan(HISTORY).filter((pl.col("check_kind") == "gx") & (pl.col("run_id") != run_id)).collect()
        )
        if not run_id:
            return earlier.filter((pl.col("table") == table.path) & (pl.col("suite_hash") == suite_hash))
        _EARLIER_RUNS.clear()  # one run at a time per process: keep only this run's snapshot
        _EARLIER_RUNS[key] = earlier
    return _EARLIER_RUNS[key].filter((pl.col("table") == table.path) & (pl.col("suite_hash") == suite_hash))


_EARLIER_RUNS: dict[tuple[str, str], pl.DataFrame] = {}
