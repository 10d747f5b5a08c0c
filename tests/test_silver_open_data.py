"""Silver open data (emissions, education, benchmarks) on the real published files and on bad input.

Every frame reaches the conformers the way the pipeline builds it: ``read_raw_file(...).frame``, concatenated
diagonally for several files, as a LazyFrame. Expected values are read from the raw files with the csv
module, independently of the code under test.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from assets.silver import open_data
from assets.silver.factory import silver_asset
from kpi_lake.conform import QUARANTINE_SCHEMA, ConformError
from kpi_lake.conform.benchmarks import BENCHMARK_SCHEMA, conform_benchmarks
from kpi_lake.conform.education import EDUCATION_KEY, EDUCATION_SCHEMA, conform_education
from kpi_lake.conform.emissions import EMISSIONS_KEY, EMISSIONS_SCHEMA, conform_emissions
from kpi_lake.raw_files import RawFileError, read_raw_file
from kpi_lake.tables import TableRef
from resources.azure import AzureStorage
from resources.lake import DeltaLake

WIDE = "emissions/beis_2005-19_local_co2_subset_wide.csv"
KS2 = "education/ks2_la.csv"
ABSENCE = "education/absence_by_term.csv"
ABSENCE_META = "education/absence_by_term.meta.csv"
NEET = "education/UD_NEETNK_LA_dashboard_2025.csv"
OFLOG = "benchmarks/oflog_asc_data.csv"
TRAFFORD_KS2 = "benchmarks/trafford_expected_standard_ks2.csv"
LIFE_SATISFACTION = "survey/ons_life_satisfaction_table1.csv"

GHG_HEADER = [
    "Country", "Country Code", "Region", "Region Code", "Second Tier Authority", "Local Authority",
    "Local Authority Code", "Calendar Year", "LA GHG Sector", "LA GHG Sub-sector", "Greenhouse gas",
    "Territorial emissions (kt CO2e)", "CO2 emissions within the scope of influence of LAs (kt CO2e)",
    "Mid-year Population (thousands)", "Area (km2)",
]  # fmt: skip
CO2_HEADER = [
    "Country", "Country Code", "Region", "Region Code", "Second Tier Authority", "Local Authority",
    "Local Authority Code", "Calendar Year", "LA CO2 Sector", "LA CO2 Sub-sector",
    "Territorial emissions (kt CO2)", "CO2 emissions within the scope of influence of LAs (kt CO2)",
    "Mid-year Population (thousands)", "Area (km2)",
]  # fmt: skip
DARLINGTON = ["England", "E92000001", "North East", "E12000001", "Darlington", "Darlington", "E06000005"]
EES_HEADER = ["time_period", "time_identifier", "geographic_level", "country_code", "country_name", "region_code",
              "region_name", "old_la_code", "new_la_code", "la_name"]  # fmt: skip
EES_DARLINGTON = ["E92000001", "England", "E12000001", "North East", "841", "E06000005", "Darlington"]


# ---- helpers ----------------------------------------------------------------------------------------------
def raw(real_samples: Path, relative: str) -> pl.DataFrame:
    """A real file as bronze holds it."""
    return read_raw_file(real_samples / relative, source_file=relative).frame


def bronze(*frames: pl.DataFrame) -> pl.LazyFrame:
    """Several files' frames as one bronze table: the union of their columns."""
    return pl.concat(frames, how="diagonal").lazy()


def records(path: Path, header_row: int = 1) -> list[dict[str, str]]:
    """A CSV's rows by header, read with the csv module (not the code under test)."""
    with open(path, encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.reader(handle))
    header = [h.strip() for h in rows[header_row - 1]]
    return [dict(zip(header, row, strict=False)) for row in rows[header_row:] if any(row)]


def landed(
    tmp_path: Path,
    relative: str,
    header: list[str],
    rows: list[list[str]],
    *,
    encoding: str = "utf-8",
    cut_last: int = 0,
) -> pl.DataFrame:
    """Write a CSV as a publisher would (optionally in another encoding, or cut short) and read it as bronze."""
    path = tmp_path / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding=encoding, newline="") as handle:
        csv.writer(handle, lineterminator="\r\n").writerows([header, *rows])
    if cut_last:
        path.write_bytes(path.read_bytes()[:-cut_last])
    return read_raw_file(path, source_file=relative).frame


def one(frame: pl.DataFrame, **equals: object) -> dict:
    """The single row matching every column = value."""
    matched = frame.filter(*(pl.col(name) == value for name, value in equals.items()))
    assert matched.height == 1, f"{matched.height} rows match {equals}"
    return matched.row(0, named=True)


def assert_unique(frame: pl.DataFrame, key: tuple[str, ...]) -> None:
    duplicates = frame.group_by(list(key)).len().filter(pl.col("len") > 1)
    assert duplicates.height == 0, duplicates.head(3)


