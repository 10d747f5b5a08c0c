"""Silver education: any DfE Explore Education Statistics (EES) data file in one long shape, no per-file code.

An EES file has standard time and geography columns, then filter columns (breakdowns such as school type
or social care group) and indicator columns (the numbers). Each indicator cell becomes a row keyed by the
publication, period, geography, its filters and the indicator's name. The ``.meta.csv`` beside a file says
which columns are filters and which indicators (with label and unit); without one, a column whose cells are
mostly numbers or suppression symbols is an indicator and any other is a filter.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Collection, Iterator

import polars as pl

from kpi_lake.conform import Conformed, empty_quarantine
from kpi_lake.conform.bronze_rows import (
    PROBLEM_COLUMN,
    PROBLEM_REASON,
    PROBLEM_SCHEMA,
    PROBLEM_VALUE,
    ROW_ID,
    Check,
    cut_short_issue,
    file_stem,
    filled_columns,
    find_problems,
    has_text,
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
from kpi_lake.raw_files import (
    DECIMAL_MARK,
    EXTRA_FIELDS,
    PARSE_ISSUE,
    SOURCE_FILE,
    SOURCE_HASH,
    SOURCE_ROW,
    normalise_column_names,
)
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


#: Bronze rows conformed at a time. Memory is bounded by this, not by the file: the whole sync of a 2-million-row
#: school-level EES file peaks at 1.8 GB and of a 5-million-row one at 1.9 GB (docs/BENCHMARKS.md), each slice
#: written before the next is read.
ROWS_PER_BATCH = 100_000


def conform_education(
    ees_data: pl.LazyFrame | None = None, ees_metadata: pl.LazyFrame | None = None
) -> Conformed:
    """Every indicator cell of every EES file as a row: period, geography, filters (JSON), value, unit.

    The whole table in memory, sorted: for tests and small landings. The silver asset streams the same rows
    with :func:`stream_education`.
    """
    parts: list[pl.DataFrame] = []
    quarantined = stream_education(ees_data, ees_metadata, parts.append)
    if not parts:
        return Conformed(pl.DataFrame(schema=EDUCATION_SCHEMA), quarantined)
    rows = pl.concat(parts).sort(
        "publication", "time_period", "geographic_level", "geography_code", "filters", "indicator"
    )
    return Conformed(rows, quarantined)


def education_publications(
    ees_data: pl.LazyFrame | None, ees_metadata: pl.LazyFrame | None = None
) -> dict[str, str]:
    """Each publication (file stem) with a digest of the files it is conformed from (data and .meta.csv
    files, by name and content hash): a publication whose digest is unchanged has the same silver rows."""
    parts = []
    for frame in (ees_data, ees_metadata):
        if frame is None:
            continue
        names = frame.collect_schema().names()
        content = pl.col(SOURCE_HASH) if SOURCE_HASH in names else pl.lit("")
        parts.append(frame.select(pl.col(SOURCE_FILE), content.cast(pl.String).alias("_hash")).unique())
    if not parts:
        return {}
    files = (
        pl.concat(parts)
        .unique()
        .with_columns(file_stem().alias("_publication"))
        .sort("_publication", SOURCE_FILE, "_hash")
        .collect()
    )
    return {
        publication: hashlib.sha256(
            "\n".join(f"{f}\t{h}" for f, h in zip(group[SOURCE_FILE], group["_hash"], strict=True)).encode()
        ).hexdigest()[:16]
        for (publication,), group in files.group_by("_publication", maintain_order=True)
    }


def stream_education(
    ees_data: pl.LazyFrame | None,
    ees_metadata: pl.LazyFrame | None,
    sink: Callable[[pl.DataFrame], None],
    *,
    publications: Collection[str] | None = None,
    rows_per_batch: int = ROWS_PER_BATCH,
) -> pl.DataFrame:
    """Conform EES files slice by slice: each slice's rows (typed, ``EDUCATION_SCHEMA``) go to ``sink`` as
    they are made, and the quarantine rows (file, row, column, reason) are returned at the end.

    The facts that need a whole file are computed first, by streaming aggregates that never hold the file:
    which columns each file fills, whether its last row was cut short, which columns are indicators (mostly
    numbers, or the .meta.csv says so), and which rows share a key (period, geography, filters). Only the
    cells of rows sharing a key are held back to the end, to keep the first of each key (by file and row).
    ``publications`` limits the work to those publications (file stems).
    """
    if ees_data is None:
        return empty_quarantine()
    schema = ees_data.collect_schema()
    data = [c for c in schema.names() if not c.startswith("_")]
    lineage = {**_LINEAGE, DECIMAL_MARK: pl.String()}
    base = (
        ees_data.select(
            [pl.col(c).cast(pl.String) for c in data]
            + [(pl.col(c) if c in schema else pl.lit(None)).cast(t).alias(c) for c, t in lineage.items()]
        )
        .filter(pl.any_horizontal(has_text(c) for c in data) if data else pl.lit(True))
        .with_columns(file_stem().alias("_publication"))
    )
    if publications is not None:
        base = base.filter(pl.col("_publication").is_in(list(publications)))

    facts = _file_facts(base, data)
    if facts.height == 0:
        return empty_quarantine()
    filled = {
        row[SOURCE_FILE]: {c for c in data if row[f"_filled_{c}"] > 0} for row in facts.iter_rows(named=True)
    }
    require_in_files(
        filled, [("time_period",), ("time_identifier",), ("geographic_level",)], what=str(EES_DATA)
    )
    base = _flag_cut_short(base, facts, data)
    checks = _row_checks(data)
    problem = pl.any_horizontal(check.failed.fill_null(False) for check in checks)
    value_columns = [c for c in data if c not in STANDARD_COLUMNS]
    kinds = _column_kinds(base.filter(~problem), value_columns, _metadata(ees_metadata))
    filters = _filters_json(kinds)
    row_key = pl.struct("_publication", *_row_key_parts(data), filters).hash(seed=_KEY_SEED).alias("_row_key")
    shared = (
        base.filter(~problem)
        .select(row_key)
        .group_by("_row_key")
        .len()
        .filter(pl.col("len") > 1)
        .select("_row_key")
        .collect()
    )["_row_key"]

    indicator_kinds = kinds.filter(pl.col("_kind") == "indicator")
    quarantined: list[pl.DataFrame] = []
    contested: list[pl.DataFrame] = []
    contested_bronze: list[pl.DataFrame] = []
    next_row_id = 0
    for selection in _slices(facts, rows_per_batch):
        chunk = base.filter(selection).collect().with_row_index(ROW_ID, offset=next_row_id)
        next_row_id += chunk.height
        row_problems = find_problems(chunk, checks)
        good = chunk.join(row_problems, on=ROW_ID, how="anti").with_columns(filters, row_key)
        values, cell_problems = _cells(good, indicator_kinds, value_columns)
        quarantined.append(
            quarantine_problems(
                chunk.drop("_publication"),
                [row_problems, cell_problems],
                source_table=EES_DATA.path,
                filled=filled,
            )
        )
        held = pl.col("_row_key").is_in(shared.implode())
        if shared.len() and values.height:
            contested.append(values.filter(held))
            contested_bronze.append(chunk.join(good.filter(held).select(ROW_ID), on=ROW_ID, how="semi"))
            values = values.filter(~held)
        if values.height:
            sink(_finished(values))
    if contested:
        values, duplicates = keep_first(
            pl.concat(contested),
            list(EDUCATION_KEY),
            order=[SOURCE_FILE, SOURCE_ROW],
            what="publication, period, geography, filters and indicator",
            column=pl.col("indicator"),
        )
        if values.height:
            sink(_finished(values))
        quarantined.append(
            quarantine_problems(
                pl.concat(contested_bronze).drop("_publication"),
                [duplicates],
                source_table=EES_DATA.path,
                filled=filled,
            )
        )
    found = [q for q in quarantined if q.height]
    if not found:
        return empty_quarantine()
    return pl.concat(found, how="vertical_relaxed").sort(
        "source_file", "source_row", "column", nulls_last=True
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


def _row_checks(columns: list[str]) -> list[Check]:
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
            _geography("code", columns).is_null(),
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


_KEY_SEED = 20261126
_LINEAGE: dict[str, pl.DataType] = {
    SOURCE_FILE: pl.String(),
    SOURCE_ROW: pl.Int64(),
    PARSE_ISSUE: pl.String(),
    EXTRA_FIELDS: pl.String(),
    DECIMAL_MARK: pl.String(),
}


def _row_key_parts(columns: list[str]) -> list[pl.Expr]:
    """The row's part of the table's key besides publication and filters: period and place."""
    return [
        clean_text("time_period").alias("time_period"),
        clean_text("time_identifier").alias("time_identifier"),
        clean_text("geographic_level").alias("geographic_level"),
        _geography("code", columns).alias("geography_code"),
    ]


def _file_facts(base: pl.LazyFrame, data: list[str]) -> pl.DataFrame:
    """Per file, in one streaming pass: its rows, its last row, and how many rows fill each column."""
    return (
        base.group_by(SOURCE_FILE)
        .agg(
            pl.len().alias("_rows"),
            pl.col(SOURCE_ROW).min().alias("_first_row"),
            pl.col(SOURCE_ROW).max().alias("_last_row"),
            *(has_text(c).sum().alias(f"_filled_{c}") for c in data),
        )
        .collect(engine="streaming")
    )


def _slices(facts: pl.DataFrame, rows: int) -> Iterator[pl.Expr]:
    """Filters that cut the bronze rows into slices of about ``rows``: small files together, a large file by
    ranges of its rows (each slice is read on its own, so only one is in memory at a time)."""
    group: list[str] = []
    held = 0
    for file, count, first, last in (
        facts.sort(SOURCE_FILE).select(SOURCE_FILE, "_rows", "_first_row", "_last_row").iter_rows()
    ):
        if count <= rows:
            group.append(file)
            held += count
            if held >= rows:
                yield pl.col(SOURCE_FILE).is_in(group)
                group, held = [], 0
            continue
        for start in range(first, last + 1, rows):
            yield (pl.col(SOURCE_FILE) == file) & pl.col(SOURCE_ROW).is_between(start, start + rows - 1)
    if group:
        yield pl.col(SOURCE_FILE).is_in(group)


def _flag_cut_short(base: pl.LazyFrame, facts: pl.DataFrame, data: list[str]) -> pl.LazyFrame:
    """Flag (in ``_parse_issue``) a file's last row that leaves empty columns every other row fills.

    The reader already flags a last row with too few fields (a cut mid-field); a cut right after a
    delimiter leaves the field count whole and only shows as cells missing where every other row has one.
    It needs at least ``CUT_SHORT_EVIDENCE`` other rows: in a smaller file a blank last cell is as likely
    to be meant.
    """
    if not data:
        return base
    last_rows = base.join(
        facts.lazy(), left_on=[SOURCE_FILE, SOURCE_ROW], right_on=[SOURCE_FILE, "_last_row"]
    )
    cut = (
        last_rows.select(SOURCE_FILE, SOURCE_ROW, cut_short_issue(data).alias("_cut_short"))
        .filter(pl.col("_cut_short").is_not_null())
        .collect()
    )
    if cut.height == 0:
        return base
    return (
        base.join(cut.lazy(), on=[SOURCE_FILE, SOURCE_ROW], how="left")
        .with_columns(pl.coalesce(PARSE_ISSUE, "_cut_short").alias(PARSE_ISSUE))
        .drop("_cut_short")
    )


def _column_kinds(rows: pl.LazyFrame, value_columns: list[str], metadata: pl.DataFrame) -> pl.DataFrame:
    """Per file and column: indicator or filter, and its label and unit from the meta file when there is one.

    Counted in one streaming pass over the file's good rows: a column whose filled cells are mostly numbers
    (or suppression and missing-value symbols) is an indicator, unless the meta file says otherwise.
    """
    schema = {SOURCE_FILE: pl.String, "indicator": pl.String, "_kind": pl.String, "label": pl.String,
              "unit": pl.String}  # fmt: skip
    if not value_columns:
        return pl.DataFrame(schema=schema)
    counts = []
    for column in value_columns:
        text = clean_text(column)
        lowered = text.str.to_lowercase()
        number_like = (
            parse_number(text).is_not_null()
            | lowered.is_in(list(SUPPRESSION_CODES))
            | lowered.is_in(list(MISSING_TEXT))
        )
        counts += [
            text.is_not_null().sum().alias(f"_cells_{column}"),
            (text.is_not_null() & number_like).sum().alias(f"_numbers_{column}"),
        ]
    per_file = rows.group_by(SOURCE_FILE, "_publication").agg(counts).collect(engine="streaming")
    long = pl.concat(
        [
            per_file.select(
                SOURCE_FILE,
                "_publication",
                pl.lit(column).alias("indicator"),
                pl.col(f"_cells_{column}").alias("_cells"),
                pl.col(f"_numbers_{column}").alias("_numbers"),
            )
            for column in value_columns
        ]
    ).filter(pl.col("_cells") > 0)
    return (
        long.join(metadata, on=["_publication", "indicator"], how="left")
        .select(
            SOURCE_FILE,
            "indicator",
            pl.when(pl.col("_meta_kind").is_in(["indicator", "filter"]))
            .then(pl.col("_meta_kind"))
            .when(pl.col("_numbers") * 2 > pl.col("_cells"))
            .then(pl.lit("indicator"))
            .otherwise(pl.lit("filter"))
            .alias("_kind"),
            "label",
            "unit",
        )
        .cast(schema)
    )


def _filters_json(kinds: pl.DataFrame) -> pl.Expr:
    """Each row's filter columns and values as one JSON object, keys sorted: '{"school_type":"Special"}'.

    A JSON string rather than a struct: every publication has its own filters, so a struct would be the
    union of all of them (mostly null, changing shape with each new file), while one text column stays the
    same type, works in the table's key and reads in Power BI and SQL with their JSON functions. Built per
    row from the filter columns (no unpivot), so it streams.
    """
    filter_files: dict[str, list[str]] = {}
    indicator_somewhere: set[str] = set()
    for file, column, kind in kinds.select(SOURCE_FILE, "indicator", "_kind").iter_rows():
        if kind == "filter":
            filter_files.setdefault(column, []).append(file)
        else:
            indicator_somewhere.add(column)
    pairs = []
    for column in sorted(filter_files):
        text = clean_text(column)
        # json_encode of a one-field struct escapes the value exactly as JSON wants; keep just the value.
        escaped = pl.struct(v=text).struct.json_encode().str.strip_prefix('{"v":').str.strip_suffix("}")
        present = text.is_not_null()
        if column in indicator_somewhere:  # a filter in some files only: the others' cells are indicators
            present = present & pl.col(SOURCE_FILE).is_in(sorted(filter_files[column]))
        pairs.append(pl.when(present).then(pl.format('"{}":{}', pl.lit(column), escaped)))
    if not pairs:
        return pl.lit("{}").alias("filters")
    return pl.concat_str(
        [pl.lit("{"), pl.concat_str(pairs, separator=",", ignore_nulls=True), pl.lit("}")]
    ).alias("filters")


def _cells(
    good: pl.DataFrame, indicators: pl.DataFrame, value_columns: list[str]
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The indicator cells of a slice's good rows as long rows (with their row's period, place and filters),
    and the cells that are no value (not a number, NaN, a percentage outside 0-100, a negative count)."""
    wanted = set(indicators["indicator"])
    on = [c for c in value_columns if c in wanted]
    if good.height == 0 or not on:
        return pl.DataFrame(), pl.DataFrame(schema=PROBLEM_SCHEMA)
    cells = (
        good.lazy()
        .unpivot(
            index=[ROW_ID, SOURCE_FILE, "_publication", DECIMAL_MARK],
            on=on,
            variable_name="indicator",
            value_name="_text",
        )
        .with_columns(clean_text("_text").alias("_text"))
        .filter(pl.col("_text").is_not_null())  # a file's cells only: other files' columns are null here
        .join(indicators.lazy(), on=[SOURCE_FILE, "indicator"], how="inner")
        .collect()
    )
    mark = pl.col(DECIMAL_MARK)
    bad_cells = cells.filter(unparseable_number("_text", mark) | _out_of_range(mark)).with_columns(
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
        cells.join(bad_cells.select(ROW_ID, "indicator"), on=[ROW_ID, "indicator"], how="anti")
        .join(good.select(ROW_ID, "filters", "_row_key"), on=ROW_ID, how="left")
        .join(_typed_rows(good), on=ROW_ID, how="inner")
        .with_columns(
            parse_number("_text", mark).alias("value"),
            suppression_code("_text").alias("suppression_code"),
            pl.col("_publication").alias("publication"),
        )
    )
    return values, cell_problems


def _finished(values: pl.DataFrame) -> pl.DataFrame:
    return typed_frame(
        values.rename({SOURCE_FILE: "source_file", SOURCE_ROW: "source_row"}), EDUCATION_SCHEMA
    )
