"""SPAR.net exports → ``silver/spar_net/kpi_definitions`` and ``silver/spar_net/kpi_values``.

SPAR.net's exports are written by people: percentages with "%", thousands separators, "n/a", blank targets,
UK dates, period labels in three styles, commentary with commas and line breaks. Everything parses here or
goes to quarantine with the file, row, column and reason.
"""

from __future__ import annotations

import datetime as dt

import polars as pl

from kpi_lake.conform import Conformed, empty_quarantine, quarantine, require_columns, split_by_checks
from kpi_lake.conform.parsing import (
    clean_text,
    non_finite_number,
    parse_number,
    parse_uk_date,
    unparseable_date,
    unparseable_number,
)
from kpi_lake.periods import parse_period, period_label_from_dates
from kpi_lake.raw_files import DECIMAL_MARK, LOADED_AT, PARSE_ISSUE, SOURCE_FILE, SOURCE_ROW

POLARITIES = {
    "higher is better": "higher_is_better",
    "high is good": "higher_is_better",
    "higher": "higher_is_better",
    "up": "higher_is_better",
    "lower is better": "lower_is_better",
    "low is good": "lower_is_better",
    "lower": "lower_is_better",
    "down": "lower_is_better",
    "neither": "neither",
    "n/a": "neither",
    "none": "neither",
}
#: What a KPI code looks like (BPPM474, BPC352b, NH617, CYP-01): no spaces, a digit, at most 20 characters.
#: A line of commentary that lost its quotes is the usual impostor in the indicator column.
KPI_CODE = r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,19}$"


def looks_like_kpi_code(column: str) -> pl.Expr:
    code = pl.col(column)
    return code.str.contains(KPI_CODE) & code.str.contains(r"\d")


RAG = {"g": "green", "green": "green", "a": "amber", "amber": "amber", "r": "red", "red": "red"}

DEFINITION_COLUMNS = {
    "kpi_code": "SPAR.net indicator id, e.g. BPPM474",
    "kpi_name": "Indicator name as published",
    "definition": "What is counted and how",
    "unit": "Unit: %, number, rate per 100,000, days, kt CO2e, score",
    "polarity": "higher_is_better | lower_is_better | neither",
    "frequency": "How often it is reported: quarterly, annual, academic year, monthly",
    "directorate": "Directorate responsible",
    "service": "Service responsible",
    "responsible_officer": "Responsible officer (a role, not a person)",
    "primary_theme": "The corporate-strategy theme the KPI belongs to first",
    "themes": "Every theme the KPI serves (primary first); more than one means cross-cutting",
    "rag_tolerance_pct": "How far off target (percent of target) is still amber; default 5",
    "source_system": "Where the lake gets the actual: spar_net or a source family it computes it from",
    "source_file": "The export the definition was taken from (the newest)",
}
VALUE_COLUMNS = {
    "kpi_code": "SPAR.net indicator id",
    "period_key": "Normalised period: FY2024-25-Q2, FY2024-25, AY2024-25, CY2024, M2024-07",
    "period_type": "quarter | financial_year | academic_year | calendar_year | month",
    "period_label": "The period as SPAR.net wrote it",
    "period_start": "First day of the period",
    "period_end": "Last day of the period",
    "actual": "The reported actual (percent signs and thousands separators removed)",
    "target": "The target for the period; null when none was set",
    "numerator": "Numerator of the actual, where reported",
    "denominator": "Denominator of the actual, where reported",
    "rag_as_reported": "RAG status SPAR.net showed: green | amber | red | null",
    "direction_of_travel_as_reported": "Direction of travel SPAR.net showed, as text",
    "commentary": "The manager's narrative, whole (line breaks kept)",
    "action_to_improve": "Planned action, where given",
    "data_status": "provisional | final",
    "last_updated_at": "When the value was last updated in SPAR.net",
    "source_file": "The export this row came from",
    "source_row": "Its row in that export",
}


def _first_present(frame: pl.LazyFrame, *names: str) -> pl.Expr:
    present = set(frame.collect_schema().names())
    for name in names:
        if name in present:
            return clean_text(name)
    return pl.lit(None, dtype=pl.String)


def _latest_first(frame: pl.LazyFrame) -> pl.LazyFrame:
    """Newest export first: by load time, then file name (exports are named by period)."""
    order = [c for c in (LOADED_AT, SOURCE_FILE) if c in frame.collect_schema().names()]
    return frame.sort(order, descending=True, nulls_last=True) if order else frame