# ---- emissions ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def wide_emissions(real_samples: Path):
    return conform_emissions(co2_wide=raw(real_samples, WIDE).lazy())


def test_wide_darlington_2005_grand_total_is_the_sum_of_its_rows(real_samples: Path, wide_emissions):
    published = one_record(records(real_samples / WIDE, header_row=2), Code="E06000005", Year="2005")
    rows = wide_emissions.rows.filter(
        pl.col("local_authority_code") == "E06000005", pl.col("calendar_year") == 2005
    )
    sub_sector_columns = [
        h for h in published if h not in ("Region/Country", "Second Tier Authority", "Local Authority", "Code", "Year")
        and "Total" not in h and not h.startswith(("Population", "Per Capita", "Area", "Emissions per"))
    ]  # fmt: skip
    assert rows.height == len(sub_sector_columns) == 17
    assert not rows["sub_sector"].str.contains("Total").any()
    # Each cell is rounded to 0.1 kt in the file, so the sum may differ from the total by the rounding.
    total = float(published["Grand Total"].replace(",", ""))
    assert rows["within_scope_kt_co2e"].sum() == pytest.approx(total, abs=0.05 * rows.height)
    for sector, column in [("Domestic", "Domestic Total"), ("Transport", "Transport Total")]:
        in_sector = rows.filter(pl.col("sector") == sector)["within_scope_kt_co2e"].sum()
        assert in_sector == pytest.approx(float(published[column]), abs=0.15)
    gas = one(rows, sub_sector="Industry Gas")  # the header was "Industry Gas " (trailing space)
    assert gas["within_scope_kt_co2e"] == float(published["Industry Gas"]) == 101.3
    assert gas["sector"] == "Industry" and gas["greenhouse_gas"] == "CO2"
    assert one(rows, sub_sector="Industry 'Other'")["within_scope_kt_co2e"] == float(
        published["Industry 'Other Fuels'"]
    )
    assert gas["population_thousands"] == 100.3 and gas["area_km2"] == 197.5
    # The subset table measures emissions within the scope of influence, not territorial emissions.
    assert rows["territorial_kt_co2e"].null_count() == rows.height
    assert gas["source_release"] == "BEIS wide CO2 subset (beis_2005-19_local_co2_subset_wide.csv)"
    assert gas["source_file"] == WIDE and gas["source_row"] == 3


def one_record(rows: list[dict[str, str]], **equals: str) -> dict[str, str]:
    matched = [r for r in rows if all(r.get(k) == v for k, v in equals.items())]
    assert len(matched) == 1, matched
    return matched[0]


def test_wide_file_never_double_counts_any_authority_year(real_samples: Path, wide_emissions):
    totals = raw(real_samples, WIDE).select(
        pl.col("code").alias("local_authority_code"),
        pl.col("year").cast(pl.Int32).alias("calendar_year"),
        pl.col("grand_total").str.replace_all(",", "").cast(pl.Float64).alias("grand_total"),
    )
    summed = wide_emissions.rows.group_by("local_authority_code", "calendar_year").agg(
        pl.col("within_scope_kt_co2e").sum(), pl.len().alias("rows")
    )
    compared = summed.join(totals, on=["local_authority_code", "calendar_year"])
    authorities = summed.filter(~pl.col("local_authority_code").str.starts_with("UNALLOCATED:"))
    assert compared.height == authorities.height == 5685  # every authority-year of the file
    assert (compared["rows"] == 17).all()
    off = compared.filter((pl.col("within_scope_kt_co2e") - pl.col("grand_total")).abs() > 0.05 * 17)
    assert off.height == 0, off.head()


def test_wide_file_rows_are_all_accounted_for(real_samples: Path, wide_emissions):
    bronze_rows = raw(real_samples, WIDE)
    total_rows = bronze_rows.filter(
        pl.col("local_authority").str.ends_with("Total") | pl.col("region_country").str.ends_with("Total")
    ).height
    blank_rows = bronze_rows.filter(pl.all_horizontal(pl.col("^[a-z].*$").is_null())).height
    quarantined = wide_emissions.quarantine
    assert (
        wide_emissions.rows.height / 17 + quarantined.height + total_rows + blank_rows == bronze_rows.height
    )
    assert quarantined.height == 0
    # DESNZ's pseudo-authorities have no ONS code but are real emissions: kept under a code from their name.
    unallocated = wide_emissions.rows.filter(pl.col("local_authority_code").str.starts_with("UNALLOCATED:"))
    assert set(unallocated["local_authority_code"]) == {
        "UNALLOCATED:large_elec_users_high_voltage_lines_unknown_location",
        "UNALLOCATED:unallocated",
    }
    assert unallocated.select("local_authority_code", "calendar_year").n_unique() == 30
    assert dict(quarantined.schema) == QUARANTINE_SCHEMA
    assert wide_emissions.rows.schema == pl.Schema(EMISSIONS_SCHEMA)
    assert_unique(wide_emissions.rows, EMISSIONS_KEY)


