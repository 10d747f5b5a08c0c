"""Silver benchmarks: comparator indicator files in any layout, as one row per area, period and indicator.

Layouts are told apart per file by the columns it fills, never by its name:

- ``long`` (LG Inform and councils' own exports): ``area_code, area_name, period, indicator, measure, unit,
  value``, sometimes lower/upper confidence limits and a polarity;
- ``oflog`` (Oflog data explorer): ``financial_year, local_authority_code, …, measure, code, value, median,
  mads_from_median, rank_order``, with the indicator's name in ``measure``;
- ``spreadsheet`` (ONS tables saved as CSV): title rows above the header (``Indicator:``, ``Date:``), then
  ``Area Code, Area`` and one column per measure named after it ("Mean satisfaction with your life …").
"""

from __future__ import annotations

import re

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
    "unit": pl.String(),
    "value": pl.Float64(),
    "value_note": pl.String(),
    "lower_ci": pl.Float64(),
    "upper_ci": pl.Float64(),
    "median": pl.Float64(),
    "mads_from_median": pl.Float64(),
    "rank": pl.Int32(),
    "rank_order": pl.String(),
    "polarity": pl.String(),
    "comparator_group": pl.String(),
    "source_layout": pl.String(),
    "source_file": pl.String(),
    "source_row": pl.Int64(),
}
BENCHMARK_KEY = ("indicator", "measure", "geography_code", "period")

# The names publishers give each thing, most specific first.
_AREA_CODE = ("area_code", "geography_code", "local_authority_code", "la_code", "ons_code")
_AREA_NAME = ("area_name", "area", "geography_name", "local_authority_name", "la_name")
_PERIOD = ("period", "time_period", "financial_year", "year", "date")
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
)
_UPPER_CI = (
    "upper_ci",
    "upper_confidence_limit",
    "upper_confidence_interval",
    "upper_limit",
    "uci",
    "upper_95_ci",
)
_NOTE = ("value_note", "note", "notes")
_POLARITY = ("polarity",)
_RANK = ("rank",)

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
    values, duplicates = keep_first(
        values,
        list(BENCHMARK_KEY),
        order=[LOADED_AT, SOURCE_FILE, SOURCE_ROW],
        descending=[True, True, False],
        what="indicator, measure, area and period",
        column=pl.col("_value_column"),
    )
    values = values.rename({SOURCE_FILE: "source_file", SOURCE_ROW: "source_row"}).sort(
        "indicator", "period", "geography_code", "measure", nulls_last=True
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
)
_NUMBERS = ("value", "lower_ci", "upper_ci", "median", "mads_from_median", "rank")


def _cells(rows: pl.DataFrame, source: dict[str, str | None]) -> pl.DataFrame:
    """The common shape: each output from its source column (None: the file has none), numbers still as
    text in ``_<name>`` beside ``_<name>_column`` (the source column, for quarantine)."""
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
        "rank": first_present(columns, _RANK),
    }
    return _cells(rows.join(problems, on=ROW_ID, how="anti"), source), [problems]


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
