"""DESNZ local authority greenhouse-gas statistics for Kestrelford and its comparators: the current
long CSV (2005-2023, CO2/CH4/N2O) and the legacy wide CO2 tables (2005-2019) it replaced, the "subset"
(within the scope of influence) and the "full" table (territorial, land use included)."""

from __future__ import annotations

import numpy as np
import polars as pl

from kpi_lake.sample_data._common import LandingWriter, encode_text, rng_for
from kpi_lake.sample_data.council import ALL_COUNCILS, COUNTRY_CODE, COUNTRY_NAME, OWN, Council

FAMILY = "emissions"
LONG_FILE = f"{FAMILY}/2005-23_UK_local_authority_ghg_emissions.csv"
WIDE_FILE = f"{FAMILY}/2005-19_UK_local_and_regional_CO2_emissions_subset.csv"
YEARS = np.arange(2005, 2024)
WIDE_YEARS = np.arange(2005, 2020)

LONG_HEADER = [
    "Country",
    "Country Code",
    "Region",
    "Region Code",
    "Second Tier Authority",
    "Local Authority",
    "Local Authority Code",
    "Calendar Year",
    "LA GHG Sector",
    "LA GHG Sub-sector",
    "Greenhouse gas",
    "Territorial emissions (kt CO2e)",
    "CO2 emissions within the scope of influence of LAs (kt CO2e)",
    "Mid-year Population (thousands)",
    "Area (km2)",
]
GASES = ("CH4", "CO2", "N2O")

# DESNZ spells the region with a lower-case "the".
DESNZ_REGION_NAMES = {"E12000003": "Yorkshire and the Humber"}

# (sector, sub-sector, kt CO2 / CH4 / N2O in 2005 for a Kestrelford-sized area, annual change,
#  within the scope of influence, what the area's size scales it by)
SUB_SECTORS: tuple[tuple[str, str, float, float, float, float, bool, str], ...] = (
    ("Agriculture", "Agriculture Electricity", 3.0, 0.003, 0.02, -0.05, True, "agri"),
    ("Agriculture", "Agriculture Gas", 1.2, 0.001, 0.001, -0.01, True, "agri"),
    ("Agriculture", "Agriculture 'Other'", 4.5, 0.02, 0.05, -0.01, True, "agri"),
    ("Agriculture", "Agriculture Livestock", 0.0, 16.0, 0.7, -0.004, False, "agri"),
    ("Agriculture", "Agriculture Soils", 0.3, 0.0, 8.0, -0.004, False, "agri"),
    ("Commercial", "Commercial Electricity", 215.0, 0.25, 1.1, -0.06, True, "commercial"),
    ("Commercial", "Commercial Gas", 58.0, 0.09, 0.03, -0.012, True, "commercial"),
    ("Commercial", "Commercial 'Other'", 6.5, 0.01, 0.02, -0.02, True, "commercial"),
    ("Domestic", "Domestic Electricity", 275.0, 0.3, 1.4, -0.055, True, "domestic"),
    ("Domestic", "Domestic Gas", 425.0, 1.3, 0.6, -0.018, True, "domestic"),
    ("Domestic", "Domestic 'Other'", 31.0, 2.2, 0.5, -0.02, True, "domestic"),
    ("Industry", "Industry Electricity", 240.0, 0.28, 1.2, -0.06, True, "industry"),
    ("Industry", "Industry Gas", 162.0, 0.25, 0.08, -0.02, True, "industry"),
    ("Industry", "Industry 'Other'", 96.0, 0.3, 0.5, -0.02, True, "industry"),
    ("Industry", "Large Industrial Installations", 62.0, 0.1, 0.4, -0.03, False, "industry"),
    ("LULUCF", "Cropland", 6.0, 0.02, 0.3, -0.01, False, "land"),
    ("LULUCF", "Forest land", -18.0, 0.01, 0.02, 0.01, False, "land"),
    ("LULUCF", "Grassland", -4.0, 0.02, 0.01, 0.005, False, "land"),
    ("LULUCF", "Harvested Wood Products", -1.5, 0.0, 0.0, 0.0, False, "land"),
    ("LULUCF", "Settlements", 9.0, 0.0, 0.2, -0.005, False, "land"),
    ("LULUCF", "Wetlands", 0.4, 0.05, 0.0, 0.0, False, "land"),
    ("Public Sector", "Public Sector Electricity", 72.0, 0.08, 0.35, -0.06, True, "public"),
    ("Public Sector", "Public Sector Gas", 56.0, 0.09, 0.03, -0.02, True, "public"),
    ("Public Sector", "Public Sector 'Other'", 3.2, 0.005, 0.01, -0.02, True, "public"),
    ("Transport", "Diesel Railways", 6.0, 0.01, 0.06, -0.01, False, "rail"),
    ("Transport", "Road Transport (A roads)", 232.0, 0.6, 2.4, -0.008, True, "roads"),
    ("Transport", "Road Transport (Minor roads)", 181.0, 0.7, 1.8, -0.008, True, "roads"),
    ("Transport", "Road Transport (Motorways)", 112.0, 0.1, 1.2, -0.005, False, "motorway"),
    ("Transport", "Transport 'Other'", 8.0, 0.02, 0.1, -0.01, True, "roads"),
    ("Waste", "Landfill", 0.0, 58.0, 0.0, -0.06, False, "waste"),
    ("Waste", "Waste 'Other'", 1.0, 4.0, 3.1, -0.01, False, "waste"),
)  # fmt: skip

