"""What a validation found: one :class:`CheckOutcome` per check, gathered in a table's :class:`ValidationReport`."""

from __future__ import annotations

import datetime as dt
import json
import math
from dataclasses import dataclass, field
from typing import Any, Literal

from kpi_lake.quality.suites import Severity, Suite

CheckKind = Literal["gx", "relationship", "freshness", "schema_drift", "row_count_change"]
#: Failing rows shown per check: enough to find the problem, few enough to keep personal data out of sight
#: (samples only ever hold a suite's ``sample_columns`` and the failing column).
SAMPLE_SIZE = 5


@dataclass
class CheckOutcome:
    """The result of one check on one table: passed or not, what was observed, and a few failing rows."""

    name: str
    kind: CheckKind
    severity: Severity
    success: bool
    description: str
    expectation_type: str = ""
    column: str | None = None
    scope: str = "table"
    observed_value: Any = None
    unexpected_count: int | None = None
    unexpected_percent: float | None = None
    element_count: int | None = None
    sample: list[dict[str, Any]] = field(default_factory=list)
    message: str = ""
    kwargs: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> str:
        """One line for logs and the check's description in the UI."""
        verdict = "passed" if self.success else f"FAILED ({self.severity})"
        detail = self.message or observed_text(self)
        return f"{self.name} {verdict}: {detail}" if detail else f"{self.name} {verdict}"


@dataclass
class ValidationReport:
    """Everything one check run found on one table: written to the history table and shown in Dagster."""

    suite: Suite
    run_id: str
    validated_at: dt.datetime
    delta_version: int
    rows_in_table: int
    rows_validated: int
    validated_scope: str
    inputs_version: str
    fingerprint: str
    seconds: float
    outcomes: list[CheckOutcome]
    #: GX's own validation results (JSON dicts), for Data Docs; empty when GX did not run.
    gx_results: list[dict[str, Any]] = field(default_factory=list)
    gx_seconds: float = 0.0
    #: Set when nothing was validated: the table was unchanged and these are that run's results, re-emitted.
    reused_from_run: str | None = None

    def failures(self, severity: Severity | None = None) -> list[CheckOutcome]:
        return [o for o in self.outcomes if not o.success and (severity is None or o.severity == severity)]


def observed_text(outcome: CheckOutcome) -> str:
    """What was seen, in words: "3 of 947 rows (0.32%)" or the observed value."""
    if outcome.unexpected_count is not None and outcome.element_count is not None:
        percent = f" ({outcome.unexpected_percent:.2f}%)" if outcome.unexpected_percent is not None else ""
        return f"{outcome.unexpected_count} of {outcome.element_count} rows fail{percent}"
    if outcome.observed_value is None:
        return ""
    return (
        outcome.observed_value if isinstance(outcome.observed_value, str) else to_json(outcome.observed_value)
    )


def jsonable(value: Any) -> Any:
    """Numbers, text, lists and dicts only (numpy scalars, NaN, timestamps and tuples converted)."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, float):  # numpy's float64 is a float too: made a plain one
        return None if math.isnan(value) or math.isinf(value) else float(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [jsonable(v) for v in value]
    item = getattr(value, "item", None)  # numpy scalars
    if callable(item):
        try:
            return jsonable(item())
        except (TypeError, ValueError):
            pass
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    return str(value)


def to_json(value: Any) -> str:
    return json.dumps(jsonable(value), ensure_ascii=False, sort_keys=True)
