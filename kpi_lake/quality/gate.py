"""The row gate of a gold table: a suite's blocking row-level expectations as polars predicates, evaluated on the
rows before they are written, so that a few bad rows are withheld (kept in ``<table>_withheld`` with the reason)
instead of failing, and blanking, the whole table.

Which expectations withhold rows: the ``error`` ones that judge each row on its own (not null, null, between, in
set, not in set, regex, column pair, relationship), with their row conditions. Whatever concerns the table as a
whole (uniqueness, row counts, sums, the schema) is structural: the checks after the write judge it, and a failure
keeps the last good version. Great Expectations still validates what was published (once): the gate decides what
is published, GX reports on it. See docs/DATA_QUALITY.md.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from kpi_lake.quality.suites import RELATIONSHIP, Expectation, Suite
from kpi_lake.tables import TableRef

#: What the withheld table adds to the gated table's columns.
WITHHELD_COLUMNS: dict[str, str] = {
    "expectation": "The check that withheld the row (its name in the Dagster UI and in expectations/)",
    "expectation_column": "The column it judged",
    "observed_value": "What the row holds there, as text",
    "reason": "What the expectation says, and what the row holds instead",
    "run_id": "The Dagster run that built the table and withheld the row",
}
_FLAG = "__withheld_by_{}"
_SHOWN_VALUES = 10  # how many KPIs a one-line summary names before "and N more"


def withheld_ref(ref: TableRef) -> TableRef:
    """Where the rows a gate withheld from ``ref`` are kept: ``gold/kpi_mart/fact_kpi_value_withheld``."""
    return TableRef(ref.layer, ref.source, f"{ref.table}_withheld")


@dataclass(frozen=True)
class RowRule:
    """One expectation as a polars predicate: ``fails`` is true on the rows that break it."""

    expectation: Expectation
    column: str
    fails: pl.Expr
    observed: pl.Expr
    reason: pl.Expr


@dataclass(frozen=True)
class GateResult:
    """The rows to publish, the rows withheld (one row per row and expectation it breaks) and what was judged."""

    published: pl.DataFrame
    withheld: pl.DataFrame
    rows_withheld: int
    rules: tuple[str, ...]
    #: Blocking row-level expectations the gate cannot express: GX still judges them after the write.
    untranslated: tuple[str, ...] = field(default_factory=tuple)


# ---- the translator ---------------------------------------------------------------------------------------------
def row_rules(
    suite: Suite,
    parent_values: Callable[[TableRef, str], pl.Series | None] | None = None,
    schema: Mapping[str, pl.DataType] | None = None,
) -> tuple[list[RowRule], list[str]]:
    """The suite's blocking row-level expectations as :class:`RowRule`s, and the names of those that cannot be
    expressed (a ``mostly`` below 1, a string row condition, an unknown type, a composite relationship).

    ``parent_values(table, field)`` gives the values a relationship points to (None: the table is not there,
    and the relationship is left to the checks after the write, which fail it whole).
    """
    rules, untranslated = [], []
    for expectation in suite.expectations:
        if expectation.severity != "error" or (
            expectation.scope == "table" and expectation.type != RELATIONSHIP
        ):
            continue
        rule = _rule(expectation, parent_values, schema or {})
        if rule is None:
            untranslated.append(expectation.name)
        else:
            rules.append(rule)
    return rules, untranslated


def _rule(
    expectation: Expectation,
    parent_values: Callable[[TableRef, str], pl.Series | None] | None,
    schema: Mapping[str, pl.DataType],
) -> RowRule | None:
    kw = expectation.kwargs
    if kw.get("mostly") not in (None, 1, 1.0):
        return None  # a tolerance is a statement about the table, not about each row
    applies = condition_expr(kw.get("row_condition"))
    if applies is None:
        return None
    described = expectation.describe()
    kind = expectation.type
    if kind == "expect_column_pair_values_a_to_be_greater_than_b":
        a, b = _value(kw["column_A"], schema), _value(kw["column_B"], schema)
        ordered = (a >= b) if kw.get("or_equal") else (a > b)
        ignore = kw.get("ignore_row_if", "both_values_are_missing")
        if ignore == "either_value_is_missing":
            skip = a.is_null() | b.is_null()
        elif ignore == "both_values_are_missing":
            skip = a.is_null() & b.is_null()
        else:
            skip = pl.lit(False)
        fails = ~skip & ~ordered.fill_null(False)
        observed = pl.concat_str(
            [pl.lit(f"{kw['column_A']}="), _text(a), pl.lit(f", {kw['column_B']}="), _text(b)]
        )
        return RowRule(
            expectation,
            f"{kw['column_A']}, {kw['column_B']}",
            applies & fails,
            observed,
            _reason(described, observed),
        )
    column = kw.get("column")
    if not isinstance(column, str):
        return None
    value = _value(column, schema)
    present = value.is_not_null()
    if kind == "expect_column_values_to_not_be_null":
        fails, observed = value.is_null(), pl.lit("null")
        return RowRule(
            expectation, column, applies & fails, observed, pl.lit(f"{described}, but it is empty")
        )
    if kind == "expect_column_values_to_be_null":
        fails = present
    elif kind == "expect_column_values_to_be_between":
        inside = pl.lit(True)
        if kw.get("min_value") is not None:
            low = pl.lit(kw["min_value"])
            inside = inside & ((value > low) if kw.get("strict_min") else (value >= low))
        if kw.get("max_value") is not None:
            high = pl.lit(kw["max_value"])
            inside = inside & ((value < high) if kw.get("strict_max") else (value <= high))
        fails = present & ~inside
    elif kind in ("expect_column_values_to_be_in_set", "expect_column_values_to_not_be_in_set"):
        member = _is_in(value, list(kw.get("value_set") or []))
        fails = present & (member if "_not_" in kind else ~member)
    elif kind in ("expect_column_values_to_match_regex", "expect_column_values_to_not_match_regex"):
        matches = value.cast(pl.String).str.contains(kw["regex"])
        fails = present & (~matches if "_not_" not in kind else matches)
    elif kind == RELATIONSHIP:
        if parent_values is None or not isinstance(kw.get("field"), str):
            return None
        target = expectation.target
        parents = parent_values(target, kw["field"]) if target is not None else None
        if parents is None:
            return None
        fails = present & ~_is_in(value, parents)
        observed = _text(value)
        reason = pl.concat_str([pl.lit(f"{described}, but "), observed, pl.lit(f" is not in {target}")])
        return RowRule(expectation, column, applies & fails, observed, reason)
    else:
        return None
    observed = _text(value)
    return RowRule(expectation, column, applies & fails, observed, _reason(described, observed, column))


def condition_expr(condition: Any) -> pl.Expr | None:
    """A GX 1.x row condition (its JSON form) as a polars predicate, true on the rows the expectation judges;
    None when there is no way to say it (a legacy string condition). Nulls follow GX's pandas engine: a null
    is neither equal to nor ordered with anything, but it is ``!=`` a value and ``NOT_IN`` a set."""
    if condition is None or condition == "":
        return pl.lit(True)
    if not isinstance(condition, Mapping):
        return None
    kind = condition.get("type")
    if kind in ("and", "or"):
        parts = [condition_expr(c) for c in condition.get("conditions") or []]
        if not parts or any(p is None for p in parts):
            return None
        return pl.all_horizontal(parts) if kind == "and" else pl.any_horizontal(parts)
    column = (condition.get("column") or {}).get("name")
    if not column:
        return None
    value = pl.col(column)
    if kind == "nullity":
        return value.is_null() if condition.get("is_null", True) else value.is_not_null()
    if kind != "comparison":
        return None
    operator, parameter = condition.get("operator"), condition.get("parameter")
    comparisons: dict[str, Callable[[], pl.Expr]] = {
        "==": lambda: (value == pl.lit(parameter)).fill_null(False),
        "!=": lambda: (value != pl.lit(parameter)).fill_null(True),
        "<": lambda: (value < pl.lit(parameter)).fill_null(False),
        "<=": lambda: (value <= pl.lit(parameter)).fill_null(False),
        ">": lambda: (value > pl.lit(parameter)).fill_null(False),
        ">=": lambda: (value >= pl.lit(parameter)).fill_null(False),
        "IN": lambda: _is_in(value, list(parameter)).fill_null(False),
        "NOT_IN": lambda: (~_is_in(value, list(parameter))).fill_null(True),
    }
    made = comparisons.get(str(operator))
    return made() if made else None


def _value(column: str, schema: Mapping[str, pl.DataType]) -> pl.Expr:
    """A column as GX's pandas engine sees it: a float NaN is missing, like null."""
    dtype = schema.get(column)
    return pl.col(column).fill_nan(None) if dtype is not None and dtype.is_float() else pl.col(column)


