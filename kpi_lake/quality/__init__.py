"""Data quality: expectation suites as files, validated with Great Expectations (imported only when a check
runs), Delta-log checks GX does not cover, a history table in the lake and GX Data Docs. Pure Python over the
lake resource; the Dagster wiring is ``assets/quality.py``. See docs/DATA_QUALITY.md.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kpi_lake.quality.docs import DOCS_PATH, DocsPublished, docs_uri, render_data_docs, store_gx_results
from kpi_lake.quality.history import HISTORY, append_history, history_rows
from kpi_lake.quality.results import CheckOutcome, ValidationReport
from kpi_lake.quality.reuse import reused_report
from kpi_lake.quality.suites import Expectation, Suite, SuiteError, load_suite, load_suites
from kpi_lake.quality.validate import validate_table

if TYPE_CHECKING:
    from resources.lake import DeltaLake

__all__ = [
    "DOCS_PATH",
    "HISTORY",
    "CheckOutcome",
    "DocsPublished",
    "Expectation",
    "Suite",
    "SuiteError",
    "SuiteRun",
    "ValidationReport",
    "append_history",
    "docs_uri",
    "history_rows",
    "load_suite",
    "load_suites",
    "render_data_docs",
    "run_suite",
    "store_gx_results",
    "validate_table",
]


@dataclass(frozen=True)
class SuiteRun:
    """A suite run end to end: what it found, the history version it was recorded at, whether its GX results
    were stored for Data Docs (rendered once per run by :func:`render_data_docs`)."""

    report: ValidationReport
    history_version: int
    docs_stored: bool
    docs_error: str | None = None


def run_suite(
    lake: DeltaLake,
    suite: Suite,
    run_id: str,
    *,
    documented_columns: Mapping[str, str] | None = None,
    log: Callable[[str], None] | None = None,
) -> SuiteRun:
    """Validate the suite's table, append the results to the history table and keep its GX results for the
    run's Data Docs.

    Data Docs are a view: failing to store their input is reported, never a reason to lose the results.
    """
    reused = reused_report(lake, suite, run_id)
    if reused is not None:  # the table and what its checks read are unchanged: nothing to validate or record
        if log:
            log(f"{suite.ref}: {reused[0].validated_scope}")
        return SuiteRun(reused[0], reused[1], docs_stored=False)
    report = validate_table(lake, suite, run_id, documented_columns=documented_columns, log=log)
    history_version = append_history(lake, report)
    stored, docs_error = False, None
    try:
        stored = store_gx_results(lake, report)
    except Exception as error:  # best effort: the checks and the history above stand
        docs_error = f"{type(error).__name__}: {error}"
    return SuiteRun(report, history_version, stored, docs_error)
