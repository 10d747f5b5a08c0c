"""Silver reference data: geographies (wards, councils, upper tiers, regions), comparator groups and themes."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePosixPath

import polars as pl

from kpi_lake.conform import Conformed, ConformError
from kpi_lake.conform.bronze_rows import (
    GSS_CODE,
    PROBLEM_COLUMN,
    PROBLEM_REASON,
    PROBLEM_VALUE,
    ROW_ID,
    Check,
    filled_columns,
    find_problems,
    first_present,
    keep_first,
    load_bronze,
    malformed_row,
    quarantine_problems,
    require_in_files,
    text_or_null,
    typed_frame,
)
from kpi_lake.conform.parsing import clean_text
from kpi_lake.raw_files import SOURCE_FILE, SOURCE_ROW
from kpi_lake.tables import TableRef

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