def test_releases_overlap_newest_wins_per_authority_year_and_gas(real_samples: Path, tmp_path: Path):
    ghg = landed(tmp_path, "emissions/ghg_2005-22.csv", GHG_HEADER, [
        [*DARLINGTON, "2019", "Industry", "Industry 'Other'", "CO2", "10.0", "10.0", "107.4", "197.5"],
        [*DARLINGTON, "2019", "Industry", "Industry Gas ", "CO2", "20.0", "20.0", "107.4", "197.5"],
        [*DARLINGTON, "2019", "LULUCF", "Forest land", "CO2", "-5.5", "0", "107.4", "197.5"],
        [*DARLINGTON, "2019", "Agriculture", "Agriculture Livestock", "CH4", "3.0", "0", "107.4", "197.5"],
    ])  # fmt: skip
    co2 = landed(tmp_path, "emissions/co2_2005-19.csv", CO2_HEADER, [
        [*DARLINGTON, "2019", "Industry", "Industry 'Other Fuels'", "11.0", "11.0", "107.4", "197.5"],
        [*DARLINGTON, "2018", "Industry", "Industry 'Other Fuels'", "12.0", "12.0", "106.8", "197.5"],
        [*DARLINGTON, "2018", "Industry", "Agriculture", "1.0", "1.0", "106.8", "197.5"],
    ])  # fmt: skip
    result = conform_emissions(ghg_long=bronze(ghg, co2), co2_wide=raw(real_samples, WIDE).lazy())
    rows = result.rows
    assert_unique(rows, EMISSIONS_KEY)
    darlington = rows.filter(pl.col("local_authority_code") == "E06000005")

    in_2019 = darlington.filter(pl.col("calendar_year") == 2019).sort("sub_sector")
    assert in_2019["source_release"].unique().to_list() == ["DESNZ long GHG (ghg_2005-22.csv)"]
    assert in_2019["sub_sector"].to_list() == ["Agriculture Livestock", "Forest land", "Industry 'Other'",
                                               "Industry Gas"]  # fmt: skip
    assert one(in_2019, sub_sector="Forest land")["territorial_kt_co2e"] == -5.5  # LULUCF sinks are negative
    assert one(in_2019, sub_sector="Agriculture Livestock")["greenhouse_gas"] == "CH4"

    in_2018 = darlington.filter(pl.col("calendar_year") == 2018)
    assert in_2018["source_release"].unique().to_list() == ["BEIS long CO2 (co2_2005-19.csv)"]
    assert one(in_2018, sub_sector="Industry 'Other'")["territorial_kt_co2e"] == 12.0  # name in current words
    assert in_2018["greenhouse_gas"].unique().to_list() == ["CO2"]

    in_2017 = darlington.filter(pl.col("calendar_year") == 2017)
    assert in_2017.height == 17 and in_2017["source_release"].str.starts_with("BEIS wide CO2 subset").all()
    # Other authorities keep every year of the wide table.
    assert rows.filter(pl.col("local_authority_code") == "E06000001").height == 17 * 15
    assert result.quarantine.height == 0  # the wide file's unallocated rows are kept, under UNALLOCATED codes


