"""Helpers the file-family conformers share: read a bronze table once with numbered rows, find which columns
each file fills, flag bad rows, quarantine them with their raw record, and keep the first of duplicate keys."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import polars as pl

from kpi_lake.conform import ConformError, empty_quarantine, quarantine
from kpi_lake.conform.parsing import clean_text
from kpi_lake.raw_files import EXTRA_FIELDS, PARSE_ISSUE, SOURCE_FILE, SOURCE_ROW

#: Row number given to each bronze row when it is read for conforming (joins problems back to raw rows).
ROW_ID = "_row_id"
PROBLEM_COLUMN = "_problem_column"
PROBLEM_VALUE = "_problem_value"
PROBLEM_REASON = "_problem_reason"
PROBLEM_SCHEMA: dict[str, pl.DataType] = {
    ROW_ID: pl.UInt32(),
    PROBLEM_COLUMN: pl.String(),
    PROBLEM_VALUE: pl.String(),
    PROBLEM_REASON: pl.String(),
}
#: An ONS (GSS) geography code: a letter and eight digits, e.g. E06000005 Darlington, E05008942 a ward.
GSS_CODE = r"^[EWSNKLM]\d{8}$"

_LINEAGE: dict[str, pl.DataType] = {
    SOURCE_FILE: pl.String(),
    SOURCE_ROW: pl.Int64(),
    PARSE_ISSUE: pl.String(),
    EXTRA_FIELDS: pl.String(),
}


def has_text(column: str) -> pl.Expr:
    """True where a cell holds something other than spaces (cheaper than ``clean_text(...).is_not_null()``)."""
    return pl.col(column).str.contains(r"\S").fill_null(False)


def data_columns(frame: pl.DataFrame | pl.LazyFrame) -> list[str]:
    """The files' own columns (lineage columns start with an underscore)."""
    return [c for c in frame.collect_schema().names() if not c.startswith("_")]


def load_bronze(frame: pl.LazyFrame | None, *, lineage: dict[str, pl.DataType] | None = None) -> pl.DataFrame:
    """A bronze table's data columns (as text) and lineage, collected once, each row numbered ``_row_id``.

    ``None`` (the table does not exist yet) gives an empty frame. Entirely blank rows (a trailing line of
    commas) hold nothing to conform or quarantine, so they are left out here.
    """
    wanted = {**_LINEAGE, **(lineage or {})}
    if frame is None:
        return pl.DataFrame(schema={ROW_ID: pl.UInt32(), **wanted})
    schema = frame.collect_schema()
    data = [c for c in schema.names() if not c.startswith("_")]
    columns = [pl.col(c).cast(pl.String) for c in data] + [
        (pl.col(c) if c in schema else pl.lit(None)).cast(dtype).alias(c) for c, dtype in wanted.items()
    ]
    blank = ~pl.any_horizontal(has_text(c) for c in data) if data else pl.lit(False)
    loaded = frame.select(columns).filter(~blank).collect().with_row_index(ROW_ID)
    return _flag_cut_short_last_rows(loaded, data)


#: A file's last row is called cut short only when at least this many other rows fill what it leaves empty.
CUT_SHORT_EVIDENCE = 5


def cut_short_issue(data: list[str]) -> pl.Expr:
    """Why a file's last row looks cut short, else null: the columns it leaves empty though every other row of
    the file fills them. Evaluated on the last row joined with its file's counts (``_rows``, and
    ``_filled_<column>`` for each of ``data``)."""
    empty = (
        pl.concat_list(
            [
                pl.when(
                    ~has_text(c)
                    & (pl.col(f"_filled_{c}") == pl.col("_rows") - 1)
                    & (pl.col("_rows") > CUT_SHORT_EVIDENCE)
                ).then(pl.lit(c))
                for c in data
            ]
        )
        .list.drop_nulls()
        .list.join(", ")
    )
    return pl.when(empty != "").then(
        pl.format(
            "the file's last row ends early ({} empty, though every other row fills them): the file looks "
            "truncated",
            empty,
        )
    )


