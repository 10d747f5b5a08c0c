"""Silver emissions: every DESNZ/BEIS local authority emissions release in one long shape.

Three layouts arrive: the current long GHG file (one row per authority, year, sector, sub-sector and gas),
the older CO2-only long file (``LA CO2 Sector``, ``Territorial emissions (kt CO2)``) and the legacy wide
tables (one column per sub-sector, plus sector totals, a grand total, population and area). All become rows
of (authority, year, sector, sub-sector, gas) named in the current release's words, and where releases
overlap only the newest counts, so a year's total is never the sum of two releases.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import polars as pl

from kpi_lake.conform import Conformed
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
    require_in_files,
    text_or_null,
    typed_frame,
)
from kpi_lake.conform.parsing import clean_text, parse_number, unparseable_number
from kpi_lake.raw_files import SOURCE_FILE, SOURCE_ROW
from kpi_lake.tables import TableRef

EMISSIONS = TableRef("silver", "open_data", "emissions")
GHG_LONG = TableRef("bronze", "emissions", "ghg_long")
CO2_WIDE = TableRef("bronze", "emissions", "co2_wide")

EMISSIONS_SCHEMA: dict[str, pl.DataType] = {
    "local_authority_code": pl.String(),
    "local_authority_name": pl.String(),
    "calendar_year": pl.Int32(),
    "sector": pl.String(),
    "sub_sector": pl.String(),
    "greenhouse_gas": pl.String(),
    "territorial_kt_co2e": pl.Float64(),
    "within_scope_kt_co2e": pl.Float64(),
    "population_thousands": pl.Float64(),
    "area_km2": pl.Float64(),
    "source_release": pl.String(),
    "source_file": pl.String(),
    "source_row": pl.Int64(),
}
EMISSIONS_KEY = ("local_authority_code", "calendar_year", "sector", "sub_sector", "greenhouse_gas")

LONG_GHG = "DESNZ long GHG"
LONG_CO2 = "BEIS long CO2"
WIDE_FULL = "BEIS wide CO2"
WIDE_SUBSET = "BEIS wide CO2 subset"
#: Newer layouts supersede older ones; within a layout, the release covering later years wins.
RELEASE_PRECEDENCE = {LONG_GHG: 4, LONG_CO2: 3, WIDE_FULL: 2, WIDE_SUBSET: 1}

# Long files: the current GHG names first, then the CO2-only release's.
_LA_CODE = ("local_authority_code",)
_LA_NAME = ("local_authority", "local_authority_name")
_YEAR = ("calendar_year",)
_SECTOR = ("la_ghg_sector", "la_co2_sector")
_SUB_SECTOR = ("la_ghg_sub_sector", "la_co2_sub_sector")
_TERRITORIAL = ("territorial_emissions_kt_co2e", "territorial_emissions_kt_co2")
_WITHIN_SCOPE = (
    "co2_emissions_within_the_scope_of_influence_of_las_kt_co2e",
    "co2_emissions_within_the_scope_of_influence_of_las_kt_co2",
)
_POPULATION = ("mid_year_population_thousands", "population_000s_mid_year_estimate", "population_thousands")
_AREA = ("area_km2",)
_REGION = ("region", "region_country")

# Wide tables: identifying columns, then the columns that are not emissions of one sub-sector.
_WIDE_CODE = ("code", "local_authority_code", "la_code", "lad14cd")
_WIDE_NAME = ("local_authority", "local_authority_name", "la_name", "lad14nm")
_WIDE_YEAR = ("year", "calendar_year")
_WIDE_IDENTIFIERS = {"region_country", "region", "country", "second_tier_authority", "notes", "name"}
_GRAND_TOTAL = ("grand_total", "total_for_all_sectors", "total_emissions")

#: DESNZ's sectors, in the words of its releases ("Industry and Commercial" is the 2005-17 CO2 tables' sector,
#: before Industry and Commercial were published apart). Sector names are matched whatever their case.
DESNZ_SECTORS = (
    "Industry",
    "Commercial",
    "Industry and Commercial",
    "Public Sector",
    "Domestic",
    "Transport",
    "LULUCF",
    "Agriculture",
    "Waste Management",
)
_SECTOR_SPELLINGS = {name.lower(): name for name in DESNZ_SECTORS} | {"waste": "Waste Management"}


def desnz_sector(sector: pl.Expr) -> pl.Expr:
    """A long file's sector in DESNZ's vocabulary whatever its case or padding ("Waste" and "Waste management"
    are "Waste Management"); a sector DESNZ never used keeps its name (and the quality suite flags it)."""
    text = clean_text(sector).str.replace_all(r"\s+", " ")
    return text.str.to_lowercase().replace_strict(_SECTOR_SPELLINGS, default=text, return_dtype=pl.String)


def _wide_key(column: str) -> str:
    """A wide header without its decorations: the 2005-17 tables' letter prefix ("A. Industry and Commercial
    Electricity"), a footnote mark or "[note 3]", and the "Net Emissions:" of LULUCF components."""
    key = re.sub(r"^[a-n]_(?=[a-z]{3})", "", column)
    key = re.sub(r"_(?:note_?)?\d$", "", key)
    return key.removeprefix("net_emissions_")