def test_emissions_bad_input_is_quarantined_and_the_rest_goes_on(tmp_path: Path):
    good = [*DARLINGTON, "2020", "Domestic", "Domestic Gas", "CO2", "150.1", "150.1", "107.8", "197.5"]
    ghg = landed(tmp_path, "emissions/ghg.csv", [*GHG_HEADER, "Notes"], [  # an extra column is ignored
        [*good, "revised"],
        [*DARLINGTON, "2020", "Domestic", "Domestic Electricity", "CO2", "twelve", "12", "107.8", "197.5", ""],
        [*DARLINGTON, "202O", "Domestic", "Domestic 'Other'", "CO2", "5.0", "5.0", "107.8", "197.5", ""],
        [*good, "same key again"],
        [*DARLINGTON, "2020", "Commercial", "Commercial Gas", "CO2", "20.5", "20.5", "107.8", "197.5", ""],
        [*DARLINGTON, "2020", "Commercial", "Commercial Electricity", "CO2", "40.2", "40.2", "107.8", "197.5", ""],
        [*DARLINGTON, "2020", "Transport", "Road Transport (A roads)", "CO2", "88.0", "88.0", "107.8", "197.5", ""],
    ], cut_last=12)  # fmt: skip  # the last row is cut mid-line, as an interrupted download leaves it
    result = conform_emissions(ghg_long=ghg.lazy())
    assert result.rows["sub_sector"].to_list() == ["Commercial Electricity", "Commercial Gas", "Domestic Gas"]
    assert one(result.rows, sub_sector="Domestic Gas")["territorial_kt_co2e"] == 150.1
    quarantined = {row["source_row"]: row for row in result.quarantine.iter_rows(named=True)}
    assert set(quarantined) == {3, 4, 5, 8}
    assert quarantined[3]["column"] == "territorial_emissions_kt_co2e" and quarantined[3]["value"] == "twelve"
    assert quarantined[3]["reason"] == "territorial emissions is not a number"
    assert quarantined[3]["source_file"] == "emissions/ghg.csv"
    assert json.loads(quarantined[3]["raw_record"])["la_ghg_sub_sector"] == "Domestic Electricity"
    assert quarantined[4]["column"] == "calendar_year" and quarantined[4]["value"] == "202O"
    assert (
        quarantined[5]["reason"].startswith("duplicate")
        and "row 2 of emissions/ghg.csv" in quarantined[5]["reason"]
    )
    assert quarantined[8]["reason"].startswith("malformed row") and "truncated" in quarantined[8]["reason"]


def test_emissions_wide_text_in_a_cell_quarantines_that_cell_only(tmp_path: Path):
    header = [
        "Region/Country",
        "Second Tier Authority",
        "Local Authority",
        "Code",
        "Year",
        "Domestic Gas",
        "Domestic Electricity",
        "Domestic Total",
        "Grand Total",
        "Population ('000s, mid-year estimate)",
    ]
    wide = landed(tmp_path, "emissions/wide.csv", header, [
        ["North East", "Darlington", "Darlington", "E06000005", "2005", "n/k", "100.4", "254.4", "254.4", "100.3"],
    ])  # fmt: skip
    result = conform_emissions(co2_wide=wide.lazy())
    assert one(result.rows, sub_sector="Domestic Electricity")["within_scope_kt_co2e"] == 100.4
    bad = result.quarantine.row(0, named=True)
    assert result.quarantine.height == 1
    assert (bad["column"], bad["value"], bad["source_row"]) == ("domestic_gas", "n/k", 2)


def test_emissions_encoding_missing_column_empty_and_header_only(tmp_path: Path):
    welsh = ["Wales", "W92000004", "Wales", "W92000004", "Ynys Môn", "Ynys Môn", "W06000001"]
    cp1252 = landed(tmp_path, "emissions/ghg_cp1252.csv", GHG_HEADER,
                    [[*welsh, "2021", "Domestic", "Domestic Gas", "CO2", "1,234.5", "1234.5", "69.0", "714.0"]],
                    encoding="cp1252")  # fmt: skip
    rows = conform_emissions(ghg_long=cp1252.lazy()).rows
    assert rows["local_authority_name"].to_list() == ["Ynys Môn"]
    assert rows["territorial_kt_co2e"].to_list() == [1234.5]

    no_gas = landed(
        tmp_path,
        "emissions/ghg_no_gas.csv",
        [h for h in GHG_HEADER if h != "Greenhouse gas"],
        [[*DARLINGTON, "2020", "Domestic", "Domestic Gas", "150.1", "150.1", "107.8", "197.5"]],
    )
    with pytest.raises(ConformError, match=r"emissions/ghg_no_gas\.csv has no column greenhouse_gas"):
        conform_emissions(ghg_long=bronze(cp1252, no_gas))

    empty = tmp_path / "emissions" / "empty.csv"
    empty.write_bytes(b"")
    with pytest.raises(RawFileError, match=r"emissions/empty\.csv: the file is empty"):
        read_raw_file(empty, source_file="emissions/empty.csv")
    header_only = landed(tmp_path, "emissions/header_only.csv", GHG_HEADER, [])
    for result in (conform_emissions(ghg_long=header_only.lazy()), conform_emissions()):
        assert result.rows.height == 0 and result.rows.schema == pl.Schema(EMISSIONS_SCHEMA)
        assert result.quarantine.height == 0


# ---- education ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def education(real_samples: Path):
    data = bronze(raw(real_samples, KS2), raw(real_samples, ABSENCE), raw(real_samples, NEET))
    return conform_education(ees_data=data, ees_metadata=raw(real_samples, ABSENCE_META).lazy())


