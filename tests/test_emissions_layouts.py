"""Every DESNZ/BEIS local authority emissions layout conforms to components only, and each authority-year's
components add up to the file's own Grand Total (within the rounding of its cells) or go to quarantine.

Expected values are read from the files with the csv module, independently of the code under test.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import polars as pl
import pytest

from assets.quality import EXPECTATIONS_ROOT
from kpi_lake.conform.emissions import EMISSIONS, EMISSIONS_SCHEMA, conform_emissions
from kpi_lake.quality import validate_table
from kpi_lake.quality.suites import load_suite
from kpi_lake.raw_files import read_raw_file
from kpi_lake.sample_data._common import LandingWriter
from kpi_lake.sample_data.emissions import FULL_FILE, write_emissions
from resources.azure import AzureStorage
from resources.lake import DeltaLake

SUBSET = "emissions/beis_2005-19_local_co2_subset_wide.csv"
NOT_EMISSIONS = ("Region/Country", "Second Tier Authority", "Local Authority", "Code", "Year")
LULUCF_PARTS = ("Forest land", "Cropland", "Grassland", "Wetlands", "Settlements", "Harvested Wood Products")


def published(path: Path) -> list[dict[str, str]]:
    """The authorities' rows of a wide table (title row above the header), by header, with the csv module."""
    with open(path, encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.reader(handle))
    header = [h.strip() for h in rows[1]]
    found = [dict(zip(header, row, strict=False)) for row in rows[2:] if any(row)]
    return [r for r in found if not r["Local Authority"].endswith("Total") and r["Code"]]


def number(text: str) -> float:
    return float(text.replace(",", ""))


def component_headers(header: list[str]) -> list[str]:
    """Components by the publisher's own structure: neither identifiers, totals nor per-head/area columns."""
    return [
        h
        for h in header
        if h not in NOT_EMISSIONS
        and "Total" not in h
        and h != "LULUCF Net Emissions"
        and not h.startswith(("Population", "Per Capita", "Area", "Emissions per"))
    ]


def assert_reconciles(rows: pl.DataFrame, records: list[dict[str, str]], measure: str) -> None:
    """Every authority-year of the file is in silver, and its rows add up to its Grand Total within half a
    printed decimal (0.05 kt) per cell."""
    components = component_headers(list(records[0]))
    expected = pl.DataFrame(
        {
            "local_authority_code": [r["Code"] for r in records],
            "calendar_year": [int(r["Year"]) for r in records],
            "grand_total": [number(r["Grand Total"]) for r in records],
        },
        schema_overrides={"calendar_year": pl.Int32},
    )
    summed = rows.group_by("local_authority_code", "calendar_year").agg(pl.col(measure).sum(), pl.len())
    compared = expected.join(summed, on=["local_authority_code", "calendar_year"], how="left")
    assert compared.height == len(records)
    assert (compared["len"] == len(components)).all(), compared.filter(pl.col("len") != len(components))
    off = compared.filter((pl.col(measure) - pl.col("grand_total")).abs() > 0.05 * (len(components) + 1))
    assert off.height == 0, off.head()