def _not_emissions(column: str) -> bool:
    """Population, per-capita, area and per-km² columns describe the authority, not a source of emissions."""
    return column.startswith(("population", "per_capita", "area", "emissions_per")) or "per_km2" in column


#: Wide sub-sector columns in the current long release's sector and sub-sector names (keys as ``_wide_key``
#: leaves them). "Agriculture" alone is a sub-sector of the CO2 tables' Industry (their Industry Total counts
#: it); the GHG tables publish an Agriculture sector of their own.
WIDE_SUB_SECTORS: dict[str, tuple[str, str]] = {
    "industry_electricity": ("Industry", "Industry Electricity"),
    "industry_gas": ("Industry", "Industry Gas"),
    "industry_other_fuels": ("Industry", "Industry 'Other'"),
    "industry_other": ("Industry", "Industry 'Other'"),
    "large_industrial_installations": ("Industry", "Large Industrial Installations"),
    "agriculture": ("Industry", "Agriculture"),
    "industry_and_commercial_electricity": ("Industry and Commercial", "Industry and Commercial Electricity"),
    "industry_and_commercial_gas": ("Industry and Commercial", "Industry and Commercial Gas"),
    "industrial_and_commercial_other_fuels": ("Industry and Commercial", "Industry and Commercial 'Other'"),
    "commercial_electricity": ("Commercial", "Commercial Electricity"),
    "commercial_gas": ("Commercial", "Commercial Gas"),
    "commercial_other_fuels": ("Commercial", "Commercial 'Other'"),
    "commercial_other": ("Commercial", "Commercial 'Other'"),
    "public_sector_electricity": ("Public Sector", "Public Sector Electricity"),
    "public_sector_gas": ("Public Sector", "Public Sector Gas"),
    "public_sector_other_fuels": ("Public Sector", "Public Sector 'Other'"),
    "public_sector_other": ("Public Sector", "Public Sector 'Other'"),
    "domestic_electricity": ("Domestic", "Domestic Electricity"),
    "domestic_gas": ("Domestic", "Domestic Gas"),
    "domestic_other_fuels": ("Domestic", "Domestic 'Other'"),
    "domestic_other": ("Domestic", "Domestic 'Other'"),
    "road_transport_a_roads": ("Transport", "Road Transport (A roads)"),
    "road_transport_motorways": ("Transport", "Road Transport (Motorways)"),
    "road_transport_minor_roads": ("Transport", "Road Transport (Minor roads)"),
    "diesel_railways": ("Transport", "Diesel Railways"),
    "railways": ("Transport", "Diesel Railways"),
    "transport_other": ("Transport", "Transport 'Other'"),
    "road_transport_other": ("Transport", "Transport 'Other'"),
    "forest_land": ("LULUCF", "Forest land"),
    "forestry": ("LULUCF", "Forest land"),
    "cropland": ("LULUCF", "Cropland"),
    "grassland": ("LULUCF", "Grassland"),
    "wetlands": ("LULUCF", "Wetlands"),
    "settlements": ("LULUCF", "Settlements"),
    "harvested_wood_products": ("LULUCF", "Harvested Wood Products"),
}
#: Sector totals by name (the grand total apart); any other column equal to the sum of its sector's other
#: columns is found by its numbers.
WIDE_SECTOR_TOTALS: dict[str, str] = {
    "industry_total": "Industry",
    "commercial_total": "Commercial",
    "industry_and_commercial_total": "Industry and Commercial",
    "public_sector_total": "Public Sector",
    "domestic_total": "Domestic",
    "transport_total": "Transport",
    "lulucf_net_emissions": "LULUCF",
    "lulucf_total": "LULUCF",
    "agriculture_total": "Agriculture",
    "waste_management_total": "Waste Management",
    "waste_total": "Waste Management",
}
#: What a sector total is called when it is the sector's only column, so one of its components.
_SECTOR_TOTAL_NAMES = {"lulucf_net_emissions": "LULUCF Net Emissions", "lulucf_total": "LULUCF Net Emissions"}
_SECTOR_WORDS = (
    ("public_sector", "Public Sector"),
    ("industry_and_commercial", "Industry and Commercial"),
    ("industrial_and_commercial", "Industry and Commercial"),
    ("industr", "Industry"),
    ("large_industrial", "Industry"),
    ("commercial", "Commercial"),
    ("domestic", "Domestic"),
    ("road_transport", "Transport"),
    ("transport", "Transport"),
    ("diesel", "Transport"),
    ("rail", "Transport"),
    ("lulucf", "LULUCF"),
    ("forest", "LULUCF"),
    ("agriculture", "Agriculture"),
    ("waste", "Waste Management"),
)
#: Sources the "subset" (within the scope of influence of local authorities) tables leave out; a wide file
#: with any of them holds territorial emissions.
_OUTSIDE_SCOPE = {"road_transport_motorways", "diesel_railways", "railways"}


