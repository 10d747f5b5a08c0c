"""Silver reference data (geographies, comparator groups, themes) on the real ONS and CIPFA files and bad input.

Frames reach the conformers the way the pipeline builds them: ``read_raw_file(...).frame`` as a LazyFrame.
Expected values are read from the raw files with the csv module.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from assets.silver import reference
from assets.silver.factory import silver_asset
from kpi_lake.conform import ConformError
from kpi_lake.conform.reference import (
    COMPARATOR_SCHEMA,
    GEOGRAPHY_SCHEMA,
    THEME_SCHEMA,
    conform_comparator_groups,
    conform_geographies,
    conform_themes,
)
from kpi_lake.raw_files import RawFileError, read_raw_file
from kpi_lake.tables import TableRef
from resources.azure import AzureStorage
from resources.lake import DeltaLake

WARDS = "geography/Ward_to_LAD_Dec2019_UK.csv"
LA_LOOKUP = "geography/LTLA-UTLA_Apr23_Lookup_England-Wales.csv"
CIPFA = "benchmarks/trafford_cipfa2021.csv"
THEMES_HEADER = ["theme_code", "theme_name", "owning_director", "director_title"]


def raw(real_samples: Path, relative: str) -> pl.DataFrame:
    return read_raw_file(real_samples / relative, source_file=relative).frame


def records(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8-sig", newline="") as handle:
        return list(csv.DictReader(handle))


def landed(tmp_path: Path, relative: str, header: list[str], rows: list[list[str]], *, encoding: str = "utf-8",
           cut_last: int = 0) -> pl.DataFrame:  # fmt: skip
    path = tmp_path / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding=encoding, newline="") as handle:
        csv.writer(handle, lineterminator="\r\n").writerows([header, *rows])
    if cut_last:
        path.write_bytes(path.read_bytes()[:-cut_last])
    return read_raw_file(path, source_file=relative).frame


def one(frame: pl.DataFrame, **equals: object) -> dict:
    matched = frame.filter(*(pl.col(name) == value for name, value in equals.items()))
    assert matched.height == 1, f"{matched.height} rows match {equals}"
    return matched.row(0, named=True)


@pytest.fixture(scope="module")
def geographies(real_samples: Path):
    return conform_geographies(
        ward_lookup=raw(real_samples, WARDS).lazy(), la_lookup=raw(real_samples, LA_LOOKUP).lazy()
    )


def test_a_ward_has_its_district_as_parent(real_samples: Path, geographies):
    published = next(r for r in records(real_samples / WARDS) if r["WD19CD"] == "E05008942")
    ward = one(geographies.rows, geography_code="E05008942")
    assert (
        (ward["geography_name"], ward["geography_level"])
        == (published["WD19NM"], "ward")
        == ("Burn Valley", "ward")
    )
    assert (ward["parent_code"], ward["parent_level"]) == (published["LAD19CD"], "local_authority")
    assert ward["valid_from_year"] == 2019 and (ward["source_file"], ward["source_row"]) == (WARDS, 2)
    parent = one(geographies.rows, geography_code=ward["parent_code"])
    assert parent["geography_name"] == published["LAD19NM"] == "Hartlepool"


def test_districts_have_their_county_and_unitaries_are_one_row(real_samples: Path, geographies):
    lookup = records(real_samples / LA_LOOKUP)
    district = next(r for r in lookup if r["LTLA23CD"].startswith("E07"))
    row = one(geographies.rows, geography_code=district["LTLA23CD"])
    assert (row["geography_level"], row["parent_code"], row["parent_level"]) == (
        "local_authority", district["UTLA23CD"], "upper_tier")  # fmt: skip
    assert row["valid_from_year"] == 2023  # the 2023 lookup is newer than the wards' 2019 districts
    county = one(geographies.rows, geography_code=district["UTLA23CD"])
    assert (county["geography_name"], county["geography_level"]) == (district["UTLA23NM"], "upper_tier")
    # A unitary authority is its own upper tier: one row, a local authority without a parent.
    hartlepool = one(geographies.rows, geography_code="E06000001")
    assert (hartlepool["geography_level"], hartlepool["parent_code"]) == ("local_authority", None)
    # Districts abolished before 2023 (Corby) are still known from the 2019 ward lookup.
    assert one(geographies.rows, geography_code="E07000150")["valid_from_year"] == 2019


def test_geographies_cover_every_code_once(real_samples: Path, geographies):
    rows = geographies.rows
    assert rows["geography_code"].is_unique().all()
    assert rows.schema == pl.Schema(GEOGRAPHY_SCHEMA)
    ward_codes = {r["WD19CD"] for r in records(real_samples / WARDS)}
    la_codes = {r["LTLA23CD"] for r in records(real_samples / LA_LOOKUP)}
    assert set(rows.filter(pl.col("geography_level") == "ward")["geography_code"]) == ward_codes
    assert la_codes <= set(rows.filter(pl.col("geography_level") == "local_authority")["geography_code"])
    assert geographies.quarantine.height == 0


def test_newer_lookup_names_win_and_parents_come_from_the_lookup_that_has_them(tmp_path: Path):
    wards = landed(tmp_path, "reference/ward_lookup.csv", ["WD24CD", "WD24NM", "LAD24CD", "LAD24NM"],
                   [["E05009001", "Abbey", "E07000008", "Cambridge City"]])  # fmt: skip
    districts = landed(tmp_path, "reference/la_lookup.csv", ["LTLA23CD", "LTLA23NM", "UTLA23CD", "UTLA23NM"],
                       [["E07000008", "Cambridge", "E10000003", "Cambridgeshire"]])  # fmt: skip
    rows = conform_geographies(ward_lookup=wards.lazy(), la_lookup=districts.lazy()).rows
    cambridge = one(rows, geography_code="E07000008")
    assert (cambridge["geography_name"], cambridge["valid_from_year"]) == ("Cambridge City", 2024)
    assert (cambridge["parent_code"], cambridge["parent_level"]) == ("E10000003", "upper_tier")
    assert one(rows, geography_code="E05009001")["parent_code"] == "E07000008"


def test_geography_bad_input(tmp_path: Path):
    header = ["FID", "WD22CD", "WD22NM", "LAD22CD", "LAD22NM"]
    wards = landed(tmp_path, "reference/wards_2022.csv", header, [
        ["1", "W05000001", "Aberffraw", "W06000001", "Ynys Môn"],
        ["2", "E0500894", "Burn Valley", "E06000001", "Hartlepool"],  # a digit short
        ["3", "W05000001", "Aberffraw again", "W06000001", "Ynys Môn"],
        ["4", "E05008943", "De Bruce", "E06000001", "Hartlepool"],
        ["5", "E05008945", "Foggy Furze", "E06000001", "Hartlepool"],
        ["6", "E05008946", "Hart", "E06000001", "Hartlepool"],
        ["7", "E05008944", "Fens and Rossmere", "E06000001", "Hartlepool"],
    ], encoding="cp1252", cut_last=14)  # fmt: skip  # last row cut mid-line
    result = conform_geographies(ward_lookup=wards.lazy())
    assert one(result.rows, geography_code="W06000001")["geography_name"] == "Ynys Môn"
    wards = set(result.rows.filter(pl.col("geography_level") == "ward")["geography_code"])
    assert wards == {"W05000001", "E05008943", "E05008945", "E05008946"}
    held = {r["source_row"]: r for r in result.quarantine.to_dicts()}
    assert (held[3]["column"], held[3]["value"]) == ("wd22cd", "E0500894")
    assert held[3]["reason"].startswith("not an ONS geography code")
    assert held[3]["source_file"] == "reference/wards_2022.csv"
    assert json.loads(held[3]["raw_record"])["wd22nm"] == "Burn Valley"
    assert (
        held[4]["reason"].startswith("duplicate") and "row 2 of reference/wards_2022.csv" in held[4]["reason"]
    )
    assert "truncated" in held[8]["reason"]

    no_district = landed(
        tmp_path, "reference/wards_only.csv", ["WD19CD", "WD19NM"], [["E05008942", "Burn Valley"]]
    )
    with pytest.raises(ConformError, match=r"reference/wards_only\.csv has no LADyyCD or LTLAyyCD column"):
        conform_geographies(ward_lookup=no_district.lazy())
    header_only = landed(tmp_path, "reference/header_only.csv", header, [])
    for empty in (conform_geographies(ward_lookup=header_only.lazy()), conform_geographies()):
        assert empty.rows.height == 0 and empty.rows.schema == pl.Schema(GEOGRAPHY_SCHEMA)
    zero_bytes = tmp_path / "reference" / "wards_empty.csv"
    zero_bytes.write_bytes(b"")
    with pytest.raises(RawFileError, match=r"wards_empty\.csv: the file is empty"):
        read_raw_file(zero_bytes, source_file="reference/wards_empty.csv")


def test_cipfa_comparators_as_published(real_samples: Path):
    result = conform_comparator_groups(raw(real_samples, CIPFA).lazy())
    published = records(real_samples / CIPFA)
    rows = result.rows
    assert rows["comparator_code"].to_list() == [r["area_code"] for r in published]
    assert rows["comparator_name"].to_list() == [r["area_name"] for r in published]
    assert rows["group_name"].unique().to_list() == ["CIPFA nearest neighbours"]
    assert (
        rows["own_geography_code"].null_count() == rows["rank"].null_count() == 15
    )  # the file gives neither
    assert rows.schema == pl.Schema(COMPARATOR_SCHEMA) and result.quarantine.height == 0


def test_comparator_groups_with_own_code_rank_and_bad_rows(tmp_path: Path):
    header = ["own_area_code", "area_code", "area_name", "rank"]
    statistical = landed(tmp_path, "reference/statistical_neighbours.csv", header, [
        ["E06000005", "E06000001", "Hartlepool", "1"],
        ["E06000005", "E06000002", "Middlesbrough", "second"],
        ["E06000005", "E06000001", "Hartlepool", "3"],
        ["E06000005", "n/a", "Somewhere", "4"],
        ["E06000005", "E06000004", "Stockton-on-Tees", "5"],
    ])  # fmt: skip
    result = conform_comparator_groups(statistical.lazy())
    row = one(result.rows, comparator_code="E06000001")
    assert (row["group_name"], row["own_geography_code"], row["rank"]) == (
        "DfE statistical neighbours",
        "E06000005",
        1,
    )
    assert result.rows.height == 2
    held = {r["source_row"]: (r["column"], r["reason"]) for r in result.quarantine.to_dicts()}
    assert held[3] == ("rank", "rank is not a whole number")
    assert held[4][1].startswith("duplicate comparator")
    assert held[5] == ("area_code", "not an ONS geography code (a letter and eight digits)")

    # The project's own comparator export names the council in a comparator_of column.
    own = landed(tmp_path, "reference/comparator_councils.csv", ["area_code", "area_name", "comparator_of"],
                 [["E06009902", "Ashbury", "E06009901"]])  # fmt: skip
    row = conform_comparator_groups(own.lazy()).rows.row(0, named=True)
    assert (row["group_name"], row["own_geography_code"]) == ("CIPFA nearest neighbours", "E06009901")

    no_code = landed(tmp_path, "reference/cipfa_names.csv", ["area_name"], [["Swindon"]])
    with pytest.raises(
        ConformError, match=r"reference/cipfa_names\.csv has no column comparator_code or area_code"
    ):
        conform_comparator_groups(no_code.lazy())


def test_themes_have_exactly_one_owner(tmp_path: Path):
    themes = landed(tmp_path, "reference/corporate_themes.csv", THEMES_HEADER, [
        ["CYP", "Children and Young People", "Helen Ashcroft", "Executive Director: Children and Education"],
        ["ENV", "Environment and Sustainability", "Fiona Calloway", "Director of Environment and Climate"],
        ["HCW", "Health, Care and Wellbeing", "", ""],
        ["TRC", "Transport and Connectivity", "Gareth Bellamy", "Director of Transport"],
        ["TRC", "Transport and Connectivity", "Joanne Pritchard", "Director of Housing and Communities"],
        ["ENV", "Environment and Sustainability", "Fiona Calloway", ""],
        ["EDO", "Effective Development Organisation", "Rachel Okonkwo-Hale", "Executive Director: Resources"],
    ], encoding="cp1252")  # fmt: skip
    result = conform_themes(themes.lazy())
    assert result.rows["theme_code"].to_list() == ["CYP", "EDO", "ENV"]
    env = one(result.rows, theme_code="ENV")
    assert (env["owning_director"], env["director_title"], env["source_row"]) == (
        "Fiona Calloway", "Director of Environment and Climate", 3)  # fmt: skip
    held = {r["source_row"]: r for r in result.quarantine.to_dicts()}
    assert set(held) == {4, 5, 6}
    assert held[4]["reason"] == "theme HCW has no owning director"
    assert (
        held[5]["reason"]
        == held[6]["reason"]
        == ("theme TRC has 2 owning directors (Gareth Bellamy; Joanne Pritchard); exactly one is expected")
    )
    assert held[5]["column"] == "owning_director"
    assert result.rows.schema == pl.Schema(THEME_SCHEMA)

    no_owner = landed(
        tmp_path, "reference/themes_v2.csv", ["theme_code", "theme_name"], [["CYP", "Children"]]
    )
    with pytest.raises(ConformError, match=r"reference/themes_v2\.csv has no column owning_director"):
        conform_themes(no_owner.lazy())
    # All seven themes, the download cut off in the middle of the last row's owner.
    seven = [[code, name, owner, "Director"] for code, name, owner in [
        ("CYP", "Children and Young People", "Helen Ashcroft"), ("ECS", "Economy and Skills", "Marcus Oyelaran"),
        ("ENV", "Environment and Sustainability", "Fiona Calloway"),
        ("HCW", "Health, Care and Wellbeing", "Dr Samir Qureshi"),
        ("HAC", "Homes and Communities", "Joanne Pritchard"), ("TRC", "Transport and Connectivity", "Gareth Bellamy"),
        ("EDO", "Effective Development Organisation", "Rachel Okonkwo-Hale"),
    ]]  # fmt: skip
    cut = landed(
        tmp_path, "reference/themes_cut.csv", THEMES_HEADER, seven, cut_last=len(",Director") + 2 + 5
    )
    result = conform_themes(cut.lazy())
    assert result.rows.height == 6 and "EDO" not in result.rows["theme_code"].to_list()
    held = result.quarantine.row(0, named=True)
    assert held["source_row"] == 8 and "truncated" in held["reason"]


def test_documented_columns_are_the_conformed_columns():
    schemas = {
        "geographies": GEOGRAPHY_SCHEMA,
        "comparator_groups": COMPARATOR_SCHEMA,
        "themes": THEME_SCHEMA,
    }
    for spec in reference.SILVER_TABLES:
        assert list(spec.columns) == list(schemas[spec.ref.table]), spec.ref
        assert set(spec.primary_key) <= set(spec.columns)


def test_silver_reference_assets_materialise_from_a_bronze_lake(real_samples: Path, tmp_path: Path):
    lake = DeltaLake(root=str(tmp_path / "lake"), azure=AzureStorage())
    lake.overwrite(TableRef("bronze", "reference", "ward_lookup"), raw(real_samples, WARDS))
    lake.overwrite(TableRef("bronze", "reference", "la_lookup"), raw(real_samples, LA_LOOKUP))
    lake.overwrite(TableRef("bronze", "reference", "comparator_councils"), raw(real_samples, CIPFA))
    themes = landed(
        tmp_path,
        "reference/corporate_themes.csv",
        THEMES_HEADER,
        [["CYP", "Children and Young People", "Helen Ashcroft", ""], ["HCW", "Health", "", ""]],
    )
    lake.overwrite(TableRef("bronze", "reference", "corporate_themes"), themes)

    result = dg.materialize(
        [silver_asset(spec) for spec in reference.SILVER_TABLES], resources={"lake": lake}
    )
    assert result.success
    geographies = lake.scan(TableRef("silver", "reference", "geographies")).collect()
    assert one(geographies, geography_code="E05008942")["parent_code"] == "E06000001"
    comparators = lake.scan(TableRef("silver", "reference", "comparator_groups")).collect()
    assert comparators.height == 15
    assert lake.scan(TableRef("silver", "reference", "themes")).collect()["theme_code"].to_list() == ["CYP"]
    held = lake.scan(TableRef("silver", "reference", "themes_quarantine")).collect()
    assert held["reason"].to_list() == ["theme HCW has no owning director"]