def assert_cells_equal(rows: pl.DataFrame, records: list[dict[str, str]], measure: str, picks: dict) -> None:
    for record in records[:: max(1, len(records) // 40)]:
        of_row = rows.filter(
            pl.col("local_authority_code") == record["Code"], pl.col("calendar_year") == int(record["Year"])
        )
        for header, (sector, sub_sector) in picks.items():
            cell = of_row.filter(pl.col("sub_sector") == sub_sector)
            assert cell.height == 1, (record["Code"], record["Year"], sub_sector)
            assert cell["sector"].item() == sector
            assert cell[measure].item() == number(record[header]), (record["Code"], record["Year"], header)


def gx_failures(tmp_path: Path, rows: pl.DataFrame) -> list[str]:
    """Silver's suite run on these rows as the pipeline runs it: the names of the failed checks."""
    lake = DeltaLake(root=str(tmp_path / "lake"), azure=AzureStorage())
    lake.overwrite(EMISSIONS, rows)
    suite = load_suite(EXPECTATIONS_ROOT / "silver/open_data/emissions.yml", EXPECTATIONS_ROOT)
    report = validate_table(lake, suite, "emissions-layouts")
    return [f"{o.name}: {o.unexpected_count} rows" for o in report.failures() if o.kind == "gx"]


@pytest.fixture(scope="module")
def full_landing(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("landing")
    write_emissions(LandingWriter(root), seed=20240601)
    return root


def conform_file(path: Path, relative: str):
    return conform_emissions(co2_wide=read_raw_file(path, source_file=relative).frame.lazy())


# ---- the real subset table -----------------------------------------------------------------------------------
def test_real_subset_table_reconciles_and_passes_its_suite(real_samples: Path, tmp_path: Path):
    result = conform_file(real_samples / SUBSET, SUBSET)
    records = published(real_samples / SUBSET)
    assert result.quarantine.height == 0  # no legitimate row is held back
    assert_reconciles(result.rows.filter(pl.col("local_authority_code").str.contains(r"^[EWSN]\d{8}$")),
                      records, "within_scope_kt_co2e")  # fmt: skip
    assert_cells_equal(result.rows, records, "within_scope_kt_co2e", {
        "Industry Gas": ("Industry", "Industry Gas"),
        "Agriculture": ("Industry", "Agriculture"),  # the CO2 tables count it in their Industry Total
        "Road Transport (Minor roads)": ("Transport", "Road Transport (Minor roads)"),
        "Domestic 'Other Fuels'": ("Domestic", "Domestic 'Other'"),
    })  # fmt: skip
    assert not result.rows["sub_sector"].str.contains("(?i)total").any()
    assert gx_failures(tmp_path, result.rows) == []


# ---- the full table (generated in the real layout) -------------------------------------------------------------
def test_full_table_holds_components_only_and_reconciles(full_landing: Path, tmp_path: Path):
    result = conform_file(full_landing / FULL_FILE, FULL_FILE)
    records = published(full_landing / FULL_FILE)
    rows = result.rows
    assert result.quarantine.height == 0
    assert rows.schema == pl.Schema(EMISSIONS_SCHEMA)
    assert "LULUCF Net Emissions" not in set(rows["sub_sector"])  # the total of the six, not a seventh source
    assert set(rows.filter(pl.col("sector") == "LULUCF")["sub_sector"]) == set(LULUCF_PARTS)
    assert rows["within_scope_kt_co2e"].null_count() == rows.height  # the full table is territorial
    assert_reconciles(rows, records, "territorial_kt_co2e")
    assert_cells_equal(rows, records, "territorial_kt_co2e", {
        "Net Emissions: Forest land": ("LULUCF", "Forest land"),
        "Net Emissions: Harvested Wood Products": ("LULUCF", "Harvested Wood Products"),
        "Road Transport (Motorways)": ("Transport", "Road Transport (Motorways)"),
        "Diesel Railways": ("Transport", "Diesel Railways"),
        "Large Industrial Installations": ("Industry", "Large Industrial Installations"),
    })  # fmt: skip
    # Net sinks: an authority's net emissions are negative once land use is counted, and that is kept.
    net = rows.group_by("local_authority_code", "calendar_year").agg(pl.col("territorial_kt_co2e").sum())
    sinks = {r["Code"] for r in records if number(r["Grand Total"]) < 0}
    assert sinks and set(net.filter(pl.col("territorial_kt_co2e") < 0)["local_authority_code"]) == sinks
    assert gx_failures(tmp_path, rows) == []


def _rewrite(source: Path, target: Path, edit) -> None:
    with open(source, encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.reader(handle))
    edit(rows)
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target, "w", encoding="utf-8", newline="") as handle:
        csv.writer(handle, lineterminator="\r\n").writerows(rows)


def test_components_that_do_not_add_up_are_quarantined_with_the_gap(full_landing: Path, tmp_path: Path):
    header_at = 1
    state: dict = {}

    def inflate_one_cell(rows: list[list[str]]) -> None:
        header = [h.strip() for h in rows[header_at]]
        column = header.index("Domestic Gas")
        row = next(r for r in rows[header_at + 1 :] if r[3] and r[4] == "2012")
        state["code"] = row[3]
        row[column] = f"{number(row[column]) + 7.5:.1f}"  # its totals are left as published
        cells = dict(zip(header, row, strict=False))
        state["gap"] = sum(number(cells[h]) for h in component_headers(header)) - number(cells["Grand Total"])

    relative = "emissions/full_tampered.csv"
    _rewrite(full_landing / FULL_FILE, tmp_path / relative, inflate_one_cell)
    result = conform_file(tmp_path / relative, relative)
    held = result.quarantine
    assert held.height == 1
    reason = held["reason"].item()
    assert held["column"].item() == "grand_total" and "rounding of the cells" in reason, reason
    stated = re.search(r"a gap of (-?[\d.]+) kt", reason)
    assert stated and float(stated.group(1)) == pytest.approx(state["gap"], abs=1e-6)
    assert 7.5 - 0.05 * 26 <= state["gap"] <= 7.5 + 0.05 * 26
    # The whole authority-year is held back, never half of it; every other authority-year is published.
    kept = result.rows.filter(pl.col("local_authority_code") == state["code"])
    assert 2012 not in set(kept["calendar_year"]) and kept["calendar_year"].n_unique() == 14
    assert result.rows.select("local_authority_code", "calendar_year").n_unique() == 20 * 15 - 1


def test_a_renamed_total_is_still_found_by_its_numbers(full_landing: Path, tmp_path: Path):
    def rename_totals(rows: list[list[str]]) -> None:
        header = rows[1]
        header[header.index("LULUCF Net Emissions")] = "Land use, net flux"  # no sector word, no "total"
        header[header.index("Transport Total")] = "Transport (all)"

    relative = "emissions/full_renamed.csv"
    _rewrite(full_landing / FULL_FILE, tmp_path / relative, rename_totals)
    renamed = conform_file(tmp_path / relative, relative)
    original = conform_file(full_landing / FULL_FILE, FULL_FILE)
    assert renamed.quarantine.height == 0
    keep = ["local_authority_code", "calendar_year", "sector", "sub_sector", "territorial_kt_co2e"]
    assert renamed.rows.select(keep).equals(original.rows.select(keep))


def test_footnotes_prefixes_and_case_in_headers_map_to_desnz_sectors(tmp_path: Path):
    # The 2005-17 tables: lettered columns, "Industry and Commercial" as one sector, LULUCF as one column.
    header = ["Region/Country", "Second Tier Authority", "Local Authority", "Code", "Year",
              "A. Industry and Commercial Electricity", "E. Agriculture", "Industry and Commercial Total",
              "F. Domestic Electricity [note 2]", "Domestic Total", "N. LULUCF Net Emissions", "Grand Total",
              "Population ('000s, mid-year estimate)"]  # fmt: skip
    path = tmp_path / "emissions" / "co2_2005-17.csv"
    path.parent.mkdir(parents=True)
    with open(path, "w", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerows([
            header,
            ["North East", "Darlington", "Darlington", "E06000005", "2005",
             "120.4", "3.1", "123.5", "100.4", "100.4", "-2.5", "221.4", "100.3"],
        ])  # fmt: skip
    result = conform_file(path, "emissions/co2_2005-17.csv")
    assert result.quarantine.height == 0
    got = {
        r["sub_sector"]: (r["sector"], r["territorial_kt_co2e"]) for r in result.rows.iter_rows(named=True)
    }
    assert got == {
        "Industry and Commercial Electricity": ("Industry and Commercial", 120.4),
        "Agriculture": ("Industry and Commercial", 3.1),
        "Domestic Electricity": ("Domestic", 100.4),
        "LULUCF Net Emissions": ("LULUCF", -2.5),  # published alone, so it is the sector's one component
    }