def _wide_sub_sector(key: str, keys: set[str]) -> tuple[str | None, str]:
    """Sector and sub-sector of a wide column; a column the list does not know is named from its header,
    under the sector its name starts with (None: no DESNZ sector fits, its cells go to quarantine)."""
    if key == "agriculture" and "agriculture_total" in keys:
        return "Agriculture", "Agriculture"
    if key == "agriculture" and "industry_and_commercial_total" in keys:
        return "Industry and Commercial", "Agriculture"
    if key in WIDE_SUB_SECTORS:
        return WIDE_SUB_SECTORS[key]
    sector = next((name for prefix, name in _SECTOR_WORDS if key.startswith(prefix)), None)
    return sector, humanise(key).replace(" other", " 'Other'")


def current_sub_sector_name(sub_sector: pl.Expr) -> pl.Expr:
    """Older releases' sub-sector names in the current release's words: "Industry 'Other Fuels'" →
    "Industry 'Other'", "Transport Other" → "Transport 'Other'" (the GHG files also pad some with spaces)."""
    text = clean_text(sub_sector).str.replace_all(r"\s+", " ")
    return text.str.replace(r" 'Other Fuels'$", " 'Other'").str.replace(
        r"^Transport Other$", "Transport 'Other'"
    )


def _aggregate_row(name: str | None, region: str | None) -> pl.Expr:
    """Regional and national "… Total" rows sum the authorities' rows: keeping them would double count."""
    checks = [clean_text(c).str.contains(r"(?i)\btotal$") for c in (name, region) if c]
    return pl.any_horizontal(checks).fill_null(False) if checks else pl.lit(False)


def _number_checks(columns: dict[str, str | None]) -> list[Check]:
    return [
        Check(unparseable_number(column), column, f"{what} is not a number")
        for what, column in columns.items()
        if column
    ]


def _year_check(column: str) -> Check:
    return Check(
        ~clean_text(column).str.contains(r"^\d{4}$").fill_null(False), column, "calendar year is not a year"
    )


def _pseudo_authority_check(code: str, name: str | None) -> Check:
    """A row with neither a code nor a name belongs to nobody: held back."""
    missing = clean_text(code).is_null()
    if name:
        missing = missing & clean_text(name).is_null()
    return Check(missing, code, "no local authority code or name")


