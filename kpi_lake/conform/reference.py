"""Silver reference data: geographies (wards, councils, upper tiers, regions), comparator groups and themes.

Also home to the few bronze helpers every open-data conformer shares: read a bronze table once with numbered
rows, find which columns each file fills, flag bad rows, quarantine them with their raw record, and keep
the first of duplicate keys.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath

import polars as pl

from kpi_lake.conform import Conformed, ConformError, empty_quarantine, quarantine
from kpi_lake.conform.parsing import clean_text
from kpi_lake.raw_files import EXTRA_FIELDS, PARSE_ISSUE, SOURCE_FILE, SOURCE_ROW
from kpi_lake.tables import TableRef

# ---- shared bronze helpers ---------------------------------------------------------------------------------

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


_CUT_SHORT_EVIDENCE = 5


def _flag_cut_short_last_rows(bronze: pl.DataFrame, data: list[str]) -> pl.DataFrame:
    """Flag (in ``_parse_issue``) a file's last row that leaves empty columns every other row fills.

    The reader already flags a last row with too few fields (a cut mid-field); a cut right after a
    delimiter leaves the field count whole and only shows as cells missing where every other row has one.
    It needs at least ``_CUT_SHORT_EVIDENCE`` other rows: in a smaller file a blank last cell is as likely
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
    empty = [
        pl.when(
            ~has_text(c)
            & (pl.col(f"_filled_{c}") == pl.col("_rows") - 1)
            & (pl.col("_rows") > _CUT_SHORT_EVIDENCE)
        ).then(pl.lit(c))
        for c in data
    ]
    cut = last_rows.select(ROW_ID, pl.concat_list(empty).list.drop_nulls().list.join(", ").alias("_empty"))
    cut = cut.filter(pl.col("_empty") != "").select(
        ROW_ID,
        pl.format(
            "the file's last row ends early ({} empty, though every other row fills them): the file looks "
            "truncated",
            "_empty",
        ).alias("_cut_short"),
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
) -> pl.DataFrame:
    """Quarantine rows: each problem (row id, column, value, reason) with its bronze row as the raw record."""
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


# ---- geographies -------------------------------------------------------------------------------------------

GEOGRAPHIES = TableRef("silver", "reference", "geographies")
WARD_LOOKUP = TableRef("bronze", "reference", "ward_lookup")
LA_LOOKUP = TableRef("bronze", "reference", "la_lookup")

GEOGRAPHY_SCHEMA: dict[str, pl.DataType] = {
    "geography_code": pl.String(),
    "geography_name": pl.String(),
    "geography_level": pl.String(),
    "parent_code": pl.String(),
    "parent_level": pl.String(),
    "valid_from_year": pl.Int32(),
    "source_file": pl.String(),
    "source_row": pl.Int64(),
}

#: ONS lookup column prefixes (``WD19CD``, ``LTLA23NM`` …) and the level they name, lowest level first.
#: LAD and LTLA are the same tier (districts and unitaries); CTY counties are upper tier.
_LEVEL_PREFIXES: tuple[tuple[str, str], ...] = (
    ("wd", "ward"),
    ("lad", "local_authority"),
    ("ltla", "local_authority"),
    ("utla", "upper_tier"),
    ("cty", "upper_tier"),
    ("rgn", "region"),
    ("ctry", "country"),
)
_LEVEL_ORDER = {"ward": 0, "local_authority": 1, "upper_tier": 2, "region": 3, "country": 4}
_CODE_COLUMN = re.compile(r"^(wd|lad|ltla|utla|cty|rgn|ctry)(\d{2})cd$")


@dataclass(frozen=True)
class _LookupLevel:
    prefix: str  # e.g. "wd"
    level: str  # e.g. "ward"
    code: str  # e.g. "wd19cd"
    name: str | None  # e.g. "wd19nm"
    year: int  # e.g. 2019