WIDE_HEADER = (
    "Region/Country,Second Tier Authority,Local Authority,Code,Year,Industry Electricity,Industry Gas ,"
    "Industry 'Other Fuels',Large Industrial Installations,Agriculture,Industry Total,Commercial Electricity,"
    "Commercial Gas ,Commercial 'Other Fuels',Commercial Total,Public Sector Electricity,Public Sector Gas ,"
    "Public Sector 'Other Fuels',Public Sector Total,Domestic Electricity,Domestic Gas,Domestic 'Other Fuels',"
    "Domestic Total,Road Transport (A roads),Road Transport (Minor roads),Transport Other,Transport Total,"
    'Grand Total,"Population                                              (\'000s, mid-year estimate)",'
    "Per Capita Emissions (t),Area (km2),Emissions per km2 (kt)"
)
WIDE_TITLE = (
    '"Local Authority territorial CO2 emissions estimates estimates within the scope of influence of Local '
    "Authorities 2005-2019 (kt CO2) - Subset dataset (Excludes large industrial sites, railways, motorways "
    'and land-use)"'
)
# Wide column -> the long file's CO2 sub-sectors it adds up (within-scope values).
WIDE_COLUMNS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Industry Electricity", ("Industry Electricity",)),
    ("Industry Gas", ("Industry Gas",)),
    ("Industry Other", ("Industry 'Other'",)),
    ("Large Industrial Installations", ("Large Industrial Installations",)),
    ("Agriculture", ("Agriculture Electricity", "Agriculture Gas", "Agriculture 'Other'")),
    ("Commercial Electricity", ("Commercial Electricity",)),
    ("Commercial Gas", ("Commercial Gas",)),
    ("Commercial Other", ("Commercial 'Other'",)),
    ("Public Sector Electricity", ("Public Sector Electricity",)),
    ("Public Sector Gas", ("Public Sector Gas",)),
    ("Public Sector Other", ("Public Sector 'Other'",)),
    ("Domestic Electricity", ("Domestic Electricity",)),
    ("Domestic Gas", ("Domestic Gas",)),
    ("Domestic Other", ("Domestic 'Other'",)),
    ("Road Transport (A roads)", ("Road Transport (A roads)",)),
    ("Road Transport (Minor roads)", ("Road Transport (Minor roads)",)),
    ("Transport Other", ("Transport 'Other'",)),
)
WIDE_TOTALS = (
    ("Industry Total", 0, 5),
    ("Commercial Total", 5, 8),
    ("Public Sector Total", 8, 11),
    ("Domestic Total", 11, 14),
    ("Transport Total", 14, 17),
)

