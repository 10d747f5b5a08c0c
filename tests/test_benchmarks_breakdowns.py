"""Breakdowns in silver benchmarks (sex, age, deprivation categories) on the real OHID Fingertips export, the
headline row the mart compares on, and every real sample of the benchmarks, education, reference and survey
families run through its expectation suite."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import polars as pl
import pytest

from assets.quality import EXPECTATIONS_ROOT
from kpi_lake.conform.benchmarks import BENCHMARK_KEY, conform_benchmarks
from kpi_lake.conform.education import conform_education
from kpi_lake.conform.reference import conform_comparator_groups, conform_geographies
from kpi_lake.quality import load_suite, validate_table
from kpi_lake.raw_files import read_raw_file
from kpi_lake.rules import comparator_statistics
from kpi_lake.sql_models import build_model, load_sql_models
from kpi_lake.tables import TableRef
from resources.azure import AzureStorage
from resources.lake import DeltaLake

FINGERTIPS = "benchmarks/fingertips_indicators-CountyUA.data.csv"
OFLOG = "benchmarks/oflog_asc_data.csv"
TRAFFORD_KS2 = "benchmarks/trafford_expected_standard_ks2.csv"
CIPFA = "benchmarks/trafford_cipfa2021.csv"
LIFE_SATISFACTION = "survey/ons_life_satisfaction_table1.csv"
GEOGRAPHY = ("geography/Ward_to_LAD_Dec2019_UK.csv", "geography/LTLA-UTLA_Apr23_Lookup_England-Wales.csv")
TRAFFORD = "E08000009"
CAMPYLOBACTER = "Campylobacter incidence rate/100,000"


def raw(real_samples: Path, relative: str) -> pl.DataFrame:
    return read_raw_file(real_samples / relative, source_file=relative).frame


def records(path: Path) -> list[dict[str, str]]:
    """The CSV's records by header, read with the csv module (not the code under test); row 2 is the first.
    Fingertips leaves the last (empty) field off some records: it reads as blank."""
    with open(path, encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.reader(handle))
    width = len(rows[0])
    return [
        dict(zip(rows[0], row + [""] * (width - len(row)), strict=True)) | {"_row": str(i)}
        for i, row in enumerate(rows[1:], start=2)
    ]


def number(cell: str) -> float | None:
    return float(cell) if cell.strip() else None


def filters_of(record: dict[str, str]) -> dict[str, str]:
    """The breakdown a Fingertips record should carry: its non-blank Sex, Age, Category Type and Category."""
    named = {"sex": "Sex", "age": "Age", "category_type": "Category Type", "category": "Category"}
    return {key: record[column].strip() for key, column in named.items() if record[column].strip()}


@pytest.fixture(scope="module")
def fingertips(real_samples: Path):
    return conform_benchmarks(raw(real_samples, FINGERTIPS).lazy())


# ---- the Fingertips export -------------------------------------------------------------------------------
def test_every_fingertips_record_is_kept_with_its_breakdown(real_samples: Path, fingertips):
    published = records(real_samples / FINGERTIPS)
    assert len(published) == 852
    assert fingertips.quarantine.height == 0
    rows = fingertips.rows
    assert rows.height == len(published)
    assert rows.group_by(list(BENCHMARK_KEY)).len()["len"].max() == 1
    by_row = {r["source_row"]: r for r in rows.to_dicts()}
    for record in published:  # every cell the silver row carries equals the raw cell
        row = by_row[int(record["_row"])]
        assert json.loads(row["filters"]) == filters_of(record)
        assert row["geography_code"] == record["Area Code"] and row["period"] == record["Time period"]
        assert row["indicator"] == record["Indicator Name"].strip() == CAMPYLOBACTER
        assert row["value"] == number(record["Value"])
        assert row["lower_ci"] == number(record["Lower CI 95.0 limit"])
        assert row["upper_ci"] == number(record["Upper CI 95.0 limit"])
        assert row["lower_ci_99_8"] == number(record["Lower CI 99.8 limit"])
        assert row["upper_ci_99_8"] == number(record["Upper CI 99.8 limit"])
        assert row["count"] == number(record["Count"])
        assert row["denominator"] == number(record["Denominator"])
        # The file's note, after why the value is missing where it is (Cornwall's figure is Isles of Scilly's).
        blank = "no value published (blank)" if not record["Value"] else None
        assert row["value_note"] == ("; ".join(n for n in (blank, record["Value note"]) if n) or None)
        assert row["compared_to_england"] == (record["Compared to England value or percentiles"] or None)
        assert row["compared_to_region"] == (record["Compared to Region value or percentiles"] or None)
        assert row["recent_trend"] == (record["Recent Trend"] or None)
    # The breakdown rows are there: 60 deprivation deciles for England, 306 in the 0-9 age band.
    categories = rows.filter(pl.col("filters").str.contains('"category_type"'))
    assert categories.height == sum(1 for r in published if r["Category Type"]) == 60
    assert rows.filter(pl.col("filters").str.contains("0-9 yrs")).height == 306


def test_the_headline_is_the_persons_all_ages_no_category_row(real_samples: Path, fingertips):
    headline_rows = {
        int(r["_row"])
        for r in records(real_samples / FINGERTIPS)
        if r["Sex"] == "Persons" and r["Age"] == "All ages" and not r["Category Type"]
    }
    chosen = fingertips.rows.filter("is_headline")
    assert set(chosen["source_row"]) == headline_rows and len(headline_rows) == 486
    # One headline per area and period; Trafford's 2016 figure is the one Fingertips shows for it.
    assert chosen.group_by("geography_code", "period").len()["len"].max() == 1
    trafford = chosen.filter(pl.col("geography_code") == TRAFFORD, pl.col("period") == "2016").row(
        0, named=True
    )
    assert trafford["filters"] == '{"age":"All ages","sex":"Persons"}'


def test_without_an_all_ages_row_the_indicators_own_age_band_is_the_headline(tmp_path: Path):
    path = tmp_path / "benchmarks" / "smoking.csv"
    path.parent.mkdir()
    header = ["Indicator ID", "Indicator Name", "Area Code", "Area Name", "Sex", "Age", "Category Type",
              "Category", "Time period", "Value", "Count", "Denominator"]  # fmt: skip
    name = "Smoking Prevalence in adults (18+) - current smokers (APS)"
    rows = [
        ["92443", name, "E08000009", "Trafford", "Persons", "18+ yrs", "", "", "2023", "9.8", "51", "520"],
        ["92443", name, "E08000009", "Trafford", "Male", "18+ yrs", "", "", "2023", "11.2", "29", "260"],
        ["92443", name, "E08000009", "Trafford", "Female", "18+ yrs", "", "", "2023", "8.4", "22", "260"],
        ["92443", name, "E08000009", "Trafford", "Persons", "18-64 yrs", "", "", "2023", "10.9", "40", "367"],
        ["92443", name, "E08000007", "Stockport", "Persons", "18+ yrs", "", "", "2023", "10.1", "55", "544"],
        # A true duplicate (same indicator, area, period and breakdown) is still quarantined.
        ["92443", name, "E08000007", "Stockport", "Persons", "18+ yrs", "", "", "2023", "10.4", "56", "539"],
    ]
    with open(path, "w", newline="") as handle:
        csv.writer(handle).writerows([header, *rows])
    result = conform_benchmarks(read_raw_file(path, source_file="benchmarks/smoking.csv").frame.lazy())
    headline = result.rows.filter("is_headline").sort("geography_code")
    assert headline.select("geography_code", "value").rows() == [("E08000007", 10.1), ("E08000009", 9.8)]
    assert result.rows.height == 5
    (held,) = result.quarantine.to_dicts()
    assert held["source_row"] == 7 and held["reason"].startswith("duplicate")
    assert "breakdown" in held["reason"] and "row 6 of benchmarks/smoking.csv" in held["reason"]


def test_a_quoted_line_break_stays_inside_one_record(real_samples: Path):
    text = (real_samples / FINGERTIPS).read_bytes()
    assert b'"Campylobacter incidence rate/100,000\n"' in text  # the published name ends in a line break
    bronze = raw(real_samples, FINGERTIPS)
    assert bronze.height == 852 < text.count(b"\n") - 1
    assert bronze["indicator_name"].unique().to_list() == [CAMPYLOBACTER + "\n"]
    assert bronze["_source_row"].to_list() == list(range(2, 854))


# ---- the mart's comparisons ----------------------------------------------------------------------------
def _comparator_statistics(real_samples: Path, tmp_path: Path, fingertips_rows: pl.DataFrame) -> pl.DataFrame:
    """kpi_benchmarks (the project's SQL model) built over silver benchmarks from ``fingertips_rows`` with
    Trafford and its CIPFA neighbours, then the mart's comparator statistics over them."""
    lake = DeltaLake(root=str(tmp_path / "lake"), azure=AzureStorage())
    lake.overwrite(
        TableRef("silver", "open_data", "benchmarks"), conform_benchmarks(fingertips_rows.lazy()).rows
    )
    groups = conform_comparator_groups(raw(real_samples, CIPFA).lazy()).rows
    lake.overwrite(
        TableRef("silver", "reference", "comparator_groups"),
        groups.with_columns(own_geography_code=pl.lit(TRAFFORD)),
    )
    mapping = pl.DataFrame(
        {"indicator": [CAMPYLOBACTER], "value_measure": [None], "filters": [None], "lower_ci_measure": [None],
         "upper_ci_measure": [None], "kpi_code": ["PH900"], "period_prefix": ["CY"], "period_suffix": [""],
         "priority": [1]},
        schema_overrides={c: pl.String for c in ("value_measure", "filters", "lower_ci_measure", "upper_ci_measure")},
    )  # fmt: skip
    lake.overwrite(TableRef("silver", "kpi_catalogue", "benchmark_kpi_indicators"), mapping)
    models = {m.name: m for m in load_sql_models(EXPECTATIONS_ROOT.parent / "dbt_like_sql")}
    build_model(models["kpi_benchmarks"], lake)
    values = lake.scan(TableRef("silver", "kpi_catalogue", "kpi_benchmarks")).collect()
    compared = values.filter(pl.col("geography_code").is_in([TRAFFORD, *groups["comparator_code"]]))
    return (
        comparator_statistics(compared.lazy().with_columns(polarity=pl.lit("Lower is better")))
        .collect()
        .sort("period_key", "geography_code")
    )


def test_comparator_statistics_ignore_breakdown_rows(real_samples: Path, tmp_path: Path):
    full = raw(real_samples, FINGERTIPS)
    headline_only = full.filter(
        pl.col("category_type").is_null() & (pl.col("age") == "All ages") & (pl.col("sex") == "Persons")
    )
    assert full.height - headline_only.height == 366
    with_breakdowns = _comparator_statistics(real_samples, tmp_path / "full", full)
    without = _comparator_statistics(real_samples, tmp_path / "headline", headline_only)
    assert with_breakdowns.equals(without)
    trafford = with_breakdowns.filter(pl.col("geography_code") == TRAFFORD, pl.col("period_key") == "CY2016")
    published = next(
        r
        for r in records(real_samples / FINGERTIPS)
        if r["Area Code"] == TRAFFORD and r["Time period"] == "2016" and r["Age"] == "All ages"
    )
    assert trafford["actual"].item() == float(published["Value"])
    assert trafford["lower_ci"].item() == float(published["Lower CI 95.0 limit"])
    assert trafford["comparator_count"].item() == 16  # Trafford and its 15 CIPFA neighbours


# ---- every real sample through its suite -----------------------------------------------------------------
def _real_silver(real_samples: Path) -> dict[TableRef, pl.DataFrame]:
    benchmark_files = [FINGERTIPS, OFLOG, TRAFFORD_KS2, LIFE_SATISFACTION]
    benchmarks = conform_benchmarks(
        pl.concat([raw(real_samples, f) for f in benchmark_files], how="diagonal").lazy()
    )
    education_files = sorted(
        f"education/{p.name}"
        for p in (real_samples / "education").glob("*.csv")
        if not p.name.endswith(".meta.csv")
    )
    meta = [f"education/{p.name}" for p in (real_samples / "education").glob("*.meta.csv")]
    education = conform_education(
        ees_data=pl.concat([raw(real_samples, f) for f in education_files], how="diagonal").lazy(),
        ees_metadata=pl.concat([raw(real_samples, f) for f in meta], how="diagonal").lazy(),
    )
    geographies = conform_geographies(
        ward_lookup=raw(real_samples, GEOGRAPHY[0]).lazy(), la_lookup=raw(real_samples, GEOGRAPHY[1]).lazy()
    )
    groups = conform_comparator_groups(raw(real_samples, CIPFA).lazy())
    conformed = {
        TableRef("silver", "open_data", "benchmarks"): benchmarks,
        TableRef("silver", "open_data", "education"): education,
        TableRef("silver", "reference", "geographies"): geographies,
        TableRef("silver", "reference", "comparator_groups"): groups,
    }
    for ref, result in conformed.items():
        assert result.quarantine.height == 0, (ref, result.quarantine.head(3).to_dicts())
    return {ref: result.rows for ref, result in conformed.items()}


def test_every_real_sample_passes_its_suite(real_samples: Path, tmp_path: Path):
    lake = DeltaLake(root=str(tmp_path / "lake"), azure=AzureStorage())
    tables = _real_silver(real_samples)
    for ref, rows in tables.items():
        lake.overwrite(ref, rows)
    failed = {}
    for ref in tables:
        suite = load_suite(EXPECTATIONS_ROOT / f"{ref.path}.yml", EXPECTATIONS_ROOT)
        report = validate_table(lake, suite, "real-samples")
        failures = [
            (o.name, o.unexpected_count, o.sample[:2] or o.message)
            for o in report.outcomes
            if not o.success and o.kind in ("gx", "relationship")
        ]
        if failures:
            failed[str(ref)] = failures
    assert not failed, failed