def _lookup_levels(columns: set[str]) -> list[_LookupLevel]:
    """The geography levels a lookup file holds, from its year-coded headers, lowest level first.

    One column set per level: a file with both LAD and LTLA columns uses the first in prefix order, and
    with two years of one prefix (WD19CD and WD20CD) the newer.
    """
    levels: dict[str, _LookupLevel] = {}
    for prefix, level in _LEVEL_PREFIXES:
        years = sorted(
            int(m.group(2)) for c in columns if (m := _CODE_COLUMN.match(c)) and m.group(1) == prefix
        )
        if years and level not in levels:
            yy = f"{years[-1]:02d}"
            name = f"{prefix}{yy}nm"
            levels[level] = _LookupLevel(
                prefix, level, f"{prefix}{yy}cd", name if name in columns else None, 2000 + years[-1]
            )
    return sorted(levels.values(), key=lambda lv: _LEVEL_ORDER[lv.level])


def conform_geographies(
    ward_lookup: pl.LazyFrame | None = None, la_lookup: pl.LazyFrame | None = None
) -> Conformed:
    """One row per geography code from the ONS ward→LAD and LTLA→UTLA lookups, with its parent.

    Each lookup row names a geography at several levels (a ward, its district, maybe its region); every
    level becomes a row. A code named by several lookups keeps the newest lookup's name (the highest code
    year, e.g. LTLA23 over LAD19), and at equal years the lowest level (a unitary is its own upper tier, so
    it is a local_authority). Its parent is the next level up with a different code, from the newest
    lookup that names one.
    """
    parts: list[pl.DataFrame] = []
    quarantines: list[pl.DataFrame] = []
    for frame, ref, subject, parent_needed in (
        (ward_lookup, WARD_LOOKUP, "ward", ("lad", "ltla")),
        (la_lookup, LA_LOOKUP, "local_authority", ("utla", "cty")),
    ):
        rows, held = _lookup_rows(frame, ref, subject, parent_needed)
        parts.append(rows)
        quarantines.append(held)
    found = [p for p in parts if p.height]
    quarantined = pl.concat(quarantines, how="vertical_relaxed")
    if not found:
        return Conformed(pl.DataFrame(schema=GEOGRAPHY_SCHEMA), quarantined)
    candidates = pl.concat(found, how="vertical_relaxed").sort(
        ["geography_code", "valid_from_year", "_level_order", "_subject", "source_file", "source_row"],
        descending=[False, True, False, True, False, False],
    )
    # Name, level and year from the newest lookup; the parent from the newest lookup that names one (a
    # 2024 ward lookup lists districts without their county, the 2023 district lookup has it).
    named_parent = pl.col("parent_code").is_not_null()
    best = (
        candidates.group_by("geography_code", maintain_order=True)
        .agg(
            pl.exclude("parent_code", "parent_level").first(),
            pl.col("parent_code").filter(named_parent).first(),
            pl.col("parent_level").filter(named_parent).first(),
        )
        .sort("_level_order", "geography_code", descending=[True, False])
    )
    return Conformed(typed_frame(best, GEOGRAPHY_SCHEMA), quarantined)