# The full table of the same release: territorial CO2 of every source, motorways, diesel railways and large
# industrial installations included, and land use as six "Net Emissions: …" components followed by their
# total, "LULUCF Net Emissions", before the Grand Total (which counts the components once).
FULL_FILE = f"{FAMILY}/2005-19_UK_local_and_regional_CO2_emissions.csv"
FULL_TITLE = (
    '"Local Authority territorial carbon dioxide (CO2) emissions estimates 2005-2019 (kt CO2) - Full dataset"'
)
FULL_COLUMNS: tuple[tuple[str, tuple[str, ...]], ...] = (
    *WIDE_COLUMNS[:14],
    ("Road Transport (A roads)", ("Road Transport (A roads)",)),
    ("Road Transport (Motorways)", ("Road Transport (Motorways)",)),
    ("Road Transport (Minor roads)", ("Road Transport (Minor roads)",)),
    ("Diesel Railways", ("Diesel Railways",)),
    ("Transport Other", ("Transport 'Other'",)),
    ("Net Emissions: Forest land", ("Forest land",)),
    ("Net Emissions: Cropland", ("Cropland",)),
    ("Net Emissions: Grassland", ("Grassland",)),
    ("Net Emissions: Wetlands", ("Wetlands",)),
    ("Net Emissions: Settlements", ("Settlements",)),
    ("Net Emissions: Harvested Wood Products", ("Harvested Wood Products",)),
)
FULL_TOTALS = (*WIDE_TOTALS[:4], ("Transport Total", 14, 19), ("LULUCF Net Emissions", 19, 25))
FULL_HEADER = (
    "Region/Country,Second Tier Authority,Local Authority,Code,Year,Industry Electricity,Industry Gas ,"
    "Industry 'Other Fuels',Large Industrial Installations,Agriculture,Industry Total,Commercial Electricity,"
    "Commercial Gas ,Commercial 'Other Fuels',Commercial Total,Public Sector Electricity,Public Sector Gas ,"
    "Public Sector 'Other Fuels',Public Sector Total,Domestic Electricity,Domestic Gas,Domestic 'Other Fuels',"
    "Domestic Total,Road Transport (A roads),Road Transport (Motorways),Road Transport (Minor roads),"
    "Diesel Railways,Transport Other,Transport Total,Net Emissions: Forest land,Net Emissions: Cropland,"
    "Net Emissions: Grassland,Net Emissions: Wetlands,Net Emissions: Settlements,"
    "Net Emissions: Harvested Wood Products,LULUCF Net Emissions,"
    'Grand Total,"Population                                              (\'000s, mid-year estimate)",'
    "Per Capita Emissions (t),Area (km2),Emissions per km2 (kt)"
)
#: Authorities outside the council's comparator set that only the full table carries: large, wooded and
#: thinly populated, so that once land use is counted they are net carbon sinks (negative net emissions), as
#: DESNZ publishes for some real ones. (code, name, region, population in thousands, area in km², forest
#: sink per km² in kt, the share of Kestrelford's other emissions per resident they emit.)
SINK_AUTHORITIES = (
    ("E06000057", "Northumberland", "North East", 316.0, 5013.0, 0.75, 1.0),
    ("S12000035", "Argyll and Bute", "Scotland", 86.0, 6909.0, 0.55, 1.1),
    ("S12000017", "Highland", "Scotland", 235.0, 25657.0, 0.30, 1.2),
)


def _population(council: Council, years: np.ndarray) -> np.ndarray:
    """Mid-year population in thousands: steady growth to the 2023 figure."""
    growth = 0.0045 + 0.002 * council.momentum
    return np.round(council.population_2023 / 1000 * (1 - growth) ** (2023 - years), 3)


