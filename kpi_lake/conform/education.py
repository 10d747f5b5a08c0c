"""Silver education: any DfE Explore Education Statistics (EES) data file in one long shape, no per-file code.

An EES file has standard time and geography columns, then filter columns (breakdowns such as school type
or social care group) and indicator columns (the numbers). Each indicator cell becomes a row keyed by the
publication, period, geography, its filters and the indicator's name. The ``.meta.csv`` beside a file says
which columns are filters and which indicators (with label and unit); without one, a column whose cells are
mostly numbers or suppression symbols is an indicator and any other is a filter.
"""

from __future__ import annotations

import polars as pl

from kpi_lake.conform import Conformed
from kpi_lake.conform.bronze_rows import (
    PROBLEM_COLUMN,
    PROBLEM_REASON,
    PROBLEM_VALUE,
    ROW_ID,
    Check,
    data_columns,
    file_stem,
    filled_columns,
    find_problems,
    keep_first,
    load_bronze,
    malformed_row,
    quarantine_problems,
    require_in_files,
    typed_frame,
)
from kpi_lake.conform.parsing import (
    MISSING_TEXT,
    SUPPRESSION_CODES,
    clean_text,
    non_finite_number,
    parse_number,
    suppression_code,
    unparseable_number,
)
from kpi_lake.raw_files import DECIMAL_MARK, SOURCE_FILE, SOURCE_ROW, normalise_column_names
from kpi_lake.tables import TableRef

EDUCATION = TableRef("silver", "open_data", "education")
EES_DATA = TableRef("bronze", "education", "ees_data")
EES_METADATA = TableRef("bronze", "education", "ees_metadata")

EDUCATION_SCHEMA: dict[str, pl.DataType] = {
    "publication": pl.String(),
    "time_period": pl.String(),
    "time_identifier": pl.String(),
    "period_start": pl.Date(),
    "period_end": pl.Date(),
    "geographic_level": pl.String(),
    "geography_code": pl.String(),
    "geography_name": pl.String(),
    "region_code": pl.String(),
    "filters": pl.String(),
    "indicator": pl.String(),
    "value": pl.Float64(),
    "suppression_code": pl.String(),
    "unit": pl.String(),
    "label": pl.String(),
    "source_file": pl.String(),
    "source_row": pl.Int64(),
}
EDUCATION_KEY = (
    "publication",
    "time_period",
    "time_identifier",
    "geographic_level",
    "geography_code",
    "filters",
    "indicator",
)

#: EES geographic levels and the columns holding each level's code and name (EES data standards).
GEOGRAPHY_COLUMNS: dict[str, tuple[str, str]] = {
    "national": ("country_code", "country_name"),
    "regional": ("region_code", "region_name"),
    "local authority": ("new_la_code", "la_name"),
    "local authority district": ("lad_code", "lad_name"),
    "parliamentary constituency": ("pcon_code", "pcon_name"),
    "ward": ("ward_code", "ward_name"),
    "local skills improvement plan area": ("lsip_code", "lsip_name"),
    "english devolved area": ("english_devolved_area_code", "english_devolved_area_name"),
    "local enterprise partnership": (
        "local_enterprise_partnership_code",
        "local_enterprise_partnership_name",
    ),
    "opportunity area": ("opportunity_area_code", "opportunity_area_name"),
    "mayoral combined authority": ("cauth_code", "cauth_name"),
    "police force area": ("pfa_code", "pfa_name"),
    "planning area": ("planning_area_code", "planning_area_name"),
    "mat": ("trust_id", "trust_name"),
    "sponsor": ("sponsor_id", "sponsor_name"),
    "school": ("school_urn", "school_name"),
    "provider": ("provider_ukprn", "provider_name"),
    "institution": ("institution_id", "institution_name"),
}
#: Columns that are time or geography, never a filter or an indicator.
STANDARD_COLUMNS = frozenset(
    {
        "time_period",
        "time_identifier",
        "geographic_level",
        "old_la_code",
        "school_laestab",
        "school_postcode",
        "rsc_region_lead_name",
        *(column for pair in GEOGRAPHY_COLUMNS.values() for column in pair),
    }
)