def conform_kpi_definitions(
    kpi_definitions: pl.LazyFrame | None, kpi_values: pl.LazyFrame | None = None
) -> Conformed:
    """One row per KPI from the newest definitions export; KPIs seen only in value exports are added from
    the descriptive columns those exports repeat."""
    frames = []
    for frame in (kpi_definitions, kpi_values):
        if frame is None:
            continue
        require_columns(frame, ["indicator_id"], what="SPAR.net export")
        frames.append(
            _latest_first(frame).select(
                _first_present(frame, "indicator_id").alias("kpi_code"),
                _first_present(frame, "indicator_name", "kpi_name").alias("kpi_name"),
                _first_present(frame, "definition", "description").alias("definition"),
                _first_present(frame, "unit").alias("unit"),
                _first_present(frame, "polarity").alias("polarity_text"),
                _first_present(frame, "frequency").str.to_lowercase().alias("frequency"),
                _first_present(frame, "directorate").alias("directorate"),
                _first_present(frame, "service").alias("service"),
                _first_present(frame, "responsible_officer").alias("responsible_officer"),
                _first_present(frame, "theme", "primary_theme").alias("primary_theme"),
                _first_present(frame, "secondary_theme", "secondary_themes", "other_themes").alias(
                    "other_themes"
                ),
                _first_present(frame, "rag_tolerance_pct", "rag_tolerance").alias("tolerance_text"),
                _first_present(frame, "source_system").alias("source_system"),
                pl.col(SOURCE_FILE).alias("source_file"),
                pl.col(SOURCE_ROW).alias("source_row"),
                pl.lit(frame is kpi_definitions).alias("_from_definitions"),
            )
        )
    if not frames:
        return Conformed(rows=pl.DataFrame(schema=_definition_schema()))
    combined = pl.concat(frames, how="diagonal_relaxed").collect()
    bad_codes = combined.filter(pl.col("kpi_code").is_not_null() & ~looks_like_kpi_code("kpi_code"))
    combined = combined.filter(pl.col("kpi_code").is_not_null() & looks_like_kpi_code("kpi_code"))
    # Definitions exports win over the columns value exports repeat; the newest of each wins within.
    newest = combined.sort("_from_definitions", descending=True, maintain_order=True).unique(
        "kpi_code", keep="first", maintain_order=True
    )
    polarity = pl.col("polarity_text").str.to_lowercase().replace_strict(POLARITIES, default=None)
    tolerance = parse_number("tolerance_text")
    bad_polarity = newest.filter(pl.col("polarity_text").is_not_null() & polarity.is_null())
    bad_tolerance = newest.filter(unparseable_number("tolerance_text"))
    rows = newest.with_columns(
        polarity.fill_null("neither").alias("polarity"),
        tolerance.fill_null(5.0).alias("rag_tolerance_pct"),
        pl.concat_list(
            pl.col("primary_theme"),
            pl.col("other_themes").fill_null("").str.split(";").list.eval(pl.element().str.strip_chars()),
        )
        .list.eval(pl.element().filter(pl.element().is_not_null() & (pl.element() != "")))
        .list.unique(maintain_order=True)
        .alias("themes"),
        pl.col("source_system").fill_null("spar_net"),
    ).select(list(DEFINITION_COLUMNS))
    issues = pl.concat(
        [
            _quarantine_projection(bad_codes, "indicator_id", "kpi_code", "not a KPI code (a broken line?)"),
            _quarantine_projection(
                bad_polarity,
                "polarity",
                "polarity_text",
                "polarity is not higher/lower/neither; 'neither' used",
            ),
            _quarantine_projection(
                bad_tolerance, "rag_tolerance_pct", "tolerance_text", "tolerance is not a number; 5% used"
            ),
        ]
    )
    return Conformed(rows=rows, quarantine=issues)


def _quarantine_projection(frame: pl.DataFrame, column: str, value_column: str, reason: str) -> pl.DataFrame:
    if frame.height == 0:
        return empty_quarantine()
    return frame.select(
        pl.lit("bronze/spar_net/kpi_definitions").alias("source_table"),
        pl.col("source_file"),
        pl.col("source_row").cast(pl.Int64),
        pl.lit(column).alias("column"),
        pl.col(value_column).alias("value"),
        pl.lit(reason).alias("reason"),
        pl.struct(pl.all().exclude("_from_definitions").cast(pl.String))
        .struct.json_encode()
        .alias("raw_record"),
    )