def build_long_frame(seed: int) -> pl.DataFrame:
    """The DESNZ long table (one row per authority, year, sub-sector and gas) as a typed frame."""
    rng = rng_for(seed, FAMILY)
    n_years, n_subs = len(YEARS), len(SUB_SECTORS)
    t = YEARS - 2005
    weather = 1 + rng.normal(0, 0.05, n_years)  # cold and mild years move gas use everywhere
    weather[YEARS == 2010] += 0.08
    covid = {
        2020: {"roads": 0.8, "commercial": 0.9, "motorway": 0.78},
        2021: {"roads": 0.93, "motorway": 0.92},
    }
    base = np.array([[ch4, co2, n2o] for _, _, co2, ch4, n2o, _, _, _ in SUB_SECTORS])  # (sub, gas)
    change = np.array([sub[5] for sub in SUB_SECTORS])
    in_scope = np.array([sub[6] for sub in SUB_SECTORS])
    kinds = [sub[7] for sub in SUB_SECTORS]
    gas_use = np.array(
        [
            k in ("domestic", "commercial", "public") and "Gas" in sub[1]
            for k, sub in zip(kinds, SUB_SECTORS, strict=True)
        ]
    )
    shocks = np.ones((n_subs, n_years))
    for year, factors in covid.items():
        shocks[:, year - YEARS[0]] *= np.array([factors.get(k, 1.0) for k in kinds])
    shocks[gas_use] *= weather[None, :]

    values, populations, areas = [], [], []
    for council in ALL_COUNCILS:
        c_rng = rng_for(seed, FAMILY, council.code)
        size = council.population_2023 / OWN.population_2023
        land = council.area_km2 / OWN.area_km2
        kind_factor = {
            "agri": land * c_rng.lognormal(0, 0.3),
            "commercial": size * c_rng.lognormal(0, 0.15),
            "domestic": size * c_rng.lognormal(0, 0.06),
            "industry": size * c_rng.lognormal(0, 0.45),
            "land": land,
            "public": size * c_rng.lognormal(0, 0.1),
            "rail": size * c_rng.lognormal(0, 0.5),
            "roads": size * c_rng.lognormal(0, 0.2),
            "motorway": 0.0 if c_rng.random() < 0.3 else land * c_rng.lognormal(0, 0.4),
            "waste": size * c_rng.lognormal(0, 0.3),
        }
        if council is OWN:  # Kestrelford is the reference area the sub-sector bases describe
            kind_factor = dict.fromkeys(kind_factor, 1.0)
        # Better-performing councils cut emissions a little faster.
        extra_cut = 0.004 * council.quality + 0.003 * council.momentum
        rate = 1 + change - np.where(in_scope, extra_cut, 0.0)
        trend = rate[:, None] ** t[None, :] * shocks  # (sub, year)
        scale = np.array([kind_factor[k] for k in kinds])
        noise = c_rng.normal(1.0, 0.03, (n_subs, n_years, 3))
        values.append(base[:, None, :] * scale[:, None, None] * trend[:, :, None] * noise)
        populations.append(_population(council, YEARS))
        areas.append(council.area_km2)

    # One row per (council, sub-sector, year, gas), in that nesting order.
    n_councils = len(ALL_COUNCILS)
    council_i = np.repeat(np.arange(n_councils), n_subs * n_years * 3)
    sub_i = np.tile(np.repeat(np.arange(n_subs), n_years * 3), n_councils)
    year_i = np.tile(np.repeat(np.arange(n_years), 3), n_councils * n_subs)
    gas_i = np.tile(np.arange(3), n_councils * n_subs * n_years)
    territorial = np.round(np.stack(values).ravel(), 9)

    def pick(items: list, index: np.ndarray) -> pl.Series:
        return pl.Series(items).gather(index)

    long = pl.DataFrame(
        {
            "Country": pl.repeat(COUNTRY_NAME, len(council_i), eager=True),
            "Country Code": pl.repeat(COUNTRY_CODE, len(council_i), eager=True),
            "Region": pick(
                [DESNZ_REGION_NAMES.get(c.region_code, c.region_name) for c in ALL_COUNCILS], council_i
            ),
            "Region Code": pick([c.region_code for c in ALL_COUNCILS], council_i),
            "Second Tier Authority": pick([c.name for c in ALL_COUNCILS], council_i),
            "Local Authority": pick([c.name for c in ALL_COUNCILS], council_i),
            "Local Authority Code": pick([c.code for c in ALL_COUNCILS], council_i),
            "Calendar Year": YEARS[year_i],
            "LA GHG Sector": pick([sub[0] for sub in SUB_SECTORS], sub_i),
            "LA GHG Sub-sector": pick([sub[1] for sub in SUB_SECTORS], sub_i),
            "Greenhouse gas": pick(list(GASES), gas_i),
            "Territorial emissions (kt CO2e)": territorial,
            "in_scope": in_scope[sub_i],
            "Mid-year Population (thousands)": np.stack(populations)[council_i, year_i],
            "Area (km2)": np.array(areas)[council_i],
        }
    )
    # Pseudo-authorities: emissions DESNZ cannot place in any area (no codes, population or area).
    pseudo = []
    for name, sub, sector, level in (
        (
            "Large elec users (high voltage lines) unknown location",
            "Industry Electricity",
            "Industry",
            3_440.0,
        ),
        ("Unallocated consumption", "Industry 'Other'", "Industry", 2_210.0),
        ("Unallocated consumption", "Domestic 'Other'", "Domestic", 640.0),
        ("Unallocated consumption", "Transport 'Other'", "Transport", 380.0),
    ):
        amounts = level * (0.95 ** (YEARS - 2005)) * rng.normal(1, 0.06, n_years)
        pseudo.append(
            pl.DataFrame(
                {
                    "Country": "Unallocated",
                    "Country Code": None,
                    "Region": "Unallocated",
                    "Region Code": None,
                    "Second Tier Authority": "Unallocated",
                    "Local Authority": name,
                    "Local Authority Code": None,
                    "Calendar Year": YEARS,
                    "LA GHG Sector": sector,
                    "LA GHG Sub-sector": sub,
                    "Greenhouse gas": "CO2",
                    "Territorial emissions (kt CO2e)": np.round(amounts, 9),
                    "in_scope": False,
                    "Mid-year Population (thousands)": None,
                    "Area (km2)": None,
                },
                schema_overrides={
                    "Country Code": pl.String,
                    "Region Code": pl.String,
                    "Local Authority Code": pl.String,
                    "Mid-year Population (thousands)": pl.Float64,
                    "Area (km2)": pl.Float64,
                },
            )
        )
    long = pl.concat([long, *pseudo], how="vertical_relaxed")
    scope_col = "CO2 emissions within the scope of influence of LAs (kt CO2e)"
    long = long.with_columns(
        pl.when(pl.col("in_scope") & (pl.col("Greenhouse gas") == "CO2"))
        .then(pl.col("Territorial emissions (kt CO2e)"))
        .otherwise(0.0)
        .alias(scope_col)
    ).drop("in_scope")
    long = long.with_columns((pl.col("Country") == "Unallocated").alias("_unallocated")).sort(
        [
            "_unallocated",
            "Region",
            "Local Authority",
            "Calendar Year",
            "LA GHG Sector",
            "LA GHG Sub-sector",
            "Greenhouse gas",
        ]
    )
    return long.drop("_unallocated").select(LONG_HEADER)