#: time_identifier → first month and day of the period, months from that start, period length, and the
#: digits of time_period (202425 for academic, financial and tax years; 2025 for calendar years).
_PERIODS: list[tuple[str, int, int, int, str, int]] = [
    ("academic year", 9, 1, 0, "1y", 6),
    ("financial year", 4, 1, 0, "1y", 6),
    ("tax year", 4, 6, 0, "1y", 6),
    ("calendar year", 1, 1, 0, "1y", 4),
    *((f"financial year q{q}", 4, 1, 3 * (q - 1), "3mo", 6) for q in range(1, 5)),
    *((f"calendar year q{q}", 1, 1, 3 * (q - 1), "3mo", 4) for q in range(1, 5)),
    *(
        (month, 1, 1, number - 1, "1mo", 4)
        for number, month in enumerate(
            ("january", "february", "march", "april", "may", "june", "july", "august", "september",
             "october", "november", "december"),
            start=1,
        )
    ),
]  # fmt: skip
_PERIOD_TABLE = pl.DataFrame(
    _PERIODS,
    schema={
        "_time_kind": pl.String,
        "_month": pl.Int8,
        "_day": pl.Int8,
        "_offset_months": pl.Int32,
        "_length": pl.String,
        "_digits": pl.Int32,
    },
    orient="row",
)


def conform_education(
    ees_data: pl.LazyFrame | None = None, ees_metadata: pl.LazyFrame | None = None
) -> Conformed:
    """Every indicator cell of every EES file as a row: period, geography, filters (JSON), value, unit."""
    bronze = load_bronze(ees_data, lineage={DECIMAL_MARK: pl.String()}).with_columns(
        file_stem().alias("_publication")
    )
    if bronze.height == 0:
        return Conformed(pl.DataFrame(schema=EDUCATION_SCHEMA))
    filled = filled_columns(bronze)
    require_in_files(
        filled, [("time_period",), ("time_identifier",), ("geographic_level",)], what=str(EES_DATA)
    )

    row_problems = find_problems(bronze, _row_checks(bronze))
    rows = _typed_rows(bronze.join(row_problems, on=ROW_ID, how="anti"))

    value_columns = [c for c in data_columns(bronze) if c not in STANDARD_COLUMNS]
    cells = (
        bronze.lazy()
        .join(row_problems.lazy(), on=ROW_ID, how="anti")
        .unpivot(
            index=[ROW_ID, SOURCE_FILE, "_publication", DECIMAL_MARK],
            on=value_columns,
            variable_name="indicator",
            value_name="_text",
        )
        .with_columns(clean_text("_text").alias("_text"))
        .filter(pl.col("_text").is_not_null())  # a file's cells only: other files' columns are null here
        .collect()
    )
    kinds = _column_kinds(cells, _metadata(ees_metadata))
    cells = cells.join(kinds, on=[SOURCE_FILE, "indicator"], how="left")

    indicators = cells.filter(pl.col("_kind") == "indicator")
    mark = pl.col(DECIMAL_MARK)
    bad_cells = indicators.filter(unparseable_number("_text", mark) | _out_of_range(mark)).with_columns(
        pl.when(non_finite_number("_text"))
        .then(pl.lit("indicator value is NaN or infinite: not a value"))
        .when(unparseable_number("_text", mark))
        .then(pl.lit("indicator value is not a number or a suppression symbol"))
        .when(_percentage())
        .then(pl.format("a percentage outside 0-100 (unit {})", pl.col("unit").fill_null("% by its name")))
        .otherwise(pl.lit("a count below zero"))
        .alias("_reason")
    )
    cell_problems = bad_cells.select(
        ROW_ID,
        pl.col("indicator").alias(PROBLEM_COLUMN),
        pl.col("_text").alias(PROBLEM_VALUE),
        pl.col("_reason").alias(PROBLEM_REASON),
    )
    values = (
        indicators.join(bad_cells.select(ROW_ID, "indicator"), on=[ROW_ID, "indicator"], how="anti")
        .join(_filters_json(cells), on=ROW_ID, how="left")
        .join(rows, on=ROW_ID, how="inner")
        .with_columns(
            pl.col("filters").fill_null("{}"),
            parse_number("_text", mark).alias("value"),
            suppression_code("_text").alias("suppression_code"),
            pl.col("_publication").alias("publication"),
        )
    )
    values, duplicates = keep_first(
        values,
        list(EDUCATION_KEY),
        order=[SOURCE_FILE, SOURCE_ROW],
        what="publication, period, geography, filters and indicator",
        column=pl.col("indicator"),
    )
    values = values.rename({SOURCE_FILE: "source_file", SOURCE_ROW: "source_row"}).sort(
        "publication", "time_period", "geographic_level", "geography_code", "filters", "indicator"
    )
    return Conformed(
        typed_frame(values, EDUCATION_SCHEMA),
        quarantine_problems(
            bronze.drop("_publication"),
            [row_problems, cell_problems, duplicates],
            source_table=EES_DATA.path,
            filled=filled,
        ),
    )