#: DESNZ's pseudo-authorities ("Unallocated consumption", "Large elec users (high voltage lines) unknown
#: location") have no ONS code. They are real emissions, counted in the UK total, so they stay, under a
#: code made from their name: UNALLOCATED:<name in snake_case>.
def _authority_code(code: str, name: str | None) -> pl.Expr:
    if not name:
        return clean_text(code)
    slug = clean_text(name).str.to_lowercase().str.replace_all(r"[^a-z0-9]+", "_").str.strip_chars("_")
    return pl.coalesce(clean_text(code), pl.format("UNALLOCATED:{}", slug))


def conform_emissions(
    ghg_long: pl.LazyFrame | None = None, co2_wide: pl.LazyFrame | None = None
) -> Conformed:
    """All releases as rows of (authority, year, sector, sub-sector, gas), the newest release kept."""
    long_rows, long_quarantine = _conform_long(ghg_long)
    wide_rows, wide_quarantine = _conform_wide(co2_wide)
    found = [frame for frame in (long_rows, wide_rows) if frame.height]
    quarantined = pl.concat([long_quarantine, wide_quarantine], how="vertical_relaxed")
    if not found:
        return Conformed(pl.DataFrame(schema=EMISSIONS_SCHEMA), quarantined)
    rows = pl.concat(found, how="diagonal_relaxed")

    # Which release is newest, per file: the layout first, then the latest year it covers (DESNZ revises
    # the whole back series each year), then the file name so the choice is always the same.
    releases = (
        rows.group_by("source_file", "_layout")
        .agg(pl.col("calendar_year").max().alias("_latest_year"))
        .with_columns(
            pl.col("_layout").replace_strict(RELEASE_PRECEDENCE, return_dtype=pl.Int32).alias("_rank")
        )
        .sort("_rank", "_latest_year", "source_file")
        .with_row_index("_release_order")
    )
    rows = rows.join(releases.select("source_file", "_release_order"), on="source_file")
    # A release replaces an older one for a whole authority, year and gas, never row by row: sub-sector
    # names differ between releases, and mixing them would count some emissions twice in a year's total.
    rows = rows.filter(
        pl.col("_release_order")
        == pl.col("_release_order").max().over("local_authority_code", "calendar_year", "greenhouse_gas")
    )
    return Conformed(typed_frame(rows.sort(*EMISSIONS_KEY), EMISSIONS_SCHEMA), quarantined)