def compute_emissions_kpis(long: pl.DataFrame) -> dict[tuple[str, str], float]:
    """BPE410 total, BPE411 per resident, BPE412a within scope: own council, each calendar year."""
    own = long.filter(pl.col("Local Authority Code") == OWN.code)
    by_year = (
        own.group_by("Calendar Year")
        .agg(
            pl.col("Territorial emissions (kt CO2e)").sum().alias("total"),
            pl.col("CO2 emissions within the scope of influence of LAs (kt CO2e)")
            .filter(pl.col("Greenhouse gas") == "CO2")
            .sum()
            .alias("scope"),
            pl.col("Mid-year Population (thousands)").first().alias("population"),
        )
        .sort("Calendar Year")
    )
    out: dict[tuple[str, str], float] = {}
    for row in by_year.iter_rows(named=True):
        year = str(row["Calendar Year"])
        out[("BPE410", year)] = row["total"]
        out[("BPE411", year)] = row["total"] / row["population"]
        out[("BPE412a", year)] = row["scope"]
    return out


def _wide_number(value: float) -> str:
    return f"{value:,.1f}"


def _wide_rows(
    long: pl.DataFrame,
    columns: tuple[tuple[str, tuple[str, ...]], ...] = WIDE_COLUMNS,
    totals_at: tuple[tuple[str, int, int], ...] = WIDE_TOTALS,
    measure: str = "CO2 emissions within the scope of influence of LAs (kt CO2e)",
    extra: tuple[tuple[str, str, str, float, float, float, float], ...] = (),
    seed: int = 0,
) -> list[list[str]]:
    """A wide CO2 table's rows from the long file's CO2: one column per sub-sector (``columns``), each sector's
    total after its last component (``totals_at``), then the Grand Total, population, per-capita, area and
    per-km² columns; region, England and National total rows as DESNZ prints them."""
    co2 = long.filter(
        (pl.col("Greenhouse gas") == "CO2")
        & pl.col("Calendar Year").is_in(WIDE_YEARS.tolist())
        & pl.col("Local Authority Code").is_not_null()
    )
    wide = (
        co2.group_by("Local Authority Code", "Calendar Year")
        .agg(
            *[
                pl.col(measure).filter(pl.col("LA GHG Sub-sector").is_in(list(subs))).sum().alias(name)
                for name, subs in columns
            ],
            pl.col("Mid-year Population (thousands)").first().alias("population"),
            pl.col("Area (km2)").first().alias("area"),
        )
        .sort("Local Authority Code", "Calendar Year")
    )
    values = {(r["Local Authority Code"], r["Calendar Year"]): r for r in wide.iter_rows(named=True)}
    names = [name for name, _ in columns]

    def line(
        label: tuple[str, str, str, str], year: int, parts: np.ndarray, pop: float, area: float
    ) -> list[str]:
        # Cells are rounded to 0.1 kt as printed; each total is the rounded sum of the unrounded parts.
        ordered: list[float] = []
        totals = [sum(parts[first:last]) for _, first, last in totals_at]
        done = 0
        for total, (_, _, last) in zip(totals, totals_at, strict=True):
            ordered += [*parts[done:last], total]
            done = last
        grand = sum(totals)
        ordered.append(grand)
        per_cap = grand / pop if pop else 0.0
        per_km2 = grand / area if area else 0.0
        return [*label, str(year), *(_wide_number(v) for v in ordered), _wide_number(pop), _wide_number(per_cap),
                _wide_number(area), _wide_number(per_km2)]  # fmt: skip

    # Net sinks (only in the full table): Kestrelford's emissions per resident, and a forest sink by area.
    sinks: dict[str, list[tuple[str, str, list[tuple[int, np.ndarray, float, float]]]]] = {}
    rng = rng_for(seed, FAMILY, "sinks")
    forest = names.index("Net Emissions: Forest land") if extra else -1
    for code, name, region, pop, area, sink_per_km2, share in extra:
        rows_of = []
        for year in WIDE_YEARS:
            own = values[(OWN.code, int(year))]
            parts = np.array([own[n] for n in names]) * pop / own["population"] * share
            parts *= rng.normal(1.0, 0.05, len(names))
            parts[forest] = -sink_per_km2 * area * rng.normal(1.0, 0.03)
            rows_of.append((int(year), parts, pop * (1.002 ** (int(year) - 2019)), area))
        sinks.setdefault(region, []).append((code, name, rows_of))

    rows: list[list[str]] = []
    region_order = ["E12000001", "E12000002", "E12000003", "E12000004", "E12000005", "E12000006", "E12000009"]
    england = {int(y): np.zeros(len(names) + 2) for y in WIDE_YEARS}
    for region in region_order:
        members = sorted((c for c in ALL_COUNCILS if c.region_code == region), key=lambda c: c.name)
        if not members:
            continue
        region_name = DESNZ_REGION_NAMES.get(region, members[0].region_name)
        totals = {int(y): np.zeros(len(names) + 2) for y in WIDE_YEARS}
        listed = [(c.code, c.name, None) for c in members] + [
            (code, name, rows_of) for code, name, rows_of in sinks.pop(region_name, [])
        ]
        for code, name, rows_of in sorted(listed, key=lambda m: m[1]):
            for year in WIDE_YEARS:
                if rows_of is None:
                    r = values[(code, int(year))]
                    parts, pop, area = np.array([r[n] for n in names]), r["population"], r["area"]
                else:
                    _, parts, pop, area = rows_of[int(year) - int(WIDE_YEARS[0])]
                rows.append(line((region_name, name, name, code), int(year), parts, pop, area))
                totals[int(year)] += np.concatenate([parts, [pop, area]])
        for year in WIDE_YEARS:
            t = totals[int(year)]
            label = f"{region_name} Total"
            rows.append(line((label, label, label, ""), int(year), t[:-2], t[-2], t[-1]))
            england[int(year)] += t
    for year in WIDE_YEARS:
        t = england[int(year)]
        rows.append(
            line(("England Total", "England Total", "England Total", ""), int(year), t[:-2], t[-2], t[-1])
        )
    for region_name, members in sinks.items():  # authorities of the other nations, after England
        for code, name, rows_of in members:
            for year, parts, pop, area in rows_of:
                rows.append(line((region_name, name, name, code), year, parts, pop, area))
    unallocated = long.filter(
        (pl.col("Local Authority") == "Large elec users (high voltage lines) unknown location")
        & pl.col("Calendar Year").is_in(WIDE_YEARS.tolist())
    ).sort("Calendar Year")
    for r in unallocated.iter_rows(named=True):
        parts = np.zeros(len(names))
        parts[0] = r["Territorial emissions (kt CO2e)"]
        rows.append(
            line(
                ("Unallocated", "Unallocated", r["Local Authority"], ""), r["Calendar Year"], parts, 0.0, 0.0
            )
        )
    for year in WIDE_YEARS:
        t = england[int(year)].copy()
        t[0] += float(
            unallocated.filter(pl.col("Calendar Year") == int(year))["Territorial emissions (kt CO2e)"].sum()
        )
        rows.append(
            line(("National Total", "National Total", "National Total", ""), int(year), t[:-2], t[-2], t[-1])
        )
    return rows


