"""Silver benchmarks: comparator indicator files in any layout, as one row per indicator, measure, area, period
and breakdown.

Layouts are told apart per file by the columns it fills, never by its name:

- ``long`` (LG Inform and councils' own exports): ``area_code, area_name, period, indicator, measure, unit,
  value``, sometimes lower/upper confidence limits and a polarity;
- ``oflog`` (Oflog data explorer): ``financial_year, local_authority_code, …, measure, code, value, median,
  mads_from_median, rank_order``, with the indicator's name in ``measure``;
- ``spreadsheet`` (ONS tables saved as CSV): title rows above the header (``Indicator:``, ``Date:``), then
  ``Area Code, Area`` and one column per measure named after it ("Mean satisfaction with your life …").

OHID Fingertips exports are long files too (``Indicator Name``, ``Time period``, ``Value``), with 95% and
99.8% limits, count, denominator, value note and comparisons, and breakdown rows beside each area's figure.

**Breakdowns.** A row's breakdown is ``filters``: its breakdown columns and values as one JSON object with
sorted keys, as in silver education (``{"age":"All ages","category":"Most deprived decile (IMD2015)",
"category_type":"County & UA deprivation deciles in England (IMD2015)","sex":"Persons"}``; blank cells left
out; ``{}`` for a file without breakdowns). Breakdown columns are the ones named as such (sex, age, category
type, category, ethnicity …: :data:`BREAKDOWN_COLUMNS`) and any other text column the conformer does not
otherwise read whose values tell apart rows of the same indicator, measure, area and period.

**The headline row** (``is_headline``) is the figure for the whole population of the area, the one benchmarks
compare on: every breakdown is absent or a whole-population value (Persons, All ages, Total, All …:
:data:`WHOLE_POPULATION`) - so no category - except age, which is the indicator's standard age band: "All
ages" (or another whole-population value) where the indicator has rows for it, otherwise the age band of
most of its rows that are otherwise headline (ties: the first in sort order; Fingertips publishes under-75
mortality for "<75 yrs" only). Nothing is dropped: breakdown rows stay in the table beside their headline.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import polars as pl

from kpi_lake.conform import Conformed, ConformError
from kpi_lake.conform.bronze_rows import (
    PROBLEM_COLUMN,
    PROBLEM_REASON,
    PROBLEM_VALUE,
    ROW_ID,
    Check,
    filled_columns,
    find_problems,
    first_present,
    humanise,
    keep_first,
    load_bronze,
    malformed_row,
    quarantine_problems,
    text_or_null,
    typed_frame,
)
from kpi_lake.conform.parsing import (
    MISSING_TEXT,
    SUPPRESSION_CODES,
    clean_text,
    parse_number,
    unparseable_number,
)
from kpi_lake.raw_files import LOADED_AT, PREAMBLE, SOURCE_FILE, SOURCE_ROW
from kpi_lake.tables import TableRef

BENCHMARKS = TableRef("silver", "open_data", "benchmarks")
INDICATOR_FILES = TableRef("bronze", "benchmarks", "indicator_files")

BENCHMARK_SCHEMA: dict[str, pl.DataType] = {
    "geography_code": pl.String(),
    "geography_name": pl.String(),
    "period": pl.String(),
    "indicator": pl.String(),
    "indicator_code": pl.String(),
    "measure": pl.String(),
    "filters": pl.String(),
    "is_headline": pl.Boolean(),
    "unit": pl.String(),
    "value": pl.Float64(),
    "value_note": pl.String(),
    "lower_ci": pl.Float64(),
    "upper_ci": pl.Float64(),
    "lower_ci_99_8": pl.Float64(),
    "upper_ci_99_8": pl.Float64(),
    "count": pl.Float64(),
    "denominator": pl.Float64(),
    "median": pl.Float64(),
    "mads_from_median": pl.Float64(),
    "rank": pl.Int32(),
    "rank_order": pl.String(),
    "polarity": pl.String(),
    "compared_to_england": pl.String(),
    "compared_to_region": pl.String(),
    "compared_to_goal": pl.String(),
    "recent_trend": pl.String(),
    "comparator_group": pl.String(),
    "source_layout": pl.String(),
    "source_file": pl.String(),
    "source_row": pl.Int64(),
}
BENCHMARK_KEY = ("indicator", "measure", "geography_code", "period", "filters")

# The names publishers give each thing, most specific first.
_AREA_CODE = ("area_code", "geography_code", "local_authority_code", "la_code", "ons_code")
_AREA_NAME = ("area_name", "area", "geography_name", "local_authority_name", "la_name")
_PERIOD = ("period", "time_period", "financial_year", "year", "date")  # not Fingertips' time_period_sortable
_INDICATOR = ("indicator", "indicator_name", "metric", "metric_name")
_INDICATOR_CODE = ("indicator_code", "indicator_id", "metric_id", "metric_type_id", "code")
_MEASURE = ("measure", "measure_type")
_UNIT = ("unit", "units")
_LOWER_CI = (
    "lower_ci",
    "lower_confidence_limit",
    "lower_confidence_interval",
    "lower_limit",
    "lci",
    "lower_95_ci",
    "lower_ci_95_0_limit",  # Fingertips: "Lower CI 95.0 limit"
    "lower_ci_95_limit",
)
_UPPER_CI = (
    "upper_ci",
    "upper_confidence_limit",
    "upper_confidence_interval",
    "upper_limit",
    "uci",
    "upper_95_ci",
    "upper_ci_95_0_limit",
    "upper_ci_95_limit",
)
_LOWER_CI_99_8 = ("lower_ci_99_8_limit", "lower_ci_99_8", "lower_99_8_ci")
_UPPER_CI_99_8 = ("upper_ci_99_8_limit", "upper_ci_99_8", "upper_99_8_ci")
_COUNT = ("count", "numerator")
_DENOMINATOR = ("denominator",)
_COMPARED_TO_ENGLAND = ("compared_to_england_value_or_percentiles", "compared_to_england")
_COMPARED_TO_REGION = ("compared_to_region_value_or_percentiles", "compared_to_region")
_COMPARED_TO_GOAL = ("compared_to_goal",)
_RECENT_TREND = ("recent_trend",)
_NOTE = ("value_note", "note", "notes")
_POLARITY = ("polarity",)
_RANK = ("rank",)

#: Columns that are breakdowns by name: their values go into ``filters`` whenever a file fills them.
BREAKDOWN_COLUMNS = (
    "sex",
    "gender",
    "age",
    "age_band",
    "age_group",
    "category_type",
    "category",
    "ethnicity",
    "ethnic_group",
    "disability",
    "deprivation_decile",
    "imd_decile",
    "breakdown",
    "breakdown_type",
    "breakdown_value",
)
_AGE = ("age", "age_band", "age_group")
#: Breakdown values that mean the whole population (lower case): a row with only these is a headline row.
WHOLE_POPULATION = frozenset(
    {"persons", "all persons", "people", "all people", "all", "total", "all ages", "both sexes", "all sexes"}
)
#: Columns of long files that describe the area or the value, never a breakdown (Fingertips' area type and
#: parent, "new data" flag and sortable period; LG Inform's and Oflog's region and type of council).
_ATTRIBUTE_COLUMNS = frozenset(
    {
        "parent_code",
        "parent_name",
        "area_type",
        "region",
        "region_code",
        "region_name",
        "entity_name",
        "grouping",
        "time_period_sortable",
        "new_data",
        "ons_code",
        "la_code",
        "la_name",
    }
)

#: Why a value is missing, in words, for each marker publishers put in place of a number (lower case).
VALUE_NOTES: dict[str, str] = {
    **dict.fromkeys(("c", "[c]"), "suppressed: confidential"),
    **dict.fromkeys(("low", "[low]"), "suppressed: low count"),
    **dict.fromkeys(("z", "[z]"), "not applicable"),
    **dict.fromkeys(("u", "[u]"), "low reliability"),
    "k": "rounds to zero",
    **dict.fromkeys(
        ("x", "[x]", ".", ":", "..", "na", "n/a", "n.a.", "#n/a", "-", "–", "null", "none"), "not available"
    ),
}


def conform_benchmarks(indicator_files: pl.LazyFrame | None = None) -> Conformed:
    """Every benchmark file's values as rows of (area, period, indicator, measure), whatever its layout."""
    bronze = load_bronze(
        indicator_files, lineage={PREAMBLE: pl.String(), LOADED_AT: pl.Datetime("us", "UTC")}
    )
    filled = filled_columns(bronze)
    frames, problems = [], []
    for file, columns in sorted(filled.items()):
        rows = bronze.filter(pl.col(SOURCE_FILE) == file)
        layout = detect_layout(columns)
        reader = {"long": _long, "oflog": _oflog, "spreadsheet": _spreadsheet}.get(layout)
        if reader is None:
            raise ConformError(
                f"{INDICATOR_FILES}: {file} is in no benchmark layout this conformer knows. Expected "
                "indicator and value columns (long), measure, value and median (Oflog) or an area code with "
                f"number columns (spreadsheet export); it has {', '.join(sorted(columns))}"
            )
        cells, file_problems = reader(rows, columns, file)
        frames.append(cells.with_columns(pl.lit(layout).alias("source_layout")))
        problems += file_problems
    if not frames:  # no file yet, or only header rows
        return Conformed(pl.DataFrame(schema=BENCHMARK_SCHEMA))
    cells = pl.concat(frames, how="diagonal_relaxed")
    values, value_problems = _typed_values(cells)
    # The same area, period and indicator in two files: the most recently landed file wins.
    # The same indicator, measure, area, period and breakdown in two files (or twice in one): the most
    # recently landed file wins, then the first row.
    values, duplicates = keep_first(
        values,
        list(BENCHMARK_KEY),
        order=[LOADED_AT, SOURCE_FILE, SOURCE_ROW],
        descending=[True, True, False],
        what="indicator, measure, area, period and breakdown",
        column=pl.col("_value_column"),
    )
    values = (
        mark_headline(values)
        .rename({SOURCE_FILE: "source_file", SOURCE_ROW: "source_row"})
        .sort("indicator", "period", "geography_code", "measure", "filters", nulls_last=True)
    )
    return Conformed(
        typed_frame(values, BENCHMARK_SCHEMA),
        quarantine_problems(
            bronze.drop(PREAMBLE),
            [*problems, value_problems, duplicates],
            source_table=INDICATOR_FILES.path,
            filled=filled,
        ),
    )