def _conform_long(frame: pl.LazyFrame | None) -> tuple[pl.DataFrame, pl.DataFrame]:
    bronze = load_bronze(frame)
    filled = filled_columns(bronze)
    require_in_files(filled, [_LA_CODE, _YEAR, _SECTOR, _SUB_SECTOR, _TERRITORIAL], what=str(GHG_LONG))
    ghg_files = [file for file, columns in filled.items() if "la_ghg_sector" in columns]
    require_in_files(filled, [("greenhouse_gas",)], what=f"{GHG_LONG} (DESNZ GHG release)", files=ghg_files)

    frames, problems = [], []
    for file, columns in filled.items():
        pick = {
            "code": first_present(columns, _LA_CODE),
            "name": first_present(columns, _LA_NAME),
            "year": first_present(columns, _YEAR),
            "sector": first_present(columns, _SECTOR),
            "sub_sector": first_present(columns, _SUB_SECTOR),
            "territorial": first_present(columns, _TERRITORIAL),
            "within_scope": first_present(columns, _WITHIN_SCOPE),
            "population": first_present(columns, _POPULATION),
            "area": first_present(columns, _AREA),
            "region": first_present(columns, _REGION),
        }
        is_ghg = pick["sector"] == "la_ghg_sector"
        rows = bronze.filter(pl.col(SOURCE_FILE) == file)
        rows = rows.filter(~_aggregate_row(pick["name"], pick["region"]))
        checks = [
            malformed_row(),
            _pseudo_authority_check(pick["code"], pick["name"]),
            _year_check(pick["year"]),
            Check(clean_text(pick["sector"]).is_null(), pick["sector"], "no sector"),
            Check(clean_text(pick["sub_sector"]).is_null(), pick["sub_sector"], "no sub-sector"),
            *(
                [Check(clean_text("greenhouse_gas").is_null(), "greenhouse_gas", "no greenhouse gas")]
                if is_ghg
                else []
            ),
            *_number_checks(
                {
                    "territorial emissions": pick["territorial"],
                    "emissions within the scope of influence": pick["within_scope"],
                    "mid-year population": pick["population"],
                    "area": pick["area"],
                }
            ),
        ]
        problems.append(find_problems(rows, checks))
        frames.append(
            rows.join(problems[-1], on=ROW_ID, how="anti").select(
                ROW_ID,
                SOURCE_FILE,
                SOURCE_ROW,
                _authority_code(pick["code"], pick["name"]).alias("local_authority_code"),
                text_or_null(pick["name"]).alias("local_authority_name"),
                clean_text(pick["year"]).cast(pl.Int32).alias("calendar_year"),
                desnz_sector(pl.col(pick["sector"])).alias("sector"),
                current_sub_sector_name(pl.col(pick["sub_sector"])).alias("sub_sector"),
                (clean_text("greenhouse_gas") if is_ghg else pl.lit("CO2")).alias("greenhouse_gas"),
                _number(pick["territorial"]).alias("territorial_kt_co2e"),
                _number(pick["within_scope"]).alias("within_scope_kt_co2e"),
                _number(pick["population"]).alias("population_thousands"),
                _number(pick["area"]).alias("area_km2"),
                pl.lit(LONG_GHG if is_ghg else LONG_CO2).alias("_layout"),
            )
        )
    rows = pl.concat(frames, how="vertical_relaxed") if frames else pl.DataFrame()
    return _release_rows(rows, problems, bronze, filled, GHG_LONG)