def _is_in(value: pl.Expr, values: Sequence[Any] | pl.Series) -> pl.Expr:
    series = values if isinstance(values, pl.Series) else pl.Series(values, strict=False)
    if series.dtype == pl.String:
        return value.cast(pl.String).is_in(series.implode())
    return value.is_in(series.implode())


def _text(value: pl.Expr) -> pl.Expr:
    return value.cast(pl.String).fill_null("null")


def _reason(described: str, observed: pl.Expr, column: str | None = None) -> pl.Expr:
    shown = f"{column} is " if column else ""
    return pl.concat_str([pl.lit(f"{described}, but {shown}"), observed])


# ---- the split --------------------------------------------------------------------------------------------------
def split_rows(
    rows: pl.LazyFrame,
    suite: Suite,
    run_id: str,
    *,
    tables: Callable[[TableRef], pl.LazyFrame | None],
) -> GateResult:
    """Judge ``rows`` (the table about to be written) by the suite's blocking row-level expectations, in one
    pass: the rows breaking none are published; each row breaking one is withheld, once per expectation it
    breaks. ``tables`` reads the lookup and relationship tables (None when one is not in the lake)."""
    columns = rows.collect_schema().names()
    parents: dict[tuple[TableRef, str], pl.Series | None] = {}

    def parent_values(target: TableRef, field_name: str) -> pl.Series | None:
        if (target, field_name) not in parents:
            frame = tables(target)
            parents[(target, field_name)] = (
                None if frame is None else frame.select(pl.col(field_name)).unique().collect().to_series()
            )
        return parents[(target, field_name)]

    judged = rows
    for lookup in suite.lookups:
        table = tables(lookup.table)
        if table is None:
            continue
        right = table.select(
            [*lookup.on, *(pl.col(src).alias(alias) for src, alias in lookup.columns.items())]
        ).unique(subset=list(lookup.on), keep="first")
        judged = judged.join(right, on=list(lookup.on), how="left")
    rules, untranslated = row_rules(suite, parent_values, judged.collect_schema())
    flags = [_FLAG.format(i) for i in range(len(rules))]
    judged_rows = judged.with_columns(
        [rule.fails.fill_null(False).alias(flag) for rule, flag in zip(rules, flags, strict=True)]
    ).collect()
    broken = pl.any_horizontal(pl.col(flags)) if flags else pl.lit(False)
    published = judged_rows.filter(~broken).select(columns)
    withheld = pl.concat(
        [
            judged_rows.filter(pl.col(flag)).select(
                *columns,
                pl.lit(rule.expectation.name).alias("expectation"),
                pl.lit(rule.column).alias("expectation_column"),
                rule.observed.alias("observed_value"),
                rule.reason.alias("reason"),
                pl.lit(run_id).alias("run_id"),
            )
            for rule, flag in zip(rules, flags, strict=True)
        ]
        or [empty_withheld(judged_rows.select(columns))],
        how="vertical",
    )
    return GateResult(
        published=published,
        withheld=withheld,
        rows_withheld=judged_rows.height - published.height,
        rules=tuple(rule.expectation.name for rule in rules),
        untranslated=tuple(untranslated),
    )


