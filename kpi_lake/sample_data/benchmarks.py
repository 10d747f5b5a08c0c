"""Benchmarking files comparing Kestrelford with its CIPFA-style comparators (LG Inform long layout,
Oflog layout, an ONS spreadsheet export, an OHID Fingertips export with breakdown rows) and the reference
lookups (wards, authorities, comparators, corporate themes). Kestrelford's own figures agree with the other
families and with SPAR.net."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import polars as pl

from kpi_lake.sample_data._common import (
    LandingWriter,
    csv_text,
    encode_text,
    rng_for,
    round_half_up,
    rows_csv_text,
)
from kpi_lake.sample_data.council import (
    ALL_COUNCILS,
    COMPARATOR_WARD_STEMS,
    COMPARATORS,
    COUNTRY_CODE,
    OWN,
    THEMES,
    WARDS,
    Council,
)
from kpi_lake.sample_data.spar_net import SparData

FAMILY = "benchmarks"
REFERENCE = "reference"
LG_HEADER = ["area_code", "area_name", "period", "indicator", "measure", "unit", "value"]
FINGERTIPS_HEADER = ["Indicator ID", "Indicator Name", "Parent Code", "Parent Name", "Area Code", "Area Name",
                     "Area Type", "Sex", "Age", "Category Type", "Category", "Time period", "Value",
                     "Lower CI 95.0 limit", "Upper CI 95.0 limit", "Lower CI 99.8 limit", "Upper CI 99.8 limit",
                     "Count", "Denominator", "Value note", "Recent Trend", "Compared to England value or percentiles",
                     "Compared to Region value or percentiles", "Time period Sortable", "New data",
                     "Compared to goal"]  # fmt: skip
#: The Fingertips indicator the sample exports (smoking prevalence, APS) and its name, with the line break
#: Fingertips leaves at the end of some names (inside the quotes).
FINGERTIPS_INDICATOR = ("92443", "Smoking Prevalence in adults (18+) - current smokers (APS)\n")
OFLOG_HEADER = ["Financial year", "Local authority code", "Local authority name", "Grouping", "Entity_Name", "Region",
                "Measure", "Code", "Value", "MEDIAN", "MADs_from_median", "rank_order"]  # fmt: skip


def _comparator(own: float, council: Council, *, spread: float, better: int, rng: np.random.Generator,
                lo: float = 0.0, hi: float = 100.0) -> float:  # fmt: skip
    """A comparator's value around Kestrelford's, set by its performance profile."""
    value = own + better * spread * (council.quality - OWN.quality) + rng.normal(0, spread * 0.3)
    return float(np.clip(value, lo, hi))


def _fy_dash(label: str) -> str:
    return label.replace("/", "-")


def _lg_inform_ks2(education: Mapping[str, pl.DataFrame], rng: np.random.Generator) -> list[list[str]]:
    ks2 = education["ks2"].filter(
        (pl.col("breakdown") == "Total") & pl.col("geographic_level").is_in(["Local authority", "National"])
    )
    indicator = (
        "Pupils reaching the expected standard at the end of key stage 2 in reading, writing and mathematics"
    )
    rows = []
    for r in ks2.iter_rows(named=True):
        national = r["geographic_level"] == "National"
        code = COUNTRY_CODE if national else r["new_la_code"]
        name = "England" if national else r["la_name"]
        period = f"{r['time_period'][:4]}/{r['time_period'][4:]}"
        value = r["pt_rwm_met_expected_standard"]
        if code != OWN.code and not national and rng.random() < 0.05:
            value = "NA"  # not yet loaded into LG Inform for this authority
        rows.append([code, name, period, indicator, "Percentage", "Persons", value])
    return sorted(rows, key=lambda row: (row[2], row[1]))


def _lg_inform_corporate(spar: SparData, computed: Mapping[tuple[str, str], float | None],
                         rng: np.random.Generator) -> list[list[str]]:  # fmt: skip
    rows: list[list[str]] = []
    years = ["2021/22", "2022/23", "2023/24", "2024/25", "2025/26"]
    for code, indicator, unit, spread in (
        (
            "BPC210",
            "Council tax collected as a percentage of net collectable debit in the year",
            "Collection",
            1.2,
        ),
        (
            "BPB530",
            "Percentage of major planning applications decided within 13 weeks or agreed time",
            "Applications",
            8.0,
        ),
    ):
        for year in years:
            own = computed.get((code, year))
            if own is None:
                continue
            for council in ALL_COUNCILS:
                value = own if council is OWN else _comparator(own, council, spread=spread, better=1, rng=rng)
                rows.append([council.code, council.name, year, indicator, "Percentage", unit,
                             f"{round_half_up(value, 1):.1f}"])  # fmt: skip
    # Survey-based measure with 95% confidence intervals (Sport England Active Lives).
    indicator = "Percentage of physically active adults"
    for (code, year), own in sorted(spar.values.items()):
        if code != "PH364" or own is None:
            continue
        for council in ALL_COUNCILS:
            value = own if council is OWN else _comparator(own, council, spread=3.0, better=1, rng=rng)
            half_width = 1.96 * np.sqrt(value * (100 - value) / rng.integers(480, 560)) if value else 0
            for measure, v in (("Percentage", value), ("Lower 95% confidence interval", value - half_width),
                               ("Upper 95% confidence interval", value + half_width)):  # fmt: skip
                rows.append(
                    [
                        council.code,
                        council.name,
                        year,
                        indicator,
                        measure,
                        "Persons",
                        f"{round_half_up(v, 1):.1f}",
                    ]
                )
    return sorted(rows, key=lambda row: (row[3], row[2], row[1], row[4]))


def _oflog(
    spar: SparData, computed: Mapping[tuple[str, str], float | None], rng: np.random.Generator
) -> pl.DataFrame:
    years = ["2021/22", "2022/23", "2023/24", "2024/25", "2025/26"]
    measures = []
    for year in years:
        # Recycling: the year's average of the four quarterly SPAR.net figures.
        quarters = [spar.values.get(("BPE450", f"{year} Q{q}")) for q in range(1, 5)]
        recycling = float(np.mean(quarters)) if all(v is not None for v in quarters) else None
        measures += [
            ("Planning, Major applications decided on time", "PLAN1", year, computed.get(("BPB530", year)), 8.0, 1, 1,
             "DESC"),
            ("Waste, Household waste recycling rate", "WST1", year, recycling, 5.0, 1, 1, "desc"),
            ("Outcome, ASC Carer Quality of Life", "ASC1", year, spar.values.get(("PH366", year)), 0.4, 1, 1, "desc"),
            ("Corporate and finance, Council tax collection rate", "CTX1", year, computed.get(("BPC210", year)), 1.2,
             1, 1, "None"),
        ]  # fmt: skip
    records = []
    for measure, code, year, own, spread, better, dp, rank in measures:
        if own is None:
            continue
        own_shown = round_half_up(own, dp)
        hi = 10.0 if code == "ASC1" else 100.0
        for council in ALL_COUNCILS:
            value = (
                own_shown
                if council is OWN
                else round_half_up(
                    _comparator(own_shown, council, spread=spread, better=better, rng=rng, hi=hi), dp
                )
            )
            if council is not OWN and rng.random() < 0.03:
                value = None  # return not submitted
            records.append({"Financial year": _fy_dash(year), "Local authority code": council.code,
                            "Local authority name": council.name, "Grouping": "LA_Raw",
                            "Entity_Name": "Unitary Authorities", "Region": council.region_name, "Measure": measure,
                            "Code": code, "Value": value, "rank_order": rank if rng.random() > 0.04 else None})  # fmt: skip
    frame = pl.DataFrame(records)
    group = ["Financial year", "Code"]
    frame = frame.with_columns(pl.col("Value").median().over(group).alias("MEDIAN"))
    frame = frame.with_columns((pl.col("Value") - pl.col("MEDIAN")).abs().median().over(group).alias("_mad"))
    frame = frame.with_columns(
        pl.when(pl.col("_mad") > 0).then((pl.col("Value") - pl.col("MEDIAN")) / pl.col("_mad")).otherwise(0.0)
        .alias("MADs_from_median")
    )  # fmt: skip
    return frame.select(OFLOG_HEADER)


def _ons_life_satisfaction(spar: SparData, year: str, rng: np.random.Generator) -> str:
    """An ONS spreadsheet tab saved as CSV: five rows above the header, notes with line breaks."""
    start = int(year[:4])
    own = spar.values.get(("PH365", year))
    lines = [
        ["Indicator:", "Average life satisfaction rating", "(Back to data dictionary)", "", ""],
        ["Date:", f"04/{start}-03/{start + 1}", "", "", ""],
        ["Coverage:", "UK", "", "", ""],
        ["Geography:", "Local Authority Districts and Unitary Authorities, 2023", "", "", ""],
        ["", "", "", "", ""],
        ["Area Code", "Area", "Mean satisfaction with your life nowadays scored 0 (not at all) - 10 (completely)",
         "Notes", ""],
    ]  # fmt: skip
    for council in sorted(ALL_COUNCILS, key=lambda c: c.code):
        if council is OWN:
            value = "na" if own is None else f"{own:.2f}"
        else:
            base = own if own is not None else 7.3
            value = f"{_comparator(base, council, spread=0.12, better=1, rng=rng, lo=0, hi=10):.2f}"
        lines.append([council.code, council.name, value, "", ""])
    # Authorities that were merged away still appear, with a note (and a line break inside it).
    lines.append(["E07009904", "Fellmouth", "na",
                  "Obsolete code since 2023 (replaced by E06009905 Corrington)\n", ""])  # fmt: skip
    lines.append(["E07009905", "Upper Fell", f"{rng.uniform(7.1, 7.6):.2f}",
                  "Obsolete code since 2023 (replaced by E06009905 Corrington)\n", ""])  # fmt: skip
    return rows_csv_text(lines[0], lines[1:], line_terminator="\r\n")


def _fingertips_smoking(spar: SparData, rng: np.random.Generator) -> list[list[str]]:
    """An OHID Fingertips export: each council's headline figure (Persons, 18+ yrs, no category) with its
    95% and 99.8% limits, count and denominator, then Male and Female rows and, for England, deprivation
    deciles - the breakdown rows silver keeps beside the headline and the mart's comparisons leave aside.
    Kestrelford's headline is SPAR.net's PH363."""
    code, name = FINGERTIPS_INDICATOR
    deciles = ("Most deprived decile (IMD2019)", "Second most deprived decile (IMD2019)",
               "Least deprived decile (IMD2019)")  # fmt: skip
    category_type = "County & UA deprivation deciles in England (IMD2019)"
    rows: list[list[str]] = []

    def row(area: tuple[str, str, str], sex: str, category: tuple[str, str], year: str, value: float,
            base: int) -> list[str]:  # fmt: skip
        count = round(value * base / 100)
        half_95 = 1.96 * np.sqrt(value * (100 - value) / base)
        half_998 = 3.09 * np.sqrt(value * (100 - value) / base)
        note = "Aggregated from all known lower geography values" if category[0] else ""
        compared = "Not compared" if area[2] == "Country" else ("Better" if value < 12.9 else "Similar")
        return [code, name, "" if area[2] == "Country" else COUNTRY_CODE, "" if area[2] == "Country" else "England",
                area[0], area[1], area[2], sex, "18+ yrs", category[0], category[1], year, f"{value:.6f}",
                f"{value - half_95:.6f}", f"{value + half_95:.6f}", f"{value - half_998:.6f}",
                f"{value + half_998:.6f}", str(count), str(base), note, "", compared, "Not compared",
                f"{year}0000", "", ""]  # fmt: skip

    for year in ("2020", "2021", "2022", "2023", "2024"):
        own = spar.values.get(("PH363", year))
        if own is None:
            continue
        areas = [((c.code, c.name, "County & UA"), c) for c in sorted(ALL_COUNCILS, key=lambda c: c.code)]
        for area, council in [((COUNTRY_CODE, "England", "Country"), None), *areas]:
            if council is OWN:
                value = float(own)
            elif council is None:
                value = 12.9 + rng.normal(0, 0.2)
            else:
                value = _comparator(float(own), council, spread=1.5, better=-1, rng=rng, lo=3.0, hi=30.0)
            base = int(rng.integers(450, 650)) if council is not None else 160000
            rows.append(row(area, "Persons", ("", ""), year, value, base))
            for sex, shift in (("Male", 1.8), ("Female", -1.6)):
                rows.append(
                    row(area, sex, ("", ""), year, max(value + shift + rng.normal(0, 0.6), 1.0), base // 2)
                )
            if council is None:
                for i, decile in enumerate(deciles):
                    rows.append(
                        row(area, "Persons", (category_type, decile), year, value + 6.0 - 3.5 * i, base // 10)
                    )
    return rows


def _ward_lookup() -> pl.DataFrame:
    codes, names, lads, lad_names = [], [], [], []
    for w in WARDS:
        codes.append(w.code)
        names.append(w.name)
        lads.append(OWN.code)
        lad_names.append(OWN.name)
    for i, council in enumerate(COMPARATORS):
        n_wards = 14 + (i * 5) % 9
        short = council.name.split(",")[0]
        for w in range(n_wards):
            stem = COMPARATOR_WARD_STEMS[(w + i) % len(COMPARATOR_WARD_STEMS)]
            codes.append(f"E0509{10 + i:02d}{w + 1:02d}")
            names.append(f"{short} {stem}" if w % 3 else f"{stem} {short}")
            lads.append(council.code)
            lad_names.append(council.name)
    order = np.argsort([f"{lad[-2:]}{c}" for lad, c in zip(lads, codes, strict=True)])
    return pl.DataFrame(
        {
            "FID": np.arange(1, len(codes) + 1),
            "WD24CD": np.array(codes)[order],
            "WD24NM": np.array(names)[order],
            "LAD24CD": np.array(lads)[order],
            "LAD24NM": np.array(lad_names)[order],
        }
    )


def _la_lookup() -> pl.DataFrame:
    rows = [(c.code, c.name, None, c.code, c.name, None) for c in sorted(ALL_COUNCILS, key=lambda c: c.code)]
    # A two-tier area in the same region, so the lookup is not just the identity.
    for i, district in enumerate(("Fellside", "Brackenmoor", "Lune Edge")):
        rows.append((f"E0700990{i + 1}", district, None, "E10009901", "Fellshire", None))
    frame = pl.DataFrame(
        rows, schema=["LTLA23CD", "LTLA23NM", "LTLA23NMW", "UTLA23CD", "UTLA23NM", "UTLA23NMW"], orient="row"
    )
    return frame.with_columns(pl.Series("ObjectId", np.arange(1, len(rows) + 1)))


def write_benchmarks(
    writer: LandingWriter,
    *,
    seed: int,
    spar: SparData,
    computed: Mapping[tuple[str, str], float | None],
    education: Mapping[str, pl.DataFrame],
) -> tuple[int, int]:
    """Write benchmarking and reference files; returns rows written to each."""
    rng = rng_for(seed, FAMILY)
    n = 0
    ks2 = _lg_inform_ks2(education, rng)
    writer.write_bytes(
        f"{FAMILY}/lginform_ks2_expected_standard.csv", encode_text(rows_csv_text(LG_HEADER, ks2))
    )
    corporate = _lg_inform_corporate(spar, computed, rng)
    writer.write_bytes(
        f"{FAMILY}/lginform_corporate_indicators.csv", encode_text(rows_csv_text(LG_HEADER, corporate))
    )
    oflog = _oflog(spar, computed, rng)
    writer.write_bytes(f"{FAMILY}/oflog_indicators.csv", encode_text(csv_text(oflog)))
    n += len(ks2) + len(corporate) + len(oflog)
    for year in ("2020/21", "2021/22", "2022/23", "2023/24", "2024/25"):
        text = _ons_life_satisfaction(spar, year, rng)
        # Saved from Excel: CRLF between records, bare LF inside quoted notes, no final newline.
        data = encode_text(text, final_newline=False)
        writer.write_bytes(f"{FAMILY}/ons_life_satisfaction_table1_{_fy_dash(year)}.csv", data)
        n += text.count("\r\n") - 6
    # Its own random stream, so adding it changed none of the files above.
    fingertips = _fingertips_smoking(spar, rng_for(seed, FAMILY, "fingertips"))
    writer.write_bytes(
        f"{FAMILY}/fingertips_indicators-CountyUA.data.csv",
        encode_text(rows_csv_text(FINGERTIPS_HEADER, fingertips, line_terminator="\r\n")),
    )
    n += len(fingertips)

    wards = _ward_lookup()
    writer.write_bytes(f"{REFERENCE}/ward_lookup.csv", encode_text(csv_text(wards)))
    las = _la_lookup()
    writer.write_bytes(f"{REFERENCE}/la_lookup.csv", encode_text(csv_text(las), bom=True))
    comparators = pl.DataFrame(
        {
            "area_code": [c.code for c in COMPARATORS],
            "area_name": [c.name for c in COMPARATORS],
            "comparator_of": OWN.code,
        }
    )
    writer.write_bytes(f"{REFERENCE}/comparator_councils.csv", encode_text(csv_text(comparators)))
    themes = pl.DataFrame(
        {
            "theme_code": [t.code for t in THEMES],
            "theme_name": [t.name for t in THEMES],
            "owning_director": [t.owning_director for t in THEMES],
        }
    )
    writer.write_bytes(f"{REFERENCE}/corporate_themes.csv", encode_text(csv_text(themes)))
    return n, len(wards) + len(las) + len(comparators) + len(themes)