def _conform_wide(frame: pl.LazyFrame | None) -> tuple[pl.DataFrame, pl.DataFrame]:
    bronze = load_bronze(frame)
    filled = filled_columns(bronze)
    require_in_files(filled, [_WIDE_CODE, _WIDE_NAME, _WIDE_YEAR, _GRAND_TOTAL], what=str(CO2_WIDE))
    frames, problems = [], []
    for file, columns in filled.items():
        code, name = first_present(columns, _WIDE_CODE), first_present(columns, _WIDE_NAME)
        year, grand = first_present(columns, _WIDE_YEAR), first_present(columns, _GRAND_TOTAL)
        population, area = first_present(columns, _POPULATION), first_present(columns, _AREA)
        identifiers = {code, name, year, grand} | _WIDE_IDENTIFIERS
        emission_columns = sorted(c for c in columns if c not in identifiers and not _not_emissions(c))
        if not emission_columns:
            require_in_files(filled, [tuple(WIDE_SUB_SECTORS)], what=str(CO2_WIDE), files=[file])
        rows = bronze.filter(pl.col(SOURCE_FILE) == file)
        rows = rows.filter(~_aggregate_row(name, first_present(columns, ("region_country", "region"))))
        row_problems = find_problems(
            rows,
            [
                malformed_row(),
                _pseudo_authority_check(code, name),
                _year_check(year),
                *_number_checks({"population": population, "area": area}),
            ],
        )
        rows = rows.join(row_problems, on=ROW_ID, how="anti")
        layout = _wide_layout(rows, emission_columns, grand)
        gaps = _reconcile(rows, layout, grand)
        rows = rows.join(gaps, on=ROW_ID, how="anti")
        is_full = bool(_OUTSIDE_SCOPE & {_wide_key(c) for c in layout.components}) or "LULUCF" in {
            sector for sector, _ in layout.components.values()
        } | set(layout.totals.values())
        sub_sectors = list(layout.components)
        sectors = pl.DataFrame(
            [(column, *layout.components[column]) for column in sub_sectors],
            schema={"_column": pl.String, "sector": pl.String, "sub_sector": pl.String},
            orient="row",
        )
        # A pseudo-authority has no population or area: the files print 0 for them.
        placed = clean_text(code).is_not_null()
        cells = (
            rows.lazy()
            .select(
                ROW_ID,
                SOURCE_FILE,
                SOURCE_ROW,
                _authority_code(code, name).alias("local_authority_code"),
                text_or_null(name).alias("local_authority_name"),
                clean_text(year).cast(pl.Int32).alias("calendar_year"),
                pl.when(placed).then(_number(population)).alias("population_thousands"),
                pl.when(placed).then(_number(area)).alias("area_km2"),
                *sub_sectors,
            )
            .unpivot(
                index=[
                    ROW_ID,
                    SOURCE_FILE,
                    SOURCE_ROW,
                    "local_authority_code",
                    "local_authority_name",
                    "calendar_year",
                    "population_thousands",
                    "area_km2",
                ],
                on=sub_sectors,
                variable_name="_column",
                value_name="_text",
            )
            .join(sectors.lazy(), on="_column")
            .collect()
        )
        bad_cells = cells.filter(unparseable_number("_text") | pl.col("sector").is_null())
        problems += [
            row_problems,
            gaps,
            bad_cells.select(
                ROW_ID,
                pl.col("_column").alias(PROBLEM_COLUMN),
                pl.col("_text").alias(PROBLEM_VALUE),
                pl.when(pl.col("sector").is_null())
                .then(pl.format("no DESNZ sector for the column {}", "_column"))
                .otherwise(pl.lit("emissions value is not a number"))
                .alias(PROBLEM_REASON),
            ),
        ]
        measure = "territorial_kt_co2e" if is_full else "within_scope_kt_co2e"
        frames.append(
            cells.join(bad_cells.select(ROW_ID, "_column"), on=[ROW_ID, "_column"], how="anti").select(
                ROW_ID,
                SOURCE_FILE,
                SOURCE_ROW,
                "local_authority_code",
                "local_authority_name",
                "calendar_year",
                "sector",
                "sub_sector",
                pl.lit("CO2").alias("greenhouse_gas"),
                *(
                    (parse_number("_text") if column == measure else pl.lit(None, pl.Float64)).alias(column)
                    for column in ("territorial_kt_co2e", "within_scope_kt_co2e")
                ),
                "population_thousands",
                "area_km2",
                pl.lit(WIDE_FULL if is_full else WIDE_SUBSET).alias("_layout"),
                "_column",
            )
        )
    rows = pl.concat(frames, how="vertical_relaxed") if frames else pl.DataFrame()
    return _release_rows(rows, problems, bronze, filled, CO2_WIDE)


@dataclass(frozen=True)
class WideLayout:
    """A wide file's emission columns: components (column → sector, sub-sector) and the totals that sum
    them (column → sector), named or found by their numbers."""

    components: dict[str, tuple[str | None, str]]
    totals: dict[str, str]


def _rounding(n_cells: int, decimals: pl.Expr) -> pl.Expr:
    """How far a sum of ``n_cells`` rounded cells can be from its rounded total: half a unit of the last
    printed decimal for each cell and for the total."""
    return pl.lit(0.5) * pl.lit(10.0).pow(-decimals) * (n_cells + 1) + 1e-9


def _decimals(columns: list[str]) -> pl.Expr:
    """The most decimals any of these cells prints (a row of "12.3" cells is rounded to 0.1)."""
    return pl.max_horizontal(
        clean_text(c).str.extract(r"\.(\d+)$").str.len_chars().fill_null(0) for c in columns
    ).cast(pl.Float64)


def _sum(columns: list[str]) -> pl.Expr:
    return pl.sum_horizontal(parse_number(c).fill_null(0.0) for c in columns) if columns else pl.lit(0.0)