def test_ks2_value_and_suppression_match_the_raw_cells(real_samples: Path, education):
    published = records(real_samples / KS2)
    cell = one_record(
        published, time_period="201819", new_la_code="E06000005", social_care_group="CINO at 31 March"
    )
    row = one(
        education.rows,
        publication="ks2_la",
        time_period="201819",
        geography_code="E06000005",
        indicator="pt_rwm_met_expected_standard",
        filters='{"social_care_group":"CINO at 31 March","version":"Final"}',
    )
    assert row["value"] == float(cell["pt_rwm_met_expected_standard"]) == 45.0
    assert row["suppression_code"] is None
    assert (row["geographic_level"], row["geography_name"], row["region_code"]) == (
        "Local authority", "Darlington", "E12000001")  # fmt: skip
    assert (str(row["period_start"]), str(row["period_end"])) == ("2018-09-01", "2019-08-31")

    suppressed = one_record(published, time_period="202425", new_la_code="E06000005",
                            social_care_group="CINO at 31 March")  # fmt: skip
    assert suppressed["avg_read_progress_score"] == "x"
    row = one(
        education.rows,
        publication="ks2_la",
        time_period="202425",
        geography_code="E06000005",
        indicator="avg_read_progress_score",
        filters='{"social_care_group":"CINO at 31 March","version":"Revised"}',
    )
    assert row["value"] is None and row["suppression_code"] == "x"
    # Without a meta file, text columns are filters and number columns indicators.
    ks2 = education.rows.filter(pl.col("publication") == "ks2_la")
    assert not ks2["indicator"].is_in(["version", "social_care_group"]).any()
    assert ks2["unit"].null_count() == ks2.height


def test_absence_rate_matches_and_its_unit_comes_from_the_meta_file(real_samples: Path, education):
    cell = one_record(records(real_samples / ABSENCE), time_period="201617", new_la_code="E06000005",
                      school_type="State-funded primary", term="Autumn term")  # fmt: skip
    row = one(education.rows, publication="absence_by_term", time_period="201617", geography_code="E06000005",
              indicator="sess_overall_percent",
              filters='{"school_type":"State-funded primary","term":"Autumn term"}')  # fmt: skip
    assert row["value"] == float(cell["sess_overall_percent"])
    assert (row["unit"], row["label"]) == ("%", "Overall absence rate")
    dot = one(
        education.rows,
        publication="absence_by_term",
        time_period="201617",
        geographic_level="National",
        indicator="sess_auth_ext_holiday",
        filters='{"school_type":"State-funded primary","term":"Total"}',
    )
    assert dot["value"] is None and dot["suppression_code"] == "."  # older files use '.' for missing


def test_neet_not_known_percent_for_one_council(real_samples: Path, education):
    cell = one_record(records(real_samples / NEET), new_la_code="E06000005")
    row = one(education.rows, publication="UD_NEETNK_LA_dashboard_2025", geography_code="E06000005",
              indicator="neet_not_known_percent")  # fmt: skip
    assert row["value"] == float(cell["NEET_not_known_percent"])
    assert row["filters"] == '{"age":"16-17"}'
    assert (str(row["period_start"]), str(row["period_end"])) == ("2025-01-01", "2025-12-31")
    national = one(education.rows, publication="UD_NEETNK_LA_dashboard_2025", geographic_level="National",
                   indicator="neet_not_known_percent")  # fmt: skip
    assert national["geography_code"] == "E92000001" and national["region_code"] is None


def test_education_table_is_unique_and_complete(real_samples: Path, education):
    assert_unique(education.rows, EDUCATION_KEY)
    assert education.rows.schema == pl.Schema(EDUCATION_SCHEMA)
    assert education.quarantine.height == 0
    counts = dict(education.rows.group_by("publication").len().iter_rows())
    # Every non-blank indicator cell of each file is a row: rows x indicator columns.
    assert counts == {"ks2_la": 3444 * 33, "absence_by_term": 9680 * 23, "UD_NEETNK_LA_dashboard_2025": 6118}


def test_education_meta_names_match_published_case_and_financial_years(real_samples: Path, tmp_path: Path):
    meta = landed(
        tmp_path,
        "education/UD_NEETNK_LA_dashboard_2025.meta.csv",
        ["col_name", "col_type", "label", "indicator_unit"],
        [["NEET_not_known_percent", "Indicator", "NEET and not known", "%"], ["Age", "Filter", "Age", ""]],
    )
    rows = conform_education(ees_data=raw(real_samples, NEET).lazy(), ees_metadata=meta.lazy()).rows
    row = one(rows, geography_code="E06000005", indicator="neet_not_known_percent")
    assert (row["unit"], row["label"]) == ("%", "NEET and not known")

    spend = landed(tmp_path, "education/la_spend.csv", [*EES_HEADER, "phase", "spend_per_pupil"], [
        ["202425", "Financial year", "Local authority", *EES_DARLINGTON, "Primary – maintained", "5,123"],
    ])  # fmt: skip
    row = conform_education(ees_data=spend.lazy()).rows.row(0, named=True)
    assert (str(row["period_start"]), str(row["period_end"])) == ("2024-04-01", "2025-03-31")
    assert row["value"] == 5123.0 and json.loads(row["filters"]) == {"phase": "Primary – maintained"}