def detect_layout(columns: set[str]) -> str | None:
    """``long``, ``oflog`` or ``spreadsheet`` from the columns a file fills; None when it is none of them."""
    if "value" in columns and first_present(columns, _INDICATOR):
        return "long"
    if {"measure", "value"} <= columns and ({"median", "rank_order"} & columns):
        return "oflog"
    if first_present(columns, _AREA_CODE) and "value" not in columns:
        return "spreadsheet"
    return None


def _required(columns: set[str], file: str, layout: str, needs: dict[str, tuple[str, ...]]) -> dict[str, str]:
    """The column used for each need, or a ConformError naming the file and what it lacks."""
    found = {what: first_present(columns, names) for what, names in needs.items()}
    missing = [f"{what} ({' or '.join(needs[what])})" for what, column in found.items() if column is None]
    if missing:
        raise ConformError(
            f"{INDICATOR_FILES}: {file} looks like a {layout} benchmark file but has no column for "
            f"{', '.join(missing)}; it has {', '.join(sorted(columns))}"
        )
    return {what: column for what, column in found.items() if column}


#: Text the layouts pass on as published, and the numbers they pass on as text to be typed in one place.
_TEXTS = (
    "geography_code",
    "geography_name",
    "period",
    "indicator",
    "indicator_code",
    "measure",
    "unit",
    "rank_order",
    "comparator_group",
    "polarity",
    "note",
    "compared_to_england",
    "compared_to_region",
    "compared_to_goal",
    "recent_trend",
)
_NUMBERS = (
    "value",
    "lower_ci",
    "upper_ci",
    "lower_ci_99_8",
    "upper_ci_99_8",
    "count",
    "denominator",
    "median",
    "mads_from_median",
    "rank",
)


