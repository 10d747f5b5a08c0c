"""Checks Great Expectations does not cover, read from the Delta log alone (no data is read): freshness (the
last commit's age), schema drift (the table's columns and types against the declared ones) and row-count
change (against the previous Delta version)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

from kpi_lake.quality.results import CheckOutcome
from kpi_lake.quality.suites import NativeRule, dtype_matches


def freshness(rule: NativeRule, last_commit: dt.datetime | None, now: dt.datetime) -> CheckOutcome:
    """The table's last commit is at most ``max_age_hours`` old (26: a nightly table plus two hours' slack)."""
    max_hours = float(rule.params.get("max_age_hours", 26))
    description = f"the table was written in the last {max_hours:g} hours"
    if last_commit is None:
        return CheckOutcome(
            "freshness",
            "freshness",
            rule.severity,
            False,
            description,
            scope="log",
            message="no commit found in the Delta log",
        )
    age_hours = (now - last_commit).total_seconds() / 3600
    return CheckOutcome(
        "freshness",
        "freshness",
        rule.severity,
        age_hours <= max_hours,
        description,
        scope="log",
        observed_value=f"last commit {last_commit:%Y-%m-%d %H:%M} UTC, {age_hours:.1f} hours ago",
        message=""
        if age_hours <= max_hours
        else f"last written {age_hours:.1f} hours ago (limit {max_hours:g})",
        kwargs={"max_age_hours": max_hours, "age_hours": round(age_hours, 2)},
    )


def schema_drift(
    rule: NativeRule,
    actual: Mapping[str, str],
    declared: Mapping[str, str],
    documented: Mapping[str, str] | None = None,
) -> CheckOutcome:
    """The Delta schema has the declared columns with types of the declared families; with
    ``extra_columns: fail`` (silver), no column that is not declared (and documented, where the asset
    documents its columns)."""
    expected = dict(declared)
    if documented:
        expected = {name: declared.get(name, "any") for name in documented}
    missing = [c for c in expected if c not in actual]
    extra = [c for c in actual if c not in expected]
    retyped = [
        f"{c}: {actual[c]} (declared {expected[c]})"
        for c in expected
        if c in actual and not dtype_matches(expected[c], actual[c])
    ]
    fail_on_extra = rule.params.get("extra_columns", "fail") == "fail"
    problems = []
    if missing:
        problems.append(f"missing {', '.join(missing)}")
    if retyped:
        problems.append(f"changed type {'; '.join(retyped)}")
    if extra:
        problems.append(f"{'undeclared' if fail_on_extra else 'extra (allowed)'} {', '.join(extra)}")
    success = not missing and not retyped and not (extra and fail_on_extra)
    return CheckOutcome(
        "schema_drift",
        "schema_drift",
        rule.severity,
        success,
        "the table's columns and types are the declared ones"
        + ("" if fail_on_extra else " (extra columns allowed)"),
        scope="log",
        observed_value={"columns": len(actual), "missing": missing, "extra": extra, "changed_type": retyped},
        message="; ".join(problems) if not success else ("; ".join(problems) if problems else ""),
        kwargs={"declared_columns": len(expected), "extra_columns": "fail" if fail_on_extra else "allow"},
    )


def row_count_change(rule: NativeRule, rows: int, previous_rows: int | None, version: int) -> CheckOutcome:
    """The row count moved by at most ``max_change_pct`` percent since the previous Delta version (tables
    smaller than ``min_previous_rows`` before are not judged: a handful of rows swings by design)."""
    max_pct = float(rule.params.get("max_change_pct", 50))
    min_previous = int(rule.params.get("min_previous_rows", 20))
    description = f"the row count changed by at most {max_pct:g}% since the previous version"
    if previous_rows is None:
        return CheckOutcome(
            "row_count_change",
            "row_count_change",
            rule.severity,
            True,
            description,
            scope="log",
            observed_value=f"{rows} rows at version {version} (first version)",
        )
    change = (rows - previous_rows) / previous_rows * 100 if previous_rows else (0.0 if rows == 0 else 100.0)
    judged = previous_rows >= min_previous
    success = not judged or abs(change) <= max_pct
    return CheckOutcome(
        "row_count_change",
        "row_count_change",
        rule.severity,
        success,
        description,
        scope="log",
        observed_value=f"{previous_rows} → {rows} rows ({change:+.1f}%) from version {version - 1} to {version}",
        message=""
        if success
        else f"row count changed {change:+.1f}% ({previous_rows} → {rows}), limit ±{max_pct:g}%",
        kwargs={"max_change_pct": max_pct, "change_pct": round(change, 2), "previous_rows": previous_rows},
    )