def _flag_cut_short_last_rows(bronze: pl.DataFrame, data: list[str]) -> pl.DataFrame:
    """Flag (in ``_parse_issue``) a file's last row that leaves empty columns every other row fills.

    The reader already flags a last row with too few fields (a cut mid-field); a cut right after a
    delimiter leaves the field count whole and only shows as cells missing where every other row has one.
    It needs at least ``CUT_SHORT_EVIDENCE`` other rows: in a smaller file a blank last cell is as likely
    to be meant.
    """
    if bronze.height == 0 or not data:
        return bronze
    per_file = bronze.group_by(SOURCE_FILE).agg(
        pl.col(SOURCE_ROW).max().alias("_last_row"),
        pl.len().alias("_rows"),
        *(has_text(c).sum().alias(f"_filled_{c}") for c in data),
    )
    last_rows = bronze.join(per_file, left_on=[SOURCE_FILE, SOURCE_ROW], right_on=[SOURCE_FILE, "_last_row"])
    cut = last_rows.select(ROW_ID, cut_short_issue(data).alias("_cut_short")).filter(
        pl.col("_cut_short").is_not_null()
    )
    if cut.height == 0:
        return bronze
    return (
        bronze.join(cut, on=ROW_ID, how="left")
        .with_columns(pl.coalesce(PARSE_ISSUE, "_cut_short").alias(PARSE_ISSUE))
        .drop("_cut_short")
    )


def filled_columns(bronze: pl.DataFrame) -> dict[str, set[str]]:
    """The data columns each file fills in at least one row.

    A bronze table is the union of its files' columns (a file's rows are null in the columns it lacks), so
    "the file has this column" can only mean "the file fills it somewhere".
    """
    data = data_columns(bronze)
    if bronze.height == 0 or not data:
        return {}
    filled = bronze.group_by(SOURCE_FILE).agg(has_text(c).any().alias(c) for c in data)
    return {row[SOURCE_FILE]: {c for c in data if row[c]} for row in filled.iter_rows(named=True)}


def first_present(columns: Iterable[str], candidates: Sequence[str]) -> str | None:
    """The first of ``candidates`` (the names publishers use for one thing) that a file has."""
    have = set(columns)
    return next((c for c in candidates if c in have), None)


def text_or_null(column: str | None) -> pl.Expr:
    """A column's trimmed text, or null when the file does not have it."""
    return clean_text(column) if column else pl.lit(None, pl.String)


def require_in_files(
    filled: dict[str, set[str]],
    needs: Sequence[Sequence[str]],
    *,
    what: str,
    files: Iterable[str] | None = None,
) -> None:
    """Raise :class:`ConformError` naming each file and the column(s) it lacks.

    Each need lists names any one of which will do (``("la_ghg_sector", "la_co2_sector")``).
    """
    problems = []
    for file in sorted(files if files is not None else filled, key=str):
        have = filled.get(file, set())
        missing = [" or ".join(need) for need in needs if not set(need) & have]
        if missing:
            problems.append(f"{file} has no column {', '.join(missing)} (it has {', '.join(sorted(have))})")
    if problems:
        raise ConformError(
            f"{what}: {'; '.join(problems)}. Column names are the file's headers in snake_case; a column "
            "left empty in every row counts as missing."
        )


@dataclass(frozen=True)
class Check:
    """A row rule: rows where ``failed`` is true go to quarantine with ``reason`` (``column`` is at fault)."""

    failed: pl.Expr
    column: str | None
    reason: str | pl.Expr
    value: pl.Expr | None = None


def malformed_row() -> Check:
    """The reader flags rows whose field count differs from the header's (a truncated last line, say)."""
    return Check(
        pl.col(PARSE_ISSUE).is_not_null(),
        None,
        pl.concat_str(pl.lit("malformed row: "), pl.col(PARSE_ISSUE)),
        value=pl.col(EXTRA_FIELDS),
    )


def find_problems(bronze: pl.DataFrame | pl.LazyFrame, checks: Sequence[Check]) -> pl.DataFrame:
    """Rows failing a check, each with the first failing check's column, value and reason."""
    flags = [f"_failed_{position}" for position in range(len(checks))]
    # Each rule is evaluated once over every row; the details are built for the (few) failing rows only.
    failing = (
        bronze.lazy()
        .with_columns(
            check.failed.fill_null(False).alias(flag) for check, flag in zip(checks, flags, strict=True)
        )
        .filter(pl.any_horizontal(flags) if flags else pl.lit(False))
    )
    column: pl.Expr = pl.lit(None, pl.String)
    value: pl.Expr = pl.lit(None, pl.String)
    reason: pl.Expr = pl.lit(None, pl.String)
    # Built back to front so that the first check listed wins when several fail.
    for check, flag in reversed(list(zip(checks, flags, strict=True))):
        failed = pl.col(flag)
        check_value = (
            check.value if check.value is not None else pl.col(check.column) if check.column else None
        )
        check_reason = pl.lit(check.reason) if isinstance(check.reason, str) else check.reason
        column = pl.when(failed).then(pl.lit(check.column, pl.String)).otherwise(column)
        value = (
            pl.when(failed)
            .then(check_value.cast(pl.String) if check_value is not None else pl.lit(None, pl.String))
            .otherwise(value)
        )
        reason = pl.when(failed).then(check_reason.cast(pl.String)).otherwise(reason)
    return failing.select(
        ROW_ID, column.alias(PROBLEM_COLUMN), value.alias(PROBLEM_VALUE), reason.alias(PROBLEM_REASON)
    ).collect()