def _cells(rows: pl.DataFrame, source: dict[str, str | None], breakdowns: Sequence[str] = ()) -> pl.DataFrame:
    """The common shape: each output from its source column (None: the file has none), numbers still as
    text in ``_<name>`` beside ``_<name>_column`` (the source column, for quarantine), and the breakdown
    columns as ``filters`` with what :func:`mark_headline` needs to know about them."""
    breakdowns = sorted(breakdowns)
    ages = [c for c in breakdowns if c in _AGE]
    others = [c for c in breakdowns if c not in _AGE]
    return rows.select(
        ROW_ID,
        SOURCE_FILE,
        SOURCE_ROW,
        LOADED_AT,
        *(
            text_or_null(source.get(name)).alias(f"_{name}" if name in ("polarity", "note") else name)
            for name in _TEXTS
        ),
        *(text_or_null(source.get(name)).alias(f"_{name}") for name in _NUMBERS),
        *(pl.lit(source.get(name), pl.String).alias(f"_{name}_column") for name in _NUMBERS),
        filters_json(breakdowns).alias("filters"),
        pl.coalesce(pl.lit(None, pl.String), *(clean_text(c) for c in ages)).alias("_age"),
        pl.any_horizontal(pl.lit(False), *(_is_breakdown(c) for c in others)).alias("_other_breakdown"),
    )