def _csv_cell(text: str) -> str:
    return f'"{text}"' if "," in text else text


def write_emissions(writer: LandingWriter, *, seed: int) -> tuple[dict[tuple[str, str], float], int]:
    """Write both DESNZ files; returns the computed emissions KPIs and the rows written."""
    long = build_long_frame(seed)
    # The current release: UTF-8 with a BOM and CRLF line endings, as DESNZ publishes it.
    # Whole numbers print without a decimal point ("0", not "0.0"), as in the published file.
    numeric = [c for c, t in long.schema.items() if t == pl.Float64]
    text = long.with_columns(pl.col(numeric).cast(pl.String).str.replace(r"\.0$", ""))
    buf = text.write_csv(null_value="", line_terminator="\n")
    writer.write_bytes(LONG_FILE, encode_text(buf, bom=True, crlf=True))

    rows = _wide_rows(long)
    n_cols = len(WIDE_HEADER.split(",")) - 1  # the population header holds one quoted comma
    lines = [WIDE_TITLE + "," * (n_cols - 1), WIDE_HEADER]
    lines += [",".join(_csv_cell(c) for c in row) for row in rows]
    text = "\r\n".join(lines) + "\r\n" + "," * (n_cols - 1)  # trailing empty row, no final newline
    writer.write_bytes(WIDE_FILE, encode_text(text, bom=True))

    full = _wide_rows(
        long, FULL_COLUMNS, FULL_TOTALS, "Territorial emissions (kt CO2e)", extra=SINK_AUTHORITIES, seed=seed
    )
    n_cols = len(FULL_HEADER.split(",")) - 1
    lines = [FULL_TITLE + "," * (n_cols - 1), FULL_HEADER]
    lines += [",".join(_csv_cell(c) for c in row) for row in full]
    text = "\r\n".join(lines) + "\r\n" + "," * (n_cols - 1)
    writer.write_bytes(FULL_FILE, encode_text(text, bom=True))
    return compute_emissions_kpis(long), len(long) + len(rows) + len(full)