#: Indicator columns that hold a percentage by EES naming (pt_rwm_met_expected_standard, sess_overall_percent,
#: gld_percentage), when the .meta.csv gives no unit. Percentage-point changes (ppts) are not percentages.
PERCENT_COLUMN = r"^pt_|_percent$|_percentage$"
#: Indicator columns that hold a count (t_pupils, children_number, elg_number); not t_* in general: KS2 totals
#: of progress scores (t_read_progress_score) are negative.
COUNT_COLUMN = r"_number$|_count$|_pupils$|^num_|^number_of_"


def _percentage() -> pl.Expr:
    """A percentage cell: the meta file's unit is %, or (without a unit) the column is named as one."""
    unit = pl.col("unit").str.strip_chars()
    return (unit == "%").fill_null(False) | (
        (unit.is_null() | (unit == "")) & pl.col("indicator").str.contains(PERCENT_COLUMN)
    )


def _out_of_range(mark: pl.Expr) -> pl.Expr:
    """A percentage outside 0-100, or a negative count: a value no publication means."""
    value = parse_number("_text", mark)
    unit = pl.col("unit").str.strip_chars()
    count = (unit.is_null() | (unit == "")) & pl.col("indicator").str.contains(COUNT_COLUMN)
    return (_percentage() & ((value > 100) | (value < 0)) | (count & (value < 0))).fill_null(False)


def _row_checks(bronze: pl.DataFrame) -> list[Check]:
    level = clean_text("geographic_level").str.to_lowercase()
    return [
        malformed_row(),
        Check(clean_text("time_period").is_null(), "time_period", "no time_period"),
        Check(clean_text("time_identifier").is_null(), "time_identifier", "no time_identifier"),
        Check(clean_text("geographic_level").is_null(), "geographic_level", "no geographic_level"),
        Check(
            ~level.is_in(list(GEOGRAPHY_COLUMNS)),
            "geographic_level",
            "geographic level not known to the EES standards this conformer follows: add it to GEOGRAPHY_COLUMNS",
        ),
        Check(
            _geography("code", bronze.columns).is_null(),
            None,
            pl.format("no geography code for a {} row", clean_text("geographic_level")),
        ),
    ]


def _geography(part: str, columns: list[str]) -> pl.Expr:
    """The code (or name) of the row's geography, from the column its geographic_level uses."""
    level = clean_text("geographic_level").str.to_lowercase()
    expr: pl.Expr = pl.lit(None, pl.String)
    for name, (code_column, name_column) in GEOGRAPHY_COLUMNS.items():
        column = code_column if part == "code" else name_column
        if column in columns:
            expr = pl.when(level == name).then(clean_text(column)).otherwise(expr)
    return expr


def _typed_rows(bronze: pl.DataFrame) -> pl.DataFrame:
    """One row per bronze row: its period (with dates where the time_identifier defines them) and place."""
    time_period = clean_text("time_period")
    first_year = time_period.str.slice(0, 4).cast(pl.Int32, strict=False)
    rows = bronze.lazy().select(
        ROW_ID,
        SOURCE_FILE,
        SOURCE_ROW,
        time_period.alias("time_period"),
        clean_text("time_identifier").alias("time_identifier"),
        clean_text("time_identifier").str.to_lowercase().alias("_time_kind"),
        first_year.alias("_first_year"),
        # 202425 must be two consecutive years; otherwise no dates are derived.
        (
            time_period.str.contains(r"^\d{6}$")
            & (time_period.str.slice(4, 2).cast(pl.Int32, strict=False) == (first_year + 1) % 100)
        ).alias("_two_years"),
        time_period.str.contains(r"^\d{4}$").alias("_one_year"),
        clean_text("geographic_level").alias("geographic_level"),
        _geography("code", bronze.columns).alias("geography_code"),
        _geography("name", bronze.columns).alias("geography_name"),
        (clean_text("region_code") if "region_code" in bronze.columns else pl.lit(None, pl.String)).alias(
            "region_code"
        ),
    )
    start = pl.date(pl.col("_first_year"), pl.col("_month"), pl.col("_day")).dt.offset_by(
        pl.format("{}mo", pl.col("_offset_months"))
    )
    valid = pl.when(pl.col("_digits") == 6).then(pl.col("_two_years")).otherwise(pl.col("_one_year"))
    return (
        rows.join(_PERIOD_TABLE.lazy(), on="_time_kind", how="left")
        .with_columns(period_start=pl.when(valid).then(start))
        .with_columns(period_end=pl.col("period_start").dt.offset_by(pl.col("_length")).dt.offset_by("-1d"))
        .drop(
            SOURCE_FILE,
            "_time_kind",
            "_first_year",
            "_two_years",
            "_one_year",
            "_month",
            "_day",
            "_offset_months",
            "_length",
            "_digits",
        )
        .collect()
    )