def filters_json(columns: Sequence[str]) -> pl.Expr:
    """Each row's values in ``columns`` as one JSON object, keys sorted, blank cells left out: the same text
    silver education's ``filters`` holds ('{"age":"All ages","sex":"Persons"}'; '{}' for none)."""
    pairs = [
        pl.when(clean_text(c).is_not_null()).then(
            pl.format(
                '"{}":{}',
                pl.lit(c),
                # json_encode of a one-field struct escapes the value exactly as JSON wants.
                pl.struct(v=clean_text(c))
                .struct.json_encode()
                .str.strip_prefix('{"v":')
                .str.strip_suffix("}"),
            )
        )
        for c in sorted(columns)
    ]
    body = pl.concat_str(pairs, separator=",", ignore_nulls=True) if pairs else pl.lit("")
    return pl.concat_str(pl.lit("{"), body.fill_null(""), pl.lit("}"))


def _is_breakdown(column: str) -> pl.Expr:
    """True where a breakdown cell names part of the population (not blank, not Persons, All, Total …)."""
    text = clean_text(column)
    return text.is_not_null() & ~text.str.to_lowercase().is_in(list(WHOLE_POPULATION))


def mark_headline(values: pl.DataFrame) -> pl.DataFrame:
    """``is_headline`` for each row (see the module docstring): no breakdown but age, and age absent, a
    whole-population value, or - where the indicator has no such row - its standard band (the band of most of
    its otherwise-headline rows, ties to the first in sort order)."""
    whole_age = pl.col("_age").is_null() | pl.col("_age").str.to_lowercase().is_in(list(WHOLE_POPULATION))
    candidates = values.filter(~pl.col("_other_breakdown"))
    with_whole_age = candidates.filter(whole_age).select("indicator").unique()
    standard_band = (
        candidates.filter(~whole_age)
        .join(with_whole_age, on="indicator", how="anti", nulls_equal=True)
        .group_by("indicator", "_age")
        .len()
        .sort("indicator", pl.col("len"), "_age", descending=[False, True, False], nulls_last=True)
        .unique("indicator", keep="first", maintain_order=True)
        .select("indicator", pl.col("_age").alias("_standard_age"))
    )
    return (
        values.join(standard_band, on="indicator", how="left", nulls_equal=True)
        .with_columns(
            is_headline=~pl.col("_other_breakdown")
            & (whole_age | (pl.col("_age") == pl.col("_standard_age"))).fill_null(False)
        )
        .drop("_standard_age")
    )


def _long(rows: pl.DataFrame, columns: set[str], file: str) -> tuple[pl.DataFrame, list[pl.DataFrame]]:
    needed = _required(
        columns, file, "long", {"area code": _AREA_CODE, "period": _PERIOD, "indicator": _INDICATOR}
    )
    problems = find_problems(rows, _row_checks(needed["area code"]))
    source = {
        "geography_code": needed["area code"],
        "geography_name": first_present(columns, _AREA_NAME),
        "period": needed["period"],
        "indicator": needed["indicator"],
        "indicator_code": first_present(columns, _INDICATOR_CODE),
        "measure": first_present(columns, _MEASURE),
        "unit": first_present(columns, _UNIT),
        "polarity": first_present(columns, _POLARITY),
        "note": first_present(columns, _NOTE),
        "value": "value",
        "lower_ci": first_present(columns, _LOWER_CI),
        "upper_ci": first_present(columns, _UPPER_CI),
        "lower_ci_99_8": first_present(columns, _LOWER_CI_99_8),
        "upper_ci_99_8": first_present(columns, _UPPER_CI_99_8),
        "count": first_present(columns, _COUNT),
        "denominator": first_present(columns, _DENOMINATOR),
        "rank": first_present(columns, _RANK),
        "compared_to_england": first_present(columns, _COMPARED_TO_ENGLAND),
        "compared_to_region": first_present(columns, _COMPARED_TO_REGION),
        "compared_to_goal": first_present(columns, _COMPARED_TO_GOAL),
        "recent_trend": first_present(columns, _RECENT_TREND),
    }
    good = rows.join(problems, on=ROW_ID, how="anti")
    return _cells(good, source, _breakdown_columns(good, columns, source)), [problems]


