"""Reporting periods: one key for every way councils and departments write a period.

Keys: ``FY2024-25-Q2`` (financial-year quarter, Q1 = Apr-Jun), ``FY2024-25`` (financial year, 1 April to
31 March), ``AY2024-25`` (academic year, 1 September to 31 August), ``CY2024`` (calendar year),
``M2024-07`` (month). Labels understood: "2024/25 Q2", "Q2 2024/25", "Q2 2024-25", "2024-25 Q2",
"Jul-Sep 2024", "July to September 2024", "2024/25", "2024-25", "202425" with a time identifier, "2024",
"Jul 2024", "2024-07".
"""

from __future__ import annotations

import datetime as dt

import polars as pl

PERIOD_TYPES = ("quarter", "financial_year", "academic_year", "calendar_year", "month")
_MONTHS = {
    m: i
    for i, m in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), 1
    )
}
# The financial quarter a calendar month falls in, and the quarter's first month.
_QUARTER_OF_MONTH = {m: ((m - 4) % 12) // 3 + 1 for m in range(1, 13)}


def financial_year_of(day: dt.date) -> int:
    """The starting calendar year of the financial year containing ``day`` (1 April - 31 March)."""
    return day.year if day.month >= 4 else day.year - 1


def _fy(start_year: pl.Expr) -> pl.Expr:
    return pl.format("{}-{}", start_year, ((start_year + 1) % 100).cast(pl.String).str.zfill(2))


def parse_period(label: str | pl.Expr, time_identifier: str | pl.Expr | None = None) -> pl.Expr:
    """A struct (period_key, period_type, period_start, period_end) for each label; all null if not understood.

    ``time_identifier`` (DfE EES) says whether a six-digit ``202425`` is an academic or a financial year.
    """
    text = (
        (pl.col(label) if isinstance(label, str) else label)
        .cast(pl.String)
        .str.strip_chars()
        .str.to_lowercase()
    )
    text = text.str.replace_all(r"\s+", " ")
    # "2024/25 academic year", "financial year 2024/25": the words say the type, the digits the year.
    says_academic = text.str.contains(r"\bacademic\b|^ay\b")
    says_financial = text.str.contains(r"\bfinancial\b|\bfiscal\b|^fy\b")
    text = text.str.replace_all(
        r"\b(academic|financial|fiscal|calendar) year\b|^(fy|ay)\b", ""
    ).str.strip_chars()
    ident = (
        pl.lit("")
        if time_identifier is None
        else (pl.col(time_identifier) if isinstance(time_identifier, str) else time_identifier)
        .cast(pl.String)
        .str.to_lowercase()
        .fill_null("")
    )

    # "2024/25 q2", "2024-25 q2", "q2 2024/25", "q2 2024-25", "2024/2025 q2"
    quarter_fy = pl.coalesce(
        text.str.extract(r"^(\d{4})[/-](?:\d{2}|\d{4}) ?q([1-4])$", 1),
        text.str.extract(r"^q([1-4]) (\d{4})[/-](?:\d{2}|\d{4})$", 2),
    ).cast(pl.Int32, strict=False)
    quarter_no = pl.coalesce(
        text.str.extract(r"^\d{4}[/-](?:\d{2}|\d{4}) ?q([1-4])$", 1),
        text.str.extract(r"^q([1-4]) \d{4}[/-](?:\d{2}|\d{4})$", 1),
    ).cast(pl.Int32, strict=False)

    # "jul-sep 2024", "july to september 2024", "jul - sep 2024"
    month_range = text.str.extract_groups(r"^([a-z]{3})[a-z]* ?(?:-|to|–) ?([a-z]{3})[a-z]* (\d{4})$")
    first_month = month_range.struct.field("1").replace_strict(_MONTHS, default=None, return_dtype=pl.Int32)
    last_month = month_range.struct.field("2").replace_strict(_MONTHS, default=None, return_dtype=pl.Int32)
    range_year = month_range.struct.field("3").cast(pl.Int32, strict=False)
    is_quarter_range = (
        first_month.is_not_null()
        & (((last_month - first_month) % 12) == 2)
        & (first_month.is_in([1, 4, 7, 10]))
    )
    # The year printed is the year of the quarter's months (Jan-Mar 2025 is Q4 of 2024/25).
    range_fy = pl.when(first_month >= 4).then(range_year).otherwise(range_year - 1)
    range_q = first_month.replace_strict(_QUARTER_OF_MONTH, default=None, return_dtype=pl.Int32)

    fy_start = pl.when(quarter_fy.is_not_null()).then(quarter_fy).when(is_quarter_range).then(range_fy)
    q_no = pl.when(quarter_fy.is_not_null()).then(quarter_no).when(is_quarter_range).then(range_q)

    # Whole years: "2024/25", "2024-25", "fy 2024/25", "202425" (+ identifier), "2024", "cy2024"
    split = text.str.extract_groups(r"^(\d{4})[/-](\d{2}|\d{4})$")
    split_first = split.struct.field("1").cast(pl.Int32, strict=False)
    split_second = split.struct.field("2").cast(pl.Int32, strict=False)
    # "2024-25" is a year; "2024-07" is a month: the second part must be the next year.
    split_year = pl.when((split_second % 100) == ((split_first + 1) % 100)).then(split_first)
    six_digit = text.str.extract(r"^(\d{4})\d{2}$", 1).cast(pl.Int32, strict=False)
    four_digit = text.str.extract(r"^(?:cy ?)?(\d{4})$", 1).cast(pl.Int32, strict=False)
    is_academic = ident.str.contains("academic") | says_academic
    is_financial = ident.str.contains("financial") | ident.str.contains("fiscal") | says_financial
    year_start = pl.coalesce(split_year, six_digit)

    # Months: "jul 2024", "july 2024", "2024-07"
    month_name = text.str.extract_groups(r"^([a-z]{3})[a-z]* (\d{4})$")
    month_of_name = month_name.struct.field("1").replace_strict(_MONTHS, default=None, return_dtype=pl.Int32)
    month_year = pl.coalesce(
        pl.when(month_of_name.is_not_null()).then(month_name.struct.field("2").cast(pl.Int32, strict=False)),
        text.str.extract(r"^(\d{4})-(\d{2})$", 1).cast(pl.Int32, strict=False),
    )
    month_no = pl.coalesce(
        month_of_name, text.str.extract(r"^\d{4}-(\d{2})$", 1).cast(pl.Int32, strict=False)
    )

    q_start_month = (q_no - 1) * 3 + 4  # 4, 7, 10, 13 (13 = January of the next year)
    q_start = pl.date(fy_start + (q_start_month > 12).cast(pl.Int32), ((q_start_month - 1) % 12) + 1, 1)

    kind = (
        pl.when(fy_start.is_not_null())
        .then(pl.lit("quarter"))
        .when(year_start.is_not_null() & is_academic)
        .then(pl.lit("academic_year"))
        .when(year_start.is_not_null() & (is_financial | split_year.is_not_null()))
        .then(pl.lit("financial_year"))
        .when(year_start.is_not_null())
        .then(pl.lit("academic_year"))  # a bare six-digit year without an identifier: EES's usual meaning
        .when(month_year.is_not_null() & month_no.is_between(1, 12))
        .then(pl.lit("month"))
        .when(four_digit.is_not_null())
        .then(pl.lit("calendar_year"))
    )
    key = (
        pl.when(kind == "quarter")
        .then(pl.format("FY{}-Q{}", _fy(fy_start), q_no))
        .when(kind == "financial_year")
        .then(pl.format("FY{}", _fy(year_start)))
        .when(kind == "academic_year")
        .then(pl.format("AY{}", _fy(year_start)))
        .when(kind == "month")
        .then(pl.format("M{}-{}", month_year, month_no.cast(pl.String).str.zfill(2)))
        .when(kind == "calendar_year")
        .then(pl.format("CY{}", four_digit))
    )
    start = (
        pl.when(kind == "quarter")
        .then(q_start)
        .when(kind == "financial_year")
        .then(pl.date(year_start, 4, 1))
        .when(kind == "academic_year")
        .then(pl.date(year_start, 9, 1))
        .when(kind == "month")
        .then(pl.date(month_year, month_no.clip(1, 12), 1))
        .when(kind == "calendar_year")
        .then(pl.date(four_digit, 1, 1))
    )
    end = (
        pl.when(kind == "quarter")
        .then(start.dt.offset_by("3mo").dt.offset_by("-1d"))
        .when(kind == "financial_year")
        .then(pl.date(year_start + 1, 3, 31))
        .when(kind == "academic_year")
        .then(pl.date(year_start + 1, 8, 31))
        .when(kind == "month")
        .then(start.dt.month_end())
        .when(kind == "calendar_year")
        .then(pl.date(four_digit, 12, 31))
    )
    return pl.struct(
        key.alias("period_key"),
        kind.alias("period_type"),
        start.alias("period_start"),
        end.alias("period_end"),
    )


def period_label_from_dates(start: str | pl.Expr, end: str | pl.Expr) -> pl.Expr:
    """A label :func:`parse_period` understands, made from a period's first and last day (null if unusual)."""
    first = pl.col(start) if isinstance(start, str) else start
    last = pl.col(end) if isinstance(end, str) else end
    days = (last - first).dt.total_days() + 1
    fy = pl.when(first.dt.month() >= 4).then(first.dt.year()).otherwise(first.dt.year() - 1)
    fy_label = pl.format("{}/{}", fy, ((fy + 1) % 100).cast(pl.String).str.zfill(2))
    quarter = ((first.dt.month() - 4) % 12) // 3 + 1
    return (
        pl.when(days.is_between(89, 92) & first.dt.month().is_in([1, 4, 7, 10]) & (first.dt.day() == 1))
        .then(pl.format("{} Q{}", fy_label, quarter))
        .when(days.is_between(365, 366) & (first.dt.month() == 4) & (first.dt.day() == 1))
        .then(fy_label)
        .when(days.is_between(365, 366) & (first.dt.month() == 1) & (first.dt.day() == 1))
        .then(first.dt.year().cast(pl.String))
        .when(days.is_between(28, 31) & (first.dt.day() == 1))
        .then(first.dt.strftime("%Y-%m"))
    )


def financial_quarter_key(day: str | pl.Expr) -> pl.Expr:
    """The financial quarter key (``FY2024-25-Q2``) of a date or timestamp column."""
    value = (pl.col(day) if isinstance(day, str) else day).cast(pl.Date)
    fy = pl.when(value.dt.month() >= 4).then(value.dt.year()).otherwise(value.dt.year() - 1)
    quarter = ((value.dt.month().cast(pl.Int32) - 4) % 12) // 3 + 1
    return pl.format("FY{}-Q{}", _fy(fy), quarter)
