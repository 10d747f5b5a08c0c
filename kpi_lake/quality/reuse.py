"""Checks on an unchanged table reuse their last results: work proportional to change.

When a table is at the Delta version its suite last validated (same suite content) and no table the suite
also reads (lookups, relationship targets) has been written since, nothing a check can see has changed: the
last evaluation is re-emitted, saying it was reused and from which run and version, instead of validating
again. Only freshness is evaluated anew (it depends on the clock). Nothing is appended to the history: the
rows of the run that validated stand for the table until it changes.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from typing import TYPE_CHECKING, Any

import polars as pl

from kpi_lake.quality import native
from kpi_lake.quality.history import HISTORY
from kpi_lake.quality.results import CheckOutcome, ValidationReport
from kpi_lake.quality.suites import Suite

if TYPE_CHECKING:
    from resources.lake import DeltaLake

#: The latest earlier validation of each table (all check kinds), read once per run and process.
_LATEST: dict[tuple[str, str], tuple[pl.DataFrame, int]] = {}


def reused_report(
    lake: DeltaLake, suite: Suite, run_id: str, *, now: dt.datetime | None = None
) -> tuple[ValidationReport, int] | None:
    """The last validation of ``suite``'s table re-emitted (freshness evaluated now), with the history's
    version; None when the table or anything the suite reads changed since, or there is nothing to reuse."""
    started = time.perf_counter()
    now = now or dt.datetime.now(dt.UTC)
    if not lake.exists(suite.ref) or not lake.exists(HISTORY):
        return None
    latest, history_version = _latest_validations(lake, run_id)
    last = latest.filter((pl.col("table") == suite.ref.path) & (pl.col("suite_hash") == suite.content_hash))
    if last.is_empty():
        return None
    table = lake.delta_table(suite.ref)
    version = table.version()
    first = last.row(0, named=True)
    if first["delta_version"] != version:
        return None
    validated_at = first["validated_at"]
    for ref in suite.depends_on:
        if not lake.exists(ref) or _last_commit(lake.delta_table(ref)) >= validated_at:
            return None
    rows = {row["check_name"]: row for row in last.iter_rows(named=True)}
    if set(rows) != set(suite.check_names):
        return None
    outcomes = []
    for name in suite.check_names:
        if name == "freshness":
            outcomes.append(native.freshness(suite.native["freshness"], _last_commit(table), now))
        else:
            outcomes.append(history_outcome(suite, rows[name]))
    scope = f"unchanged since version {version}: results of run {first['run_id'][:8]} reused"
    report = ValidationReport(
        suite=suite,
        run_id=run_id,
        validated_at=now,
        delta_version=version,
        rows_in_table=first["rows_in_table"],
        rows_validated=0,
        validated_scope=scope,
        inputs_version=first["inputs_version"],
        fingerprint=first["fingerprint"],
        seconds=time.perf_counter() - started,
        outcomes=outcomes,
        reused_from_run=first["run_id"],
    )
    return report, history_version


def history_outcome(suite: Suite, row: dict[str, Any]) -> CheckOutcome:
    """One check's outcome as a row of the validation history recorded it (for content that has not changed)."""
    expectation = next((e for e in suite.expectations if e.name == row["check_name"]), None)
    return CheckOutcome(
        name=row["check_name"],
        kind=row["check_kind"],
        severity=row["severity"],
        success=bool(row["success"]),
        description=expectation.describe() if expectation else row["check_name"].replace("_", " "),
        expectation_type=row["expectation_type"] if row["check_kind"] in ("gx", "relationship") else "",
        column=row["column"],
        scope=row["scope"],
        observed_value=row["observed_value"],
        unexpected_count=row["unexpected_count"],
        unexpected_percent=row["unexpected_percent"],
        element_count=row["element_count"],
        sample=json.loads(row["sample_failing_rows"]) if row["sample_failing_rows"] else [],
        message=row["message"] or "",
        kwargs=json.loads(row["kwargs"]) if row["kwargs"] else {},
    )


def _latest_validations(lake: DeltaLake, run_id: str) -> tuple[pl.DataFrame, int]:
    """The rows of each table's latest validation before this run, and the history's version then.

    Earlier runs' rows do not change during a run: read once per run and process (an in-process run's
    checks share one read)."""
    key = (lake.uri(HISTORY), run_id)
    if key not in _LATEST:
        history = lake.delta_table(HISTORY)
        rows = (
            lake.scan(HISTORY)
            .filter(pl.col("run_id") != run_id)
            .filter(
                pl.col("validated_at") == pl.col("validated_at").max().over("table", "suite_hash"),
            )
            .collect()
        )
        _LATEST.clear()  # one run at a time per process: keep only this run's snapshot
        _LATEST[key] = (rows, history.version())
    return _LATEST[key]


def _last_commit(table: Any) -> dt.datetime:
    history = table.history(1)
    if not history or "timestamp" not in history[0]:
        return dt.datetime.max.replace(tzinfo=dt.UTC)  # unknown: treat as changed
    return dt.datetime.fromtimestamp(history[0]["timestamp"] / 1000, dt.UTC)