def _lookup_rows(
    frame: pl.LazyFrame | None, ref: TableRef, subject: str, parent_prefixes: tuple[str, ...]
) -> tuple[pl.DataFrame, pl.DataFrame]:
    bronze = load_bronze(frame)
    filled = filled_columns(bronze)
    levels_by_file = {file: _lookup_levels(columns) for file, columns in filled.items()}
    subject_prefixes = {"ward": ("wd",), "local_authority": ("ltla", "lad")}[subject]
    lacking = []
    for file, levels in sorted(levels_by_file.items()):
        prefixes = {lv.prefix for lv in levels}
        for wanted in (subject_prefixes, parent_prefixes):
            if not prefixes & set(wanted):
                lacking.append(f"{file} has no {' or '.join(p.upper() + 'yyCD' for p in wanted)} column")
    if lacking:
        raise ConformError(
            f"{ref}: {'; '.join(lacking)} (ONS lookups name columns by level and year, e.g. WD19CD, LAD19CD)"
        )
    problems = [find_problems(bronze, [malformed_row()])]
    good = bronze.join(problems[0], on=ROW_ID, how="anti")

    frames = []
    for file, levels in levels_by_file.items():
        rows = good.lazy().filter(pl.col(SOURCE_FILE) == file)
        for position, level in enumerate(levels):
            # The parent is the next level up whose code differs (a unitary is its own upper tier).
            parent_code: pl.Expr = pl.lit(None, pl.String)
            parent_level: pl.Expr = pl.lit(None, pl.String)
            for upper in reversed(levels[position + 1 :]):
                differs = clean_text(upper.code).is_not_null() & (
                    clean_text(upper.code) != clean_text(level.code)
                )
                parent_code = pl.when(differs).then(clean_text(upper.code)).otherwise(parent_code)
                parent_level = pl.when(differs).then(pl.lit(upper.level)).otherwise(parent_level)
            frames.append(
                rows.select(
                    ROW_ID,
                    SOURCE_FILE,
                    SOURCE_ROW,
                    pl.lit(level.code).alias("_code_column"),
                    clean_text(level.code).alias("geography_code"),
                    text_or_null(level.name).alias("geography_name"),
                    pl.lit(level.level).alias("geography_level"),
                    parent_code.alias("parent_code"),
                    parent_level.alias("parent_level"),
                    pl.lit(level.year, pl.Int32).alias("valid_from_year"),
                    pl.lit(_LEVEL_ORDER[level.level]).alias("_level_order"),
                    pl.lit(level.level == subject).alias("_subject"),
                ).filter(pl.col("geography_code").is_not_null())
            )
    if not frames:
        return pl.DataFrame(), quarantine_problems(bronze, problems, source_table=ref.path, filled=filled)
    named = pl.concat(frames, how="vertical_relaxed").collect()

    bad_code = named.filter(~pl.col("geography_code").str.contains(GSS_CODE))
    problems.append(
        bad_code.select(
            ROW_ID,
            pl.col("_code_column").alias(PROBLEM_COLUMN),
            pl.col("geography_code").alias(PROBLEM_VALUE),
            pl.lit("not an ONS geography code (a letter and eight digits)").alias(PROBLEM_REASON),
        )
    )
    # A row with a bad code at any level is held back whole: its other levels would lose their parent.
    named = named.join(bad_code.select(ROW_ID).unique(), on=ROW_ID, how="anti")
    # Each ward (or district) is listed once per lookup; its parents repeat on every child row, by design.
    subject_rows, parent_rows = named.filter(pl.col("_subject")), named.filter(~pl.col("_subject"))
    subject_rows, duplicates = keep_first(
        subject_rows,
        ["geography_code", SOURCE_FILE],
        order=[SOURCE_FILE, SOURCE_ROW],
        what=f"{subject} code in one lookup",
        column=pl.col("_code_column"),
    )
    problems.append(duplicates)
    parent_rows = parent_rows.sort(SOURCE_FILE, SOURCE_ROW).unique(
        ["geography_code", SOURCE_FILE], keep="first", maintain_order=True
    )
    rows = pl.concat([subject_rows, parent_rows])
    rows = rows.rename({SOURCE_FILE: "source_file", SOURCE_ROW: "source_row"})
    return rows, quarantine_problems(bronze, problems, source_table=ref.path, filled=filled)


# ---- comparator groups -------------------------------------------------------------------------------------

COMPARATOR_GROUPS = TableRef("silver", "reference", "comparator_groups")
COMPARATOR_COUNCILS = TableRef("bronze", "reference", "comparator_councils")

COMPARATOR_SCHEMA: dict[str, pl.DataType] = {
    "group_name": pl.String(),
    "own_geography_code": pl.String(),
    "comparator_code": pl.String(),
    "comparator_name": pl.String(),
    "rank": pl.Int32(),
    "source_file": pl.String(),
    "source_row": pl.Int64(),
}

