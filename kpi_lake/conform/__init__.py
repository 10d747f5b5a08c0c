"""Silver: conform bronze text into typed, documented tables, quarantining what does not parse.

Each family has a module here with pure functions (polars in, polars out). A conform function returns a
:class:`Conformed`: the good rows, and the bad ones in the quarantine shape with the file, row, column,
value and the reason. The Dagster side (``assets/silver``) only reads bronze, calls these and writes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import polars as pl

from kpi_lake.raw_files import SOURCE_FILE, SOURCE_ROW

#: The quarantine table's columns, the same for every source: what was wrong, where, and the row as it was.
QUARANTINE_SCHEMA: dict[str, pl.DataType] = {
    "source_table": pl.String(),
    "source_file": pl.String(),
    "source_row": pl.Int64(),
    "column": pl.String(),
    "value": pl.String(),
    "reason": pl.String(),
    "raw_record": pl.String(),
}


@dataclass
class Conformed:
    """A silver table's rows, and the rows held back (never dropped) with the reason."""

    rows: pl.DataFrame
    quarantine: pl.DataFrame = field(default_factory=lambda: empty_quarantine())

    def __post_init__(self) -> None:
        self.quarantine = self.quarantine.select(
            [pl.col(name).cast(dtype) for name, dtype in QUARANTINE_SCHEMA.items()]
        )


def empty_quarantine() -> pl.DataFrame:
    return pl.DataFrame(schema=QUARANTINE_SCHEMA)


class ConformError(ValueError):
    """Bronze data that cannot be conformed at all (a required column missing, say): names file and column."""


def require_columns(frame: pl.DataFrame | pl.LazyFrame, columns: list[str], *, what: str) -> None:
    """Fail with a clear message when a family's required columns are missing from a bronze table."""
    present = set(frame.collect_schema().names())
    missing = [c for c in columns if c not in present]
    if missing:
        files = ""
        if SOURCE_FILE in present:
            names = frame.lazy().select(pl.col(SOURCE_FILE).drop_nulls().unique()).collect()[SOURCE_FILE]
            if names.len():
                files = f" in {', '.join(sorted(names.to_list())[:5])}"
        raise ConformError(
            f"{what}: expected column(s) {', '.join(missing)}{files}; found {', '.join(sorted(present))}"
        )


def quarantine(
    frame: pl.DataFrame,
    *,
    source_table: str,
    column: str | pl.Expr,
    reason: str | pl.Expr,
    value: pl.Expr | None = None,
    allowed: Callable[[str], bool] | None = None,
) -> pl.DataFrame:
    """Turn rows of a bronze-shaped ``frame`` into quarantine rows (the raw record kept as JSON).

    ``allowed`` (for a personal-data source) says which columns may appear in the raw record: any other is
    left out, and the value is blanked when the column at fault is not allowed.
    """
    if frame.height == 0:
        return empty_quarantine()
    data_columns = [c for c in frame.columns if not c.startswith("_") and (allowed is None or allowed(c))]
    column_expr = pl.lit(column) if isinstance(column, str) else column
    reason_expr = pl.lit(reason) if isinstance(reason, str) else reason
    if value is None:
        value = (
            pl.col(column).cast(pl.String)
            if isinstance(column, str) and column in frame.columns
            else pl.lit(None)
        )
    if allowed is not None:
        visible = [c for c in frame.columns if allowed(c)]
        value = pl.when(column_expr.cast(pl.String).is_in(visible)).then(value.cast(pl.String))
    return frame.select(
        pl.lit(source_table).alias("source_table"),
        (pl.col(SOURCE_FILE) if SOURCE_FILE in frame.columns else pl.lit(None, pl.String)).alias(
            "source_file"
        ),
        (pl.col(SOURCE_ROW) if SOURCE_ROW in frame.columns else pl.lit(None, pl.Int64)).alias("source_row"),
        column_expr.cast(pl.String).alias("column"),
        value.cast(pl.String).alias("value"),
        reason_expr.cast(pl.String).alias("reason"),
        (
            pl.struct(pl.col(data_columns).cast(pl.String)).struct.json_encode()
            if data_columns
            else pl.lit("{}")
        ).alias("raw_record"),
    )


def split_by_checks(
    frame: pl.DataFrame,
    checks: list[tuple[pl.Expr, str, str]],
    *,
    source_table: str,
    hide: tuple[str, ...] = (),
    allowed: Callable[[str], bool] | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Rows passing every check, and quarantine rows: each failing row once, for the first check it fails.

    ``checks`` are (condition that marks a bad row, column, reason). Every condition is evaluated once, in
    one pass. ``hide`` names columns that must not reach the quarantine; ``allowed`` (personal-data sources)
    is the allow-list instead: only the columns it accepts do.
    """
    if not checks or frame.height == 0:
        return frame, empty_quarantine()
    flags = [condition.fill_null(False).alias(f"__bad_{i}") for i, (condition, _, _) in enumerate(checks)]
    first_bad = pl.coalesce([pl.when(pl.col(f"__bad_{i}")).then(pl.lit(i)) for i in range(len(checks))])
    marked = frame.with_columns(flags).with_columns(first_bad.alias("__first_bad"))
    marked = marked.drop([f"__bad_{i}" for i in range(len(checks))])
    problems = []
    for index, (_, column, reason) in enumerate(checks):
        hit = marked.filter(pl.col("__first_bad") == index).drop("__first_bad")
        if hit.height:
            visible = hit.drop([c for c in hide if c in hit.columns])
            problems.append(
                quarantine(visible, source_table=source_table, column=column, reason=reason, allowed=allowed)
            )
    good = marked.filter(pl.col("__first_bad").is_null()).drop("__first_bad")
    return good, (pl.concat(problems) if problems else empty_quarantine())