def test_education_bad_input(tmp_path: Path):
    header = [*EES_HEADER, "school_type", "pupils", "pt_meeting"]
    rows = [
        ["202324", "Academic year", "Local authority", *EES_DARLINGTON, "Primary", "1200", "61"],
        ["202324", "Academic year", "Local authority", *EES_DARLINGTON, "Secondary", "900", "sixty"],
        ["202324", "Academic year", "Local authority", *EES_DARLINGTON, "Primary", "1200", "61"],
        ["202324", "Academic year", "Ward", *EES_DARLINGTON, "Special", "80", "12"],
        ["202324", "Academic year", "Local authority", *EES_DARLINGTON, "Nursery", "40", "52"],
        ["202324", "Academic year", "Local authority", *EES_DARLINGTON, "All-through", "300", "58"],
        ["202324", "Academic year", "Local authority", *EES_DARLINGTON, "Special", "85", "30"],
    ]
    meta = landed(tmp_path, "education/attainment.meta.csv", ["col_name", "col_type", "label", "indicator_unit"],
                  [["school_type", "Filter", "School type", ""], ["pupils", "Indicator", "Pupils", ""],
                   ["pt_meeting", "Indicator", "Meeting the standard", "%"]])  # fmt: skip
    data = landed(tmp_path, "education/attainment.csv", header, rows, encoding="cp1252", cut_last=4)
    result = conform_education(ees_data=data.lazy(), ees_metadata=meta.lazy())
    kept = {
        (json.loads(r["filters"])["school_type"], r["indicator"]): r["value"] for r in result.rows.to_dicts()
    }
    # The good cell of the row with text in it goes on; its bad cell does not.
    assert kept == {("Primary", "pupils"): 1200.0, ("Primary", "pt_meeting"): 61.0, ("Secondary", "pupils"): 900.0,
                    ("Nursery", "pupils"): 40.0, ("Nursery", "pt_meeting"): 52.0, ("All-through", "pupils"): 300.0,
                    ("All-through", "pt_meeting"): 58.0}  # fmt: skip
    held = {(r["source_row"], r["column"]): r for r in result.quarantine.to_dicts()}
    assert held[(3, "pt_meeting")]["value"] == "sixty"
    assert held[(3, "pt_meeting")]["source_file"] == "education/attainment.csv"
    assert held[(4, "pt_meeting")]["reason"].startswith("duplicate")
    assert held[(4, "pupils")]["reason"].startswith("duplicate")
    assert "no geography code for a Ward row" in held[(5, None)]["reason"]
    assert held[(8, None)]["reason"].startswith("malformed row")  # the cut last line

    with pytest.raises(ConformError, match=r"education/no_level\.csv has no column geographic_level"):
        no_level = landed(tmp_path, "education/no_level.csv", ["time_period", "time_identifier", "pupils"],
                          [["202324", "Academic year", "5"]])  # fmt: skip
        conform_education(ees_data=bronze(data, no_level))
    header_only = landed(tmp_path, "education/header_only.csv", header, [])
    for empty in (conform_education(ees_data=header_only.lazy()), conform_education()):
        assert empty.rows.height == 0 and empty.rows.schema == pl.Schema(EDUCATION_SCHEMA)


# ---- benchmarks ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def benchmarks(real_samples: Path):
    files = [raw(real_samples, f) for f in (OFLOG, TRAFFORD_KS2, LIFE_SATISFACTION)]
    return conform_benchmarks(bronze(*files))


def test_ons_life_satisfaction_spreadsheet_export(real_samples: Path, benchmarks):
    published = one_record(
        records(real_samples / LIFE_SATISFACTION, header_row=6), **{"Area Code": "E06000001"}
    )
    row = one(benchmarks.rows, geography_code="E06000001", source_layout="spreadsheet")
    assert (
        row["value"]
        == float(
            published["Mean satisfaction with your life nowadays scored 0 (not at all) - 10 (completely)"]
        )
        == 7.33
    )
    assert row["geography_name"] == "Hartlepool" and row["source_row"] == 7
    # The indicator's name and the period are only in the title rows above the header.
    with open(real_samples / LIFE_SATISFACTION, encoding="utf-8-sig", newline="") as handle:
        title = {r[0]: r[1] for r in csv.reader(handle) if r and r[0].endswith(":")}
    assert row["indicator"] == title["Indicator:"] == "Average life satisfaction rating"
    assert row["period"] == title["Date:"] == "04/2020-03/2021"
    assert row["measure"] == "Mean satisfaction with your life nowadays scored 0 not at all 10 completely"
    corby = one(benchmarks.rows, geography_code="E07000150", source_layout="spreadsheet")
    assert corby["value"] is None
    assert corby["value_note"] == ("not available (na); Obsolete code since 2021 (replaced by E06000061 "
                                   "North Northamptonshire)")  # fmt: skip