def empty_withheld(rows: pl.DataFrame | pl.LazyFrame) -> pl.DataFrame:
    """A withheld table with no rows: the gated table's columns and the withheld table's own."""
    schema = dict(rows.collect_schema()) | dict.fromkeys(WITHHELD_COLUMNS, pl.String())
    return pl.DataFrame(schema=schema)


# ---- what was withheld, in words --------------------------------------------------------------------------------
def withheld_counts(withheld: pl.DataFrame | pl.LazyFrame, by: str) -> pl.DataFrame:
    """Rows withheld per ``by`` value (a KPI) and expectation, most first."""
    return (
        withheld.lazy()
        .group_by(by, "expectation")
        .agg(pl.len().alias("rows"))
        .sort(["rows", by, "expectation"], descending=[True, False, False], nulls_last=True)
        .collect()
    )


def describe_withheld(counts: pl.DataFrame, by: str, table: TableRef, rows: int) -> str:
    """One paragraph for logs, alerts and the command line: how many rows, which KPIs and expectations, and
    where to look."""
    per_value = (
        counts.group_by(by)
        .agg(pl.col("rows").sum(), pl.col("expectation").unique().sort())
        .sort(["rows", by], descending=[True, False], nulls_last=True)
    )
    shown = [
        f"{value if value is not None else '(no ' + by + ')'} ({n} by {', '.join(names)})"
        for value, n, names in per_value.head(_SHOWN_VALUES).iter_rows()
    ]
    more = per_value.height - len(shown)
    kinds = ", ".join(sorted(set(counts["expectation"].to_list())))
    return (
        f"{rows:,} row(s) of {table} withheld from readers, {per_value.height} {by}(s): {'; '.join(shown)}"
        + (f"; and {more} more" if more > 0 else "")
        + f". Expectations: {kinds}. The rest is published; see {withheld_ref(table)}."
    )