def quarantine_problems(
    bronze: pl.DataFrame,
    problems: Sequence[pl.DataFrame],
    *,
    source_table: str,
    filled: dict[str, set[str]] | None = None,
    allowed: Callable[[str], bool] | None = None,
) -> pl.DataFrame:
    """Quarantine rows: each problem (row id, column, value, reason) with its bronze row as the raw record
    (for a personal-data source, only the columns ``allowed`` accepts; see :func:`quarantine`)."""
    found = [p.select(list(PROBLEM_SCHEMA)).cast(PROBLEM_SCHEMA) for p in problems if p.height]
    if not found:
        return empty_quarantine()
    bad = bronze.join(pl.concat(found), on=ROW_ID, how="inner")
    filled = filled if filled is not None else filled_columns(bronze)
    parts = []
    for (file,), rows in bad.group_by(SOURCE_FILE, maintain_order=True):
        # The raw record shows the file's own columns, not the union of every file's in the bronze table.
        own = filled.get(file, set(data_columns(rows)))
        keep = [c for c in rows.columns if c.startswith("_") or c in own]
        parts.append(
            quarantine(
                rows.select(keep),
                source_table=source_table,
                column=pl.col(PROBLEM_COLUMN),
                reason=pl.col(PROBLEM_REASON),
                value=pl.col(PROBLEM_VALUE),
                allowed=allowed,
            )
        )
    return pl.concat(parts, how="vertical_relaxed").sort(
        "source_file", "source_row", "column", nulls_last=True
    )


def keep_first(
    rows: pl.DataFrame,
    key: Sequence[str],
    *,
    order: Sequence[str | pl.Expr],
    descending: Sequence[bool] | bool = False,
    what: str,
    column: pl.Expr | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Keep the first row of each key (in ``order``); the others become problems that name the row kept.

    ``rows`` carries ``_row_id``, ``_source_file`` and ``_source_row`` so the problem leads back to bronze.
    """
    duplicated = pl.struct(list(key)).is_duplicated()
    if not rows.select(duplicated.any()).item():
        return rows, pl.DataFrame(schema=PROBLEM_SCHEMA)
    # Only the rows sharing a key need ordering; the rest are kept as they are.
    ranked = rows.filter(duplicated).sort(list(order), descending=descending, nulls_last=True)
    first = pl.struct(list(key)).is_first_distinct()
    ranked = ranked.with_columns(
        _first=first,
        _kept_file=pl.col(SOURCE_FILE).first().over(list(key)),
        _kept_row=pl.col(SOURCE_ROW).first().over(list(key)),
    )
    problems = ranked.filter(~pl.col("_first")).select(
        ROW_ID,
        (column if column is not None else pl.lit(", ".join(key))).cast(pl.String).alias(PROBLEM_COLUMN),
        pl.concat_str([pl.col(k).cast(pl.String) for k in key], separator=" | ", ignore_nulls=True).alias(
            PROBLEM_VALUE
        ),
        pl.format(
            "duplicate {}: row {} of {} has the same key and was kept",
            pl.lit(what),
            "_kept_row",
            "_kept_file",
        ).alias(PROBLEM_REASON),
    )
    kept = pl.concat(
        [rows.filter(~duplicated), ranked.filter("_first").drop("_first", "_kept_file", "_kept_row")]
    )
    return kept, problems


def file_stem(column: str | pl.Expr = SOURCE_FILE) -> pl.Expr:
    """``education/ks2_la.csv`` → ``ks2_la``; ``absence_by_term.meta.csv`` → ``absence_by_term``."""
    expr = pl.col(column) if isinstance(column, str) else column
    return expr.str.replace(r"^.*[/\\]", "").str.replace(r"\.[^.]*$", "").str.replace(r"(?i)\.meta$", "")


def typed_frame(frame: pl.DataFrame, schema: dict[str, pl.DataType]) -> pl.DataFrame:
    """``frame`` with exactly ``schema``'s columns and types, in order (an empty input gives an empty table)."""
    if frame.height == 0:
        return pl.DataFrame(schema=schema)
    return frame.select([pl.col(name).cast(dtype) for name, dtype in schema.items()])


def humanise(name: str) -> str:
    """A snake_case column name as words: ``mean_satisfaction_with_life`` → ``Mean satisfaction with life``."""
    words = name.removeprefix("c_").replace("_", " ").strip()
    return words[:1].upper() + words[1:]