def _breakdown_columns(rows: pl.DataFrame, columns: set[str], source: dict[str, str | None]) -> list[str]:
    """A long file's breakdown columns: those named as breakdowns, and any other text column not read for
    something else whose values differ between rows of the same indicator, measure, area and period (a
    breakdown under a name this conformer does not know; a column that merely describes the area or the
    value never differs there)."""
    named = [c for c in BREAKDOWN_COLUMNS if c in columns]
    used = {c for c in source.values() if c}
    unknown = sorted(columns - used - set(named) - _ATTRIBUTE_COLUMNS)
    if not unknown or rows.height == 0:
        return named
    key = [
        c for c in (source["indicator"], source["measure"], source["geography_code"], source["period"]) if c
    ]
    text = clean_text(pl.col("_cell")).str.to_lowercase()
    number_like = parse_number("_cell").is_not_null() | text.is_in([*SUPPRESSION_CODES, *MISSING_TEXT])
    numbers = set(
        rows.lazy()
        .unpivot(index=[], on=unknown, variable_name="_column", value_name="_cell")
        .filter(clean_text("_cell").is_not_null())
        .group_by("_column")
        .agg((number_like.sum() * 2 > pl.len()).alias("_numbers"))
        .filter("_numbers")
        .collect()["_column"]
    )
    texts = [c for c in unknown if c not in numbers]
    if not texts:
        return named
    varies = (
        rows.lazy()
        .group_by([clean_text(c).alias(c) for c in key + named])
        .agg(clean_text(c).n_unique().alias(c) for c in texts)
        .select((pl.col(c) > 1).any() for c in texts)
        .collect()
    )
    return named + [c for c in texts if varies[c][0]]


def _oflog(rows: pl.DataFrame, columns: set[str], file: str) -> tuple[pl.DataFrame, list[pl.DataFrame]]:
    needed = _required(
        columns, file, "Oflog", {"area code": _AREA_CODE, "period": _PERIOD, "measure": ("measure",)}
    )
    problems = find_problems(rows, _row_checks(needed["area code"]))
    source = {
        "geography_code": needed["area code"],
        "geography_name": first_present(columns, _AREA_NAME),
        "period": needed["period"],
        "indicator": "measure",  # Oflog's "Measure" is the indicator's name ("Outcome, ASC Quality of Life")
        "indicator_code": first_present(columns, ("code", "measure_code")),
        "measure": first_present(columns, ("grouping",)),  # LA_Raw: the council's own published value
        "rank_order": first_present(columns, ("rank_order",)),
        "comparator_group": first_present(columns, ("entity_name",)),  # the type of council compared with
        "value": "value",
        "median": first_present(columns, ("median",)),
        "mads_from_median": first_present(columns, ("mads_from_median",)),
    }
    return _cells(rows.join(problems, on=ROW_ID, how="anti"), source), [problems]


def _spreadsheet(rows: pl.DataFrame, columns: set[str], file: str) -> tuple[pl.DataFrame, list[pl.DataFrame]]:
    code = first_present(columns, _AREA_CODE)
    name = first_present(columns, _AREA_NAME)
    note = first_present(columns, _NOTE)
    lower, upper = first_present(columns, _LOWER_CI), first_present(columns, _UPPER_CI)
    others = sorted(columns - {code, name, note, lower, upper})
    # The measure columns are the ones whose cells are mostly numbers (or "na", "x" …): notes and labels
    # beside them are text.
    text = clean_text(pl.col("_cell")).str.to_lowercase()
    number_like = parse_number("_cell").is_not_null() | text.is_in([*SUPPRESSION_CODES, *MISSING_TEXT])
    shares = (
        rows.lazy()
        .unpivot(index=[], on=others, variable_name="_column", value_name="_cell")
        .filter(clean_text("_cell").is_not_null())
        .group_by("_column")
        .agg((number_like.sum() * 2 > pl.len()).alias("_numbers"))
        .filter("_numbers")
        .collect()
    )
    measures = sorted(shares["_column"].to_list())
    if not measures:
        raise ConformError(
            f"{INDICATOR_FILES}: {file} has an area code column ({code}) but no column of numbers to read "
            f"as a measure; it has {', '.join(sorted(columns))}"
        )
    problems = find_problems(rows, _row_checks(code))
    title = _title_rows(rows)
    good = rows.join(problems, on=ROW_ID, how="anti")
    frames = []
    for measure in measures:
        source = {
            "geography_code": code,
            "geography_name": name,
            "note": note,
            "value": measure,
            "lower_ci": lower,
            "upper_ci": upper,
        }
        frames.append(
            _cells(good, source).with_columns(
                # The title rows name the indicator and period; without them the column says what it is.
                pl.lit(title.get("indicator") or humanise(measure)).alias("indicator"),
                pl.lit(title.get("date"), pl.String).alias("period"),
                pl.lit(humanise(measure)).alias("measure"),
                pl.lit(title.get("unit"), pl.String).alias("unit"),
            )
        )
    return pl.concat(frames), [problems]