def _definition_schema() -> dict[str, pl.DataType]:
    return {
        name: (
            pl.List(pl.String)
            if name == "themes"
            else pl.Float64
            if name == "rag_tolerance_pct"
            else pl.String
        )
        for name in DEFINITION_COLUMNS
    }


#: Units that say a value is a percentage (0 to 100) or a count or rate (never negative).
PERCENT_UNIT = r"(?i)^\s*(%|per ?cent|percentage)\s*$"
COUNT_UNIT = r"(?i)^\s*(number|count|no\.?|rate per .*)\s*$"


def latest_plausible_period_end(today: dt.date) -> dt.date:
    """The last day a reported period may end on: the end of the financial year after the current one.

    SPAR.net holds targets a year ahead at most; a period beyond that (2031/32 in a 2024 export) is a typo.
    """
    first_year = today.year if today.month >= 4 else today.year - 1
    return dt.date(first_year + 2, 3, 31)


def parse_uk_datetime(column: str) -> pl.Expr:
    text = clean_text(column)
    return pl.coalesce(
        text.str.to_datetime("%d/%m/%Y %H:%M:%S", strict=False),
        text.str.to_datetime("%d/%m/%Y %H:%M", strict=False),
        text.str.slice(0, 19).str.to_datetime("%Y-%m-%d %H:%M:%S", strict=False),
        text.str.slice(0, 16).str.to_datetime("%Y-%m-%d %H:%M", strict=False),
        parse_uk_date(column).cast(pl.Datetime("us")),
    )