def test_oflog_value_median_and_rank_order(real_samples: Path, benchmarks):
    published = one_record(records(real_samples / OFLOG), **{"Financial year": "2016-17",
                           "Local authority code": "E08000009", "Code": "ASC1"})  # fmt: skip
    row = one(benchmarks.rows, geography_code="E08000009", period="2016-17", indicator_code="ASC1")
    assert row["value"] == float(published["Value"]) == 7.6
    assert row["median"] == float(published["MEDIAN"])
    assert row["rank_order"] == published["rank_order"] == "desc"
    assert row["polarity"] == "Higher is better"
    assert (row["indicator"], row["comparator_group"], row["source_layout"]) == (
        "Outcome, ASC Carer Quality of Life", "Metropolitan Districts", "oflog")  # fmt: skip
    unranked = benchmarks.rows.filter(pl.col("indicator_code") == "ASC7")
    assert unranked["rank_order"].null_count() == unranked.height  # Oflog writes None: not ranked
    blank = one(benchmarks.rows, geography_code="E06000053", period="2016-17", indicator_code="ASC1")
    assert blank["value"] is None and blank["value_note"] == "no value published (blank)"


def test_trafford_long_file_na_is_a_null_with_its_reason(real_samples: Path, benchmarks):
    published = one_record(records(real_samples / TRAFFORD_KS2), area_code="E06000060", period="2015/16")
    assert published["value"] == "NA"
    row = one(benchmarks.rows, geography_code="E06000060", period="2015/16", source_layout="long")
    assert row["value"] is None and row["value_note"] == "not available (NA)"
    trafford = one(benchmarks.rows, geography_code="E08000009", period="2015/16", source_layout="long")
    expected = one_record(records(real_samples / TRAFFORD_KS2), area_code="E08000009", period="2015/16")
    assert trafford["value"] == float(expected["value"])
    assert (trafford["measure"], trafford["unit"]) == ("Percentage", "Persons")


def test_benchmark_layouts_are_detected_per_file_by_columns(real_samples: Path, tmp_path: Path, benchmarks):
    layouts = dict(benchmarks.rows.group_by("source_file").agg(pl.col("source_layout").first()).iter_rows())
    assert layouts == {OFLOG: "oflog", TRAFFORD_KS2: "long", LIFE_SATISFACTION: "spreadsheet"}
    counts = dict(benchmarks.rows.group_by("source_file").len().iter_rows())
    assert counts == {OFLOG: 6376, TRAFFORD_KS2: 96, LIFE_SATISFACTION: 382}
    assert benchmarks.quarantine.height == 0
    assert benchmarks.rows.schema == pl.Schema(BENCHMARK_SCHEMA)
    # The file name says nothing: an Oflog export saved under an ONS-looking name is still read as Oflog.
    renamed = (
        raw(real_samples, OFLOG)
        .head(5)
        .with_columns(pl.lit("benchmarks/ons_table_1.csv").alias("_source_file"))
    )
    assert conform_benchmarks(renamed.lazy()).rows["source_layout"].unique().to_list() == ["oflog"]