def _title_rows(rows: pl.DataFrame) -> dict[str, str]:
    """``Indicator:``, ``Date:`` (and ``Unit:``) values from the rows above the header, lower-case keys.

    ONS exports name the indicator and period only there. The reader keeps those rows in ``_preamble``, one
    line per row with the cells joined by spaces ("Indicator: Average life satisfaction rating (Back to data
    dictionary)"); the spreadsheet's link back to its contents page is not part of the name.
    """
    preamble = rows[PREAMBLE].drop_nulls() if PREAMBLE in rows.columns else pl.Series([], dtype=pl.String)
    if preamble.is_empty():
        return {}
    title: dict[str, str] = {}
    for line in preamble[0].splitlines():  # one file's few title lines, not data rows
        match = re.match(r"^\s*([A-Za-z][A-Za-z ]*?)\s*:\s*(.+?)\s*$", line)
        if match:
            value = re.sub(r"\s*\(Back to [^)]*\)$", "", match.group(2)).strip()
            title.setdefault(match.group(1).lower(), value)
    return title


def _row_checks(code: str) -> list[Check]:
    return [malformed_row(), Check(clean_text(code).is_null(), code, "no area code")]


def _typed_values(cells: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Numbers typed, markers explained in value_note; a cell with text where a number belongs is
    quarantined (naming its source column) and the file's other cells go on."""
    failed = {name: unparseable_number(f"_{name}") for name in _NUMBERS if name != "rank"}
    failed["rank"] = clean_text("_rank").is_not_null() & ~clean_text("_rank").str.contains(r"^\d+$")
    problems = pl.concat(
        [
            cells.filter(check.fill_null(False)).select(
                ROW_ID,
                pl.col(f"_{name}_column").alias(PROBLEM_COLUMN),
                pl.col(f"_{name}").alias(PROBLEM_VALUE),
                pl.lit(
                    "rank is not a whole number"
                    if name == "rank"
                    else "not a number or a missing-value marker"
                ).alias(PROBLEM_REASON),
            )
            for name, check in failed.items()
        ]
    ).unique(
        [ROW_ID, PROBLEM_COLUMN], maintain_order=True
    )  # a spreadsheet row's CI column serves every measure
    marker = clean_text("_value")
    words = marker.str.to_lowercase().replace_strict(VALUE_NOTES, default=None, return_dtype=pl.String)
    why_missing = (
        pl.when(marker.is_null())
        .then(pl.lit("no value published (blank)"))
        .otherwise(pl.format("{} ({})", words, marker))  # the marker as published: "not available (NA)"
    )
    values = cells.filter(
        ~pl.any_horizontal(check.fill_null(False) for check in failed.values())
    ).with_columns(
        *(parse_number(f"_{name}").alias(name) for name in _NUMBERS if name != "rank"),
        clean_text("_rank").cast(pl.Int32, strict=False).alias("rank"),
        # Oflog writes None for measures it does not rank.
        pl.col("rank_order").str.to_lowercase().replace({"none": None, "null": None}).alias("rank_order"),
    )
    values = values.with_columns(
        pl.when(pl.col("value").is_null())
        .then(pl.concat_str(why_missing, pl.col("_note"), separator="; ", ignore_nulls=True))
        .otherwise(pl.col("_note"))
        .alias("value_note"),
        # Oflog ranks councils so that rank 1 is best: descending order means higher values are better.
        pl.coalesce(
            pl.col("_polarity"),
            pl.col("rank_order").replace_strict(
                {"desc": "Higher is better", "asc": "Lower is better"}, default=None, return_dtype=pl.String
            ),
        ).alias("polarity"),
    )
    return values, problems
