"""The YAML column tests (not_null, unique, accepted_values, relationships) evaluated on a written table."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from kpi_lake.sql_models.config import ColumnTest

SAMPLE_SIZE = 5


@dataclass(frozen=True)
class TestOutcome:
    """How a column test went: the failing-row count and a few failing rows (their keys and the value)."""

    passed: bool
    failing_rows: int
    sample: list[dict[str, Any]] = field(default_factory=list)
    message: str = ""


def evaluate_test(
    test: ColumnTest,
    table: pl.LazyFrame,
    key_columns: Sequence[str] = (),
    parent: pl.LazyFrame | None = None,
) -> TestOutcome:
    """Evaluate one test on ``table``. ``parent`` is the table a relationships test points to."""
    schema = table.collect_schema()
    column = test.column
    if column not in schema:
        return TestOutcome(
            False, 0, message=f"column {column} is not in the table ({', '.join(schema.names())})"
        )
    keys = [k for k in key_columns if k in schema and k != column] or [
        c for c in schema.names() if c != column
    ][:2]
    shown = [*keys, column]
    value = pl.col(column)
    if test.kind == "not_null":
        failing = table.filter(value.is_null())
    elif test.kind == "unique":
        counts = table.filter(value.is_not_null()).group_by(column).agg(pl.len().alias("rows"))
        duplicated = counts.filter(pl.col("rows") > 1)
        found = duplicated.select(pl.col("rows").sum(), pl.len().alias("values")).collect().row(0)
        rows = int(found[0] or 0)
        sample = _sample(duplicated.sort("rows", column, descending=[True, False]), [column, "rows"])
        message = f"{found[1]} value(s) of {column} appear more than once, on {rows} rows" if rows else ""
        return TestOutcome(rows == 0, rows, sample, message)
    elif test.kind == "accepted_values":
        accepted = pl.Series(column, list(test.values))
        try:
            accepted = accepted.cast(schema[column])
            condition = value.is_in(accepted.implode())
        except (pl.exceptions.InvalidOperationError, pl.exceptions.ComputeError):
            condition = value.cast(pl.String).is_in(accepted.cast(pl.String).implode())
        failing = table.filter(value.is_not_null() & ~condition)
    elif test.kind == "relationships":
        if parent is None:
            return TestOutcome(
                False, 0, message=f"{test.to} is not in the lake, so {column} cannot be checked"
            )
        parent_schema = parent.collect_schema()
        if test.field not in parent_schema:
            return TestOutcome(False, 0, message=f"{test.to} has no column {test.field}")
        parents = parent.select(pl.col(test.field).cast(schema[column]).alias(column)).unique()
        failing = table.filter(value.is_not_null()).join(parents, on=column, how="anti")
    else:
        raise ValueError(f"unknown test {test.kind!r}")
    rows = int(failing.select(pl.len()).collect().item())
    message = f"{rows} row(s) fail: {test.description}" if rows else ""
    return TestOutcome(rows == 0, rows, _sample(failing, shown), message)


def _sample(failing: pl.LazyFrame, columns: list[str]) -> list[dict[str, Any]]:
    """A few failing rows as text, so they show in Dagster's metadata whatever their types."""
    return failing.select(pl.col(columns).cast(pl.String)).head(SAMPLE_SIZE).collect().to_dicts()