def conform_kpi_values(kpi_values: pl.LazyFrame | None, today: dt.date | None = None) -> Conformed:
    """One row per KPI and period: the newest export's figures, typed; unparseable rows quarantined.

    Also quarantined, with the reason: NaN or infinite figures, impossible dates and times, a period ending
    after :func:`latest_plausible_period_end` (of ``today``), a percentage outside 0-100 and a negative count
    or rate (by the KPI's ``unit``, which every export repeats from the definition).
    """
    if kpi_values is None:
        return Conformed(rows=pl.DataFrame(schema=_value_schema()))
    require_columns(kpi_values, ["indicator_id", "period_label", "actual"], what="SPAR.net value export")
    frame = _latest_first(kpi_values).collect()
    raw_columns = [c for c in frame.columns]
    typed = frame.with_columns(
        clean_text("indicator_id").alias("_kpi_code"),
        parse_period("period_label").alias("_period"),
        parse_uk_date("period_start").alias("_start")
        if "period_start" in raw_columns
        else pl.lit(None, pl.Date).alias("_start"),
        parse_uk_date("period_end").alias("_end")
        if "period_end" in raw_columns
        else pl.lit(None, pl.Date).alias("_end"),
    )
    # Where the label is unusual but the export gives start and end dates, derive the period from the dates.
    from_dates = parse_period(period_label_from_dates("_start", "_end"))
    typed = typed.with_columns(
        pl.coalesce(pl.col("_period").struct.field(field), from_dates.struct.field(field)).alias(f"_{field}")
        for field in ("period_key", "period_type", "period_start", "period_end")
    )

    problems: list[pl.DataFrame] = []
    source = "bronze/spar_net/kpi_values"
    # The file's decimal mark (bronze records it): "33,5" in a European CSV is 33.5.
    mark = pl.col(DECIMAL_MARK) if DECIMAL_MARK in raw_columns else None
    figures = [c for c in ("actual", "target", "numerator", "denominator") if c in raw_columns]
    latest_end = latest_plausible_period_end(today or dt.date.today())
    checks = [
        (pl.col("_kpi_code").is_null(), "indicator_id", "no indicator id"),
        (~looks_like_kpi_code("_kpi_code"), "indicator_id", "not a KPI code (a broken line?)"),
        (
            pl.col("_period_key").is_null(),
            "period_label",
            "period label not understood (expected e.g. '2024/25 Q2')",
        ),
        (
            pl.col("_period_end") > latest_end,
            "period_label",
            f"period ends after {latest_end:%d/%m/%Y}, beyond the financial year after the current one: "
            "implausibly far in the future (a typo in the year?)",
        ),
    ]
    for optional, what in (("period_start", "_start"), ("period_end", "_end")):
        if optional in raw_columns:
            checks.append(
                (
                    unparseable_date(optional, pl.col(what)),
                    optional,
                    f"{optional} is not a valid date (expected dd/mm/yyyy)",
                )
            )
    if "last_updated_at" in raw_columns:
        checks.append(
            (
                unparseable_date("last_updated_at", parse_uk_datetime("last_updated_at")),
                "last_updated_at",
                "last_updated_at is not a valid date and time (expected dd/mm/yyyy hh:mm)",
            )
        )
    for figure in figures:
        checks.append((non_finite_number(figure), figure, f"{figure} is NaN or infinite: not a value"))
        checks.append((unparseable_number(figure, mark), figure, f"{figure} is not a number, 'n/a' or blank"))
    if "unit" in raw_columns:
        unit = clean_text("unit")
        for figure in [f for f in figures if f in ("actual", "target")]:
            value = parse_number(figure, mark)
            checks.append(
                (
                    unit.str.contains(PERCENT_UNIT) & ((value > 100) | (value < 0)),
                    figure,
                    pl.format("{} is outside 0-100 for a KPI whose unit is {}", pl.lit(figure), unit),
                )
            )
            checks.append(
                (
                    unit.str.contains(COUNT_UNIT) & (value < 0),
                    figure,
                    pl.format("{} is negative for a KPI whose unit is {}", pl.lit(figure), unit),
                )
            )
    if PARSE_ISSUE in raw_columns:
        checks.append((pl.col(PARSE_ISSUE).is_not_null(), PARSE_ISSUE, "row does not match the header"))
    good, problem_rows = split_by_checks(typed, checks, source_table=source)
    if problem_rows.height:
        problems.append(problem_rows)

    # The same KPI and period twice in ONE export is ambiguous: quarantine both. Across exports, the newest wins.
    key = ["_kpi_code", "_period_key"]
    in_file_duplicate = pl.struct(*key, SOURCE_FILE).is_duplicated()
    duplicates = good.filter(in_file_duplicate)
    if duplicates.height:
        problems.append(
            quarantine(
                duplicates,
                source_table=source,
                column="indicator_id",
                reason="the same KPI and period appear more than once in this export",
            )
        )
    good = good.filter(~in_file_duplicate).unique(key, keep="first", maintain_order=True)

    rag = (
        clean_text("rag_status").str.to_lowercase().replace_strict(RAG, default=None)
        if "rag_status" in raw_columns
        else pl.lit(None, pl.String)
    )
    rows = good.select(
        pl.col("_kpi_code").alias("kpi_code"),
        pl.col("_period_key").alias("period_key"),
        pl.col("_period_type").alias("period_type"),
        clean_text("period_label").alias("period_label"),
        pl.col("_period_start").alias("period_start"),
        pl.col("_period_end").alias("period_end"),
        *(
            (parse_number(figure, mark) if figure in raw_columns else pl.lit(None, pl.Float64)).alias(figure)
            for figure in ("actual", "target", "numerator", "denominator")
        ),
        rag.alias("rag_as_reported"),
        _optional(raw_columns, "direction_of_travel").alias("direction_of_travel_as_reported"),
        _optional(raw_columns, "commentary", strip=False).alias("commentary"),
        _optional(raw_columns, "action_to_improve", strip=False).alias("action_to_improve"),
        _optional(raw_columns, "data_status").str.to_lowercase().alias("data_status"),
        (
            parse_uk_datetime("last_updated_at")
            if "last_updated_at" in raw_columns
            else pl.lit(None, pl.Datetime("us"))
        ).alias("last_updated_at"),
        pl.col(SOURCE_FILE).alias("source_file"),
        pl.col(SOURCE_ROW).alias("source_row"),
    ).sort("kpi_code", "period_start")
    return Conformed(rows=rows, quarantine=pl.concat(problems) if problems else empty_quarantine())


def _optional(columns: list[str], name: str, *, strip: bool = True) -> pl.Expr:
    if name not in columns:
        return pl.lit(None, dtype=pl.String)
    if strip:
        return clean_text(name)
    text = pl.col(name).cast(pl.String)
    return pl.when(text.str.strip_chars() == "").then(None).otherwise(text)


def _value_schema() -> dict[str, pl.DataType]:
    types: dict[str, pl.DataType] = {name: pl.String() for name in VALUE_COLUMNS}
    types.update(
        period_start=pl.Date(),
        period_end=pl.Date(),
        actual=pl.Float64(),
        target=pl.Float64(),
        numerator=pl.Float64(),
        denominator=pl.Float64(),
        last_updated_at=pl.Datetime("us"),
        source_row=pl.Int64(),
    )
    return types