_COMPARATOR_CODE = (
    "comparator_code",
    "area_code",
    "geography_code",
    "local_authority_code",
    "la_code",
    "code",
)
_COMPARATOR_NAME = (
    "comparator_name",
    "area_name",
    "geography_name",
    "local_authority_name",
    "la_name",
    "name",
)
_OWN_CODE = (
    "own_geography_code",
    "own_area_code",
    "comparator_of",
    "own_code",
    "own_council_code",
    "council_code",
    "for_area_code",
)
_GROUP_NAME = ("group_name", "comparator_group", "group")
_RANK = ("rank", "nearest_neighbour_rank", "neighbour_rank", "position")


def comparator_group_name(source_file: str) -> str:
    """The group a comparator file describes when it has no group column: DfE statistical neighbours if
    its name says so, else CIPFA nearest neighbours (what the bronze comparator table is for)."""
    stem = PurePosixPath(source_file).stem.lower()
    if "statistical" in stem or "stat_neighbour" in stem:
        return "DfE statistical neighbours"
    return "CIPFA nearest neighbours"


def conform_comparator_groups(comparator_councils: pl.LazyFrame | None = None) -> Conformed:
    """The council's comparator groups: one row per group, own council and comparator, in the file's order.

    Files carry the comparator's code and name, and sometimes the group, the own council's code and a rank.
    """
    bronze = load_bronze(comparator_councils)
    filled = filled_columns(bronze)
    require_in_files(filled, [_COMPARATOR_CODE], what=str(COMPARATOR_COUNCILS))
    frames = []
    problems = []
    for file, columns in filled.items():
        code, rank = first_present(columns, _COMPARATOR_CODE), first_present(columns, _RANK)
        group = first_present(columns, _GROUP_NAME)
        checks = [
            malformed_row(),
            Check(clean_text(code).is_null(), code, "no comparator code"),
            Check(
                ~clean_text(code).str.contains(GSS_CODE),
                code,
                "not an ONS geography code (a letter and eight digits)",
            ),
        ]
        if rank:
            checks.append(
                Check(
                    clean_text(rank).is_not_null() & ~clean_text(rank).str.contains(r"^\d+$"),
                    rank,
                    "rank is not a whole number",
                )
            )
        rows = bronze.filter(pl.col(SOURCE_FILE) == file)
        problems.append(find_problems(rows, checks))
        frames.append(
            rows.join(problems[-1], on=ROW_ID, how="anti").select(
                ROW_ID,
                SOURCE_FILE,
                SOURCE_ROW,
                (clean_text(group) if group else pl.lit(comparator_group_name(file))).alias("group_name"),
                text_or_null(first_present(columns, _OWN_CODE)).alias("own_geography_code"),
                clean_text(code).alias("comparator_code"),
                text_or_null(first_present(columns, _COMPARATOR_NAME)).alias("comparator_name"),
                (clean_text(rank).cast(pl.Int32) if rank else pl.lit(None, pl.Int32)).alias("rank"),
            )
        )
    rows = pl.concat(frames, how="vertical_relaxed") if frames else pl.DataFrame()
    if rows.height:
        rows, duplicates = keep_first(
            rows,
            ["group_name", "own_geography_code", "comparator_code"],
            order=[SOURCE_FILE, SOURCE_ROW],
            what="comparator in the same group",
            column=pl.lit("comparator_code"),
        )
        problems.append(duplicates)
        rows = rows.rename({SOURCE_FILE: "source_file", SOURCE_ROW: "source_row"})
    return Conformed(
        typed_frame(rows, COMPARATOR_SCHEMA),
        quarantine_problems(bronze, problems, source_table=COMPARATOR_COUNCILS.path, filled=filled),
    )


# ---- corporate themes --------------------------------------------------------------------------------------