def test_benchmarks_bad_input(tmp_path: Path):
    header = [
        "area_code",
        "area_name",
        "period",
        "indicator",
        "measure",
        "unit",
        "value",
        "lower_ci",
        "upper_ci",
    ]
    indicator = "Adults who are physically active"
    long = landed(tmp_path, "benchmarks/active.csv", header, [
        ["E06000005", "Darlington", "2022/23", indicator, "Percentage", "Persons", "64.1", "60.2", "68.0"],
        ["E06000001", "Hartlepool", "2022/23", indicator, "Percentage", "Persons", "61,2", "57.0", "65.3"],
        ["E06000002", "Middlesbrough", "2022/23", indicator, "Percentage", "Persons", "58.0", "low", "62.9"],
        ["E06000005", "Darlington", "2022/23", indicator, "Percentage", "Persons", "64.0", "60.1", "67.9"],
        ["E06000004", "Stockton-on-Tees", "2022/23", indicator, "Percentage", "Persons", "c", "c", "c"],
        ["E06000003", "Redcar and Cleveland", "2022/23", indicator, "Percentage", "Persons", "66.6", "62.0", "71.3"],
    ], encoding="cp1252", cut_last=8)  # fmt: skip
    result = conform_benchmarks(long.lazy())
    values = dict(result.rows.select("geography_code", "value").iter_rows())
    # "61,2" reads as 612 (a thousands separator) - plausible text, so it is not quarantined; "low" is a marker.
    assert values == {"E06000005": 64.1, "E06000001": 612.0, "E06000002": 58.0, "E06000004": None}
    assert one(result.rows, geography_code="E06000004")["value_note"] == "suppressed: confidential (c)"
    held = {(r["source_row"], r["column"]): r["reason"] for r in result.quarantine.to_dicts()}
    assert (
        held[(5, "value")].startswith("duplicate") and "row 2 of benchmarks/active.csv" in held[(5, "value")]
    )
    assert held[(7, None)].startswith("malformed row")

    text_value = landed(
        tmp_path,
        "benchmarks/text.csv",
        header,
        [
            ["E06000005", "Darlington", "2022/23", indicator, "Percentage", "Persons", "n/k", "", ""],
            ["E06000001", "Hartlepool", "2022/23", indicator, "Percentage", "Persons", "61.0", "x1", ""],
        ],
    )
    result = conform_benchmarks(text_value.lazy())
    assert result.rows.height == 0
    held = {(r["source_row"], r["column"]): r["value"] for r in result.quarantine.to_dicts()}
    assert held == {(2, "value"): "n/k", (3, "lower_ci"): "x1"}

    no_period = landed(
        tmp_path,
        "benchmarks/no_period.csv",
        [h for h in header if h != "period"],
        [["E06000005", "Darlington", indicator, "Percentage", "Persons", "64.1", "", ""]],
    )
    with pytest.raises(
        ConformError, match=r"benchmarks/no_period\.csv looks like a long .* no column for period"
    ):
        conform_benchmarks(no_period.lazy())
    unknown = landed(tmp_path, "benchmarks/notes.csv", ["title", "comment"], [["a", "b"]])
    with pytest.raises(ConformError, match=r"benchmarks/notes\.csv is in no benchmark layout"):
        conform_benchmarks(unknown.lazy())
    header_only = landed(tmp_path, "benchmarks/header_only.csv", header, [])
    for empty in (conform_benchmarks(header_only.lazy()), conform_benchmarks()):
        assert empty.rows.height == 0 and empty.rows.schema == pl.Schema(BENCHMARK_SCHEMA)


# ---- the Dagster assets, materialised on a real lake ------------------------------------------------------------
def test_documented_columns_are_the_conformed_columns():
    schemas = {"emissions": EMISSIONS_SCHEMA, "education": EDUCATION_SCHEMA, "benchmarks": BENCHMARK_SCHEMA}
    for spec in open_data.SILVER_TABLES:
        assert list(spec.columns) == list(schemas[spec.ref.table]), spec.ref
        assert set(spec.primary_key) <= set(spec.columns)


def test_silver_open_data_assets_materialise_from_a_bronze_lake(real_samples: Path, tmp_path: Path):
    lake = DeltaLake(root=str(tmp_path / "lake"), azure=AzureStorage())
    landed_bronze = {
        ("emissions", "co2_wide"): [WIDE],
        ("education", "ees_data"): [KS2, ABSENCE, NEET],
        ("education", "ees_metadata"): [ABSENCE_META],
        ("benchmarks", "indicator_files"): [OFLOG, TRAFFORD_KS2, LIFE_SATISFACTION],
    }  # no long emissions file has landed: the asset conforms without that table
    for (source, table), files in landed_bronze.items():
        lake.overwrite(TableRef("bronze", source, table), pl.concat([raw(real_samples, f) for f in files],
                                                                   how="diagonal"))  # fmt: skip
    result = dg.materialize(
        [silver_asset(spec) for spec in open_data.SILVER_TABLES], resources={"lake": lake}
    )
    assert result.success

    emissions = lake.scan(TableRef("silver", "open_data", "emissions")).collect()
    darlington = emissions.filter(
        pl.col("local_authority_code") == "E06000005", pl.col("calendar_year") == 2005
    )
    assert darlington["within_scope_kt_co2e"].sum() == pytest.approx(761.8, abs=0.85)
    assert lake.scan(TableRef("silver", "open_data", "emissions_quarantine")).collect().height == 0
    education = lake.scan(TableRef("silver", "open_data", "education")).collect()
    assert education.height == 3444 * 33 + 9680 * 23 + 6118
    benchmarks = lake.scan(TableRef("silver", "open_data", "benchmarks")).collect()
    assert one(benchmarks, geography_code="E06000001", source_layout="spreadsheet")["value"] == 7.33
    for key in (["silver", "open_data", "emissions"], ["silver", "open_data", "education"]):
        metadata = result.asset_materializations_for_node("silver_open_data_" + key[-1])[0].metadata
        assert metadata["dagster/row_count"].value > 0