def _wide_layout(rows: pl.DataFrame, emission_columns: list[str], grand: str) -> WideLayout:
    """Which columns are components and which are totals. A total is recognised by its name, and also by its
    numbers whatever its name: a column equal, in (nearly) every row, to the sum of two or more other columns
    of one sector is their total, not one more source."""
    keys = {column: _wide_key(column) for column in emission_columns}
    totals = {c: WIDE_SECTOR_TOTALS[k] for c, k in keys.items() if k in WIDE_SECTOR_TOTALS}
    components = {c: _wide_sub_sector(k, set(keys.values())) for c, k in keys.items() if c not in totals}
    decimals = _decimals([*emission_columns, grand])
    if rows.height:
        sectors = sorted({s for s, _ in components.values() if s})
        for column, (own, _) in sorted(components.items()):
            for sector in [own] if own else sectors:
                others = [
                    c for c, (s, _) in components.items() if s == sector and c != column and c not in totals
                ]
                if len(others) < 2:
                    continue
                matches = rows.select(
                    close=(
                        (parse_number(column) - _sum(others)).abs() <= _rounding(len(others), decimals)
                    ).mean(),
                    used=(parse_number(column).abs() > 0).any(),
                ).row(0, named=True)
                if matches["used"] and (matches["close"] or 0) >= 0.99:
                    totals[column] = sector
                    break
    components = {c: v for c, v in components.items() if c not in totals}
    # A sector published by its total alone (the 2005-17 tables' "N. LULUCF Net Emissions") is a component.
    for column, sector in list(totals.items()):
        if not any(s == sector for s, _ in components.values()):
            components[column] = (sector, _SECTOR_TOTAL_NAMES.get(_wide_key(column), humanise(column)))
            del totals[column]
    return WideLayout(components, totals)


def _reconcile(rows: pl.DataFrame, layout: WideLayout, grand: str) -> pl.DataFrame:
    """Rows whose components do not add up to their sector totals or to the Grand Total, beyond the rounding
    of the cells, with the gap. Rows with unreadable cells are quarantined cell by cell instead."""
    everything = [*layout.components, *layout.totals, grand]
    decimals = _decimals(everything)
    unreadable = pl.any_horizontal(unparseable_number(c) for c in everything)
    checks = [(grand, "Grand Total", list(layout.components))] + [
        (total, f"the {sector} total", [c for c, (s, _) in layout.components.items() if s == sector])
        for total, sector in sorted(layout.totals.items())
    ]
    found = []
    for total, what, parts in checks:
        gap = _sum(parts) - parse_number(total)
        tolerance = _rounding(len(parts), decimals)
        found.append(
            rows.filter(~unreadable & parse_number(total).is_not_null() & (gap.abs() > tolerance)).select(
                ROW_ID,
                pl.lit(total).alias(PROBLEM_COLUMN),
                clean_text(total).alias(PROBLEM_VALUE),
                pl.format(
                    "the {} components add up to {} kt but {} ({}) is {}: a gap of {} kt, more than the ±{} kt "
                    "the rounding of the cells allows",
                    pl.lit(len(parts)),
                    _sum(parts).round(3),
                    pl.lit(what),
                    pl.lit(total),
                    parse_number(total),
                    gap.round(3),
                    tolerance.round(3),
                ).alias(PROBLEM_REASON),
            )
        )
    # One reason per row is enough: the first check that fails (the Grand Total's, when it does).
    return pl.concat(found).unique(ROW_ID, keep="first", maintain_order=True)


def _release_rows(
    rows: pl.DataFrame,
    problems: list[pl.DataFrame],
    bronze: pl.DataFrame,
    filled: dict[str, set[str]],
    ref: TableRef,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Label each row with its release, keep the first of duplicate keys within a file, quarantine the rest."""
    if rows.height:
        rows, duplicates = keep_first(
            rows,
            [*EMISSIONS_KEY, SOURCE_FILE],
            order=[SOURCE_FILE, SOURCE_ROW],
            what="authority, year, sector, sub-sector and gas in one file",
            column=pl.col("_column") if "_column" in rows.columns else None,
        )
        problems = [*problems, duplicates]
        rows = rows.with_columns(
            pl.format("{} ({})", "_layout", pl.col(SOURCE_FILE).str.replace(r"^.*[/\\]", "")).alias(
                "source_release"
            )
        ).rename({SOURCE_FILE: "source_file", SOURCE_ROW: "source_row"})
    return rows, quarantine_problems(bronze, problems, source_table=ref.path, filled=filled)


def _number(column: str | None) -> pl.Expr:
    return parse_number(column) if column else pl.lit(None, pl.Float64)