THEMES = TableRef("silver", "reference", "themes")
CORPORATE_THEMES = TableRef("bronze", "reference", "corporate_themes")

THEME_SCHEMA: dict[str, pl.DataType] = {
    "theme_code": pl.String(),
    "theme_name": pl.String(),
    "owning_director": pl.String(),
    "director_title": pl.String(),
    "source_file": pl.String(),
    "source_row": pl.Int64(),
}

_THEME_CODE = ("theme_code", "theme_id", "code")
_THEME_NAME = ("theme_name", "theme", "name")
_OWNER = ("owning_director", "theme_owner", "director", "owner")
_DIRECTOR_TITLE = ("director_title", "owning_director_title", "job_title")


def conform_themes(corporate_themes: pl.LazyFrame | None = None) -> Conformed:
    """The corporate strategy's themes, each with exactly one owning director.

    A theme listed with no director, or with two different directors, is quarantined whole (every row of
    it): accountability is the point of the table, so a guess would be worse than a gap.
    """
    bronze = load_bronze(corporate_themes)
    filled = filled_columns(bronze)
    require_in_files(filled, [_THEME_CODE, _THEME_NAME, _OWNER], what=str(CORPORATE_THEMES))
    frames, problems = [], []
    for file, columns in filled.items():
        code = first_present(columns, _THEME_CODE)
        rows = bronze.filter(pl.col(SOURCE_FILE) == file)
        problems.append(
            find_problems(rows, [malformed_row(), Check(clean_text(code).is_null(), code, "no theme code")])
        )
        frames.append(
            rows.join(problems[-1], on=ROW_ID, how="anti").select(
                ROW_ID,
                SOURCE_FILE,
                SOURCE_ROW,
                clean_text(code).alias("theme_code"),
                text_or_null(first_present(columns, _THEME_NAME)).alias("theme_name"),
                text_or_null(first_present(columns, _OWNER)).alias("owning_director"),
                text_or_null(first_present(columns, _DIRECTOR_TITLE)).alias("director_title"),
                pl.lit(first_present(columns, _OWNER)).alias("_owner_column"),
            )
        )
    rows = pl.concat(frames, how="vertical_relaxed") if frames else pl.DataFrame()
    if rows.height:
        owners = pl.col("owning_director").drop_nulls().unique().sort()
        rows = rows.with_columns(
            _owners=owners.str.join("; ").over("theme_code"),
            _owner_count=owners.len().over("theme_code"),
        )
        unowned = rows.filter(pl.col("_owner_count") != 1)
        problems.append(
            unowned.select(
                ROW_ID,
                pl.col("_owner_column").alias(PROBLEM_COLUMN),
                pl.col("owning_director").alias(PROBLEM_VALUE),
                pl.when(pl.col("_owner_count") == 0)
                .then(pl.format("theme {} has no owning director", "theme_code"))
                .otherwise(
                    pl.format(
                        "theme {} has {} owning directors ({}); exactly one is expected",
                        "theme_code",
                        "_owner_count",
                        "_owners",
                    )
                )
                .alias(PROBLEM_REASON),
            )
        )
        # Rows repeating a theme with the same owner agree; the first is kept (its name, if names differ).
        rows = (
            rows.filter(pl.col("_owner_count") == 1)
            .sort(SOURCE_FILE, SOURCE_ROW)
            .with_columns(
                pl.col("owning_director").drop_nulls().first().over("theme_code"),
                pl.col("theme_name").drop_nulls().first().over("theme_code"),
                pl.col("director_title").drop_nulls().first().over("theme_code"),
            )
            .unique("theme_code", keep="first", maintain_order=True)
            .rename({SOURCE_FILE: "source_file", SOURCE_ROW: "source_row"})
            .sort("theme_code")
        )
    return Conformed(
        typed_frame(rows, THEME_SCHEMA),
        quarantine_problems(bronze, problems, source_table=CORPORATE_THEMES.path, filled=filled),
    )