def _metadata(ees_metadata: pl.LazyFrame | None) -> pl.DataFrame:
    """Column type, label and unit per publication and (normalised) column name, from the .meta.csv files."""
    schema = {
        "_publication": pl.String,
        "indicator": pl.String,
        "_meta_kind": pl.String,
        "label": pl.String,
        "unit": pl.String,
    }
    meta = load_bronze(ees_metadata)
    if meta.height == 0:
        return pl.DataFrame(schema=schema)
    require_in_files(filled_columns(meta), [("col_name",), ("col_type",)], what=str(EES_METADATA))
    # Data headers reach bronze normalised; the meta file lists them as published ("NEET_not_known_percent").
    published = meta["col_name"].drop_nulls().unique().to_list()
    normalised = dict(zip(published, normalise_column_names(published), strict=True)) if published else {}
    columns = meta.columns
    return (
        meta.select(
            file_stem().alias("_publication"),
            pl.col("col_name")
            .replace_strict(normalised, default=None, return_dtype=pl.String)
            .alias("indicator"),
            clean_text("col_type").str.to_lowercase().alias("_meta_kind"),
            (clean_text("label") if "label" in columns else pl.lit(None, pl.String)).alias("label"),
            (clean_text("indicator_unit") if "indicator_unit" in columns else pl.lit(None, pl.String)).alias(
                "unit"
            ),
        )
        .filter(pl.col("indicator").is_not_null())
        .unique(["_publication", "indicator"], keep="first", maintain_order=True)
        .cast(schema)
    )


def _column_kinds(cells: pl.DataFrame, metadata: pl.DataFrame) -> pl.DataFrame:
    """Per file and column: indicator or filter, and its label and unit from the meta file when there is one."""
    text = pl.col("_text").str.to_lowercase()
    number_like = (
        parse_number("_text").is_not_null()
        | text.is_in(list(SUPPRESSION_CODES))
        | text.is_in(list(MISSING_TEXT))
    )
    return (
        cells.lazy()
        .group_by(SOURCE_FILE, "_publication", "indicator")
        .agg(_mostly_numbers=(number_like.sum() * 2 > pl.len()))
        .join(metadata.lazy(), on=["_publication", "indicator"], how="left")
        .select(
            SOURCE_FILE,
            "indicator",
            pl.when(pl.col("_meta_kind").is_in(["indicator", "filter"]))
            .then(pl.col("_meta_kind"))
            .when(pl.col("_mostly_numbers"))
            .then(pl.lit("indicator"))
            .otherwise(pl.lit("filter"))
            .alias("_kind"),
            "label",
            "unit",
        )
        .collect()
    )


def _filters_json(cells: pl.DataFrame) -> pl.DataFrame:
    """Each row's filter columns and values as one JSON object, keys sorted: '{"school_type":"Special"}'.

    A JSON string rather than a struct: every publication has its own filters, so a struct would be the
    union of all of them (mostly null, changing shape with each new file), while one text column stays the
    same type, works in the table's key and reads in Power BI and SQL with their JSON functions.
    """
    # json_encode of a one-field struct escapes the value exactly as JSON wants; keep just the value part.
    escaped = (
        pl.struct(v=pl.col("_text")).struct.json_encode().str.strip_prefix('{"v":').str.strip_suffix("}")
    )
    pair = pl.format('"{}":{}', pl.col("indicator"), escaped)
    return (
        cells.lazy()
        .filter(pl.col("_kind") == "filter")
        .group_by(ROW_ID)
        .agg(pair.sort_by(pl.col("indicator")).str.join(",").alias("filters"))
        .select(ROW_ID, pl.concat_str(pl.lit("{"), "filters", pl.lit("}")).alias("filters"))
        .collect()
    )
