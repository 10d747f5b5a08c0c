"""Attack cases on landed files: unreadable, mis-encoded, malformed, out-of-range and misnamed files.

Each case lands one hostile file next to good ones in a copy of the generated landing zone, materialises the
real bronze and silver assets of that family only, and checks: the good files of the same table land, the bad
thing is recorded with a reason naming the file (and row/column where it applies), nothing is silently
dropped or silently null, and a rerun changes nothing.
"""

from __future__ import annotations

import csv
import io
import random
import shutil
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from assets.bronze import FILE_TABLES, bronze_assets
from assets.silver import SILVER_TABLES, silver_asset
from kpi_lake.raw_files import SOURCE_FILE, read_raw_file
from kpi_lake.tables import TableRef
from pipelines.sensors import landing_files_sensor
from resources.lake import DeltaLake
from tests.pipeline_helpers import local_resources

SPAR_KEEP = ("kpi_definitions.csv", "spar_export_2024-25_Q2.csv", "spar_export_2024-25_Q3.csv")
GOOD_EXPORTS = [f"spar_net/{name}" for name in SPAR_KEEP[1:]]
KPI_VALUES = next(spec for spec in FILE_TABLES if spec.ref.path == "bronze/spar_net/kpi_values")
EES_DATA = next(spec for spec in FILE_TABLES if spec.ref.path == "bronze/education/ees_data")
SILVER_VALUES = TableRef("silver", "spar_net", "kpi_values")
SILVER_VALUES_QUARANTINE = TableRef("silver", "spar_net", "kpi_values_quarantine")
SILVER_EDUCATION = TableRef("silver", "open_data", "education")
SILVER_EDUCATION_QUARANTINE = TableRef("silver", "open_data", "education_quarantine")


def _family_assets(source: str, silver_paths: set[str]) -> list[dg.AssetsDefinition]:
    bronze = [a for a in bronze_assets if a.key.path[:2] == ["bronze", source]]
    silver = [silver_asset(spec) for spec in SILVER_TABLES if spec.ref.path in silver_paths]
    return bronze + silver


FAMILIES = {
    "spar_net": {"silver/spar_net/kpi_values", "silver/spar_net/kpi_definitions"},
    "education": {"silver/open_data/education"},
}


class Family:
    """One family's landing folder (a few good files) and a lake, materialised as the nightly job would."""

    def __init__(self, landing: Path, lake_root: Path, source: str) -> None:
        self.landing, self.source = landing, source
        self.folder = landing / source
        self.resources = local_resources(lake_root, landing)
        self.lake: DeltaLake = self.resources["lake"]
        self.assets = _family_assets(source, FAMILIES[source])

    def materialise(self) -> dg.ExecuteInProcessResult:
        result = dg.materialize(
            self.assets, resources=self.resources, instance=dg.DagsterInstance.ephemeral()
        )
        assert result.success
        return result

    def versions(self, refs: list[TableRef]) -> dict[str, int | None]:
        return {ref.path: self.lake.state(ref).version if self.lake.exists(ref) else None for ref in refs}

    def materialise_twice(self, refs: list[TableRef]) -> dg.ExecuteInProcessResult:
        """Materialise, then again: the rerun must write nothing to any of ``refs``."""
        result = self.materialise()
        before = self.versions(refs)
        self.materialise()
        assert self.versions(refs) == before, "a rerun with nothing new wrote again"
        return result

    def landed_files(self, ref: TableRef) -> set[str]:
        return set(self.lake.scan(ref).select(SOURCE_FILE).unique().collect()[SOURCE_FILE].to_list())


@pytest.fixture
def spar(landing_copy: Path, tmp_path: Path) -> Family:
    for path in (landing_copy / "spar_net").iterdir():
        if path.name not in SPAR_KEEP:
            path.unlink()
    return Family(landing_copy, tmp_path / "lake", "spar_net")


@pytest.fixture
def education(landing_copy: Path, tmp_path: Path) -> Family:
    for path in (landing_copy / "education").iterdir():
        if not path.name.startswith(("ks2_", "pupil_absence_")):
            path.unlink()
    return Family(landing_copy, tmp_path / "lake", "education")


def _export_rows(
    family: Family, name: str = "spar_export_2024-25_Q3.csv"
) -> tuple[list[str], list[list[str]]]:
    text = (family.folder / name).read_bytes().decode("cp1252")
    header, *rows = list(csv.reader(io.StringIO(text, newline="")))
    return header, rows


def _write_export(path: Path, header: list[str], rows: list[list[str]], delimiter: str = ",") -> None:
    buffer = io.StringIO(newline="")
    csv.writer(buffer, delimiter=delimiter, lineterminator="\r\n").writerows([header, *rows])
    path.write_text(buffer.getvalue(), encoding="utf-8", newline="")


def _rows_of_unit(header: list[str], rows: list[list[str]], unit: str, count: int) -> list[list[str]]:
    position = header.index("unit")
    chosen = [list(row) for row in rows if row[position] == unit][:count]
    assert len(chosen) == count, f"the sample export has fewer than {count} KPIs in {unit}"
    return chosen


def _set(header: list[str], row: list[str], **cells: str) -> list[str]:
    for column, value in cells.items():
        row[header.index(column)] = value
    return row


def _assert_bad_file(family: Family, spec, name: str, *needles: str) -> dict:
    """The file is recorded in the table's bad files with its hash and an error naming it, and not landed."""
    bad = family.lake.scan(spec.bad_files_ref).collect()
    record = bad.filter(pl.col("source_file") == name)
    assert record.height == 1, bad
    error = record["error"].item()
    assert error.startswith(f"{name}: ") and all(n in error for n in needles), error
    assert len(record["source_hash"].item()) == 64 and record["detected_at"].item() is not None
    assert name not in family.landed_files(spec.ref)
    return record.row(0, named=True)


def _quarantined(family: Family, ref: TableRef, name: str) -> pl.DataFrame:
    return family.lake.scan(ref).filter(pl.col("source_file") == name).collect()


def _bad_file_case(family: Family, name: str, content: bytes, *needles: str) -> dict:
    (family.folder / name.split("/", 1)[1]).write_bytes(content)
    result = family.materialise_twice([KPI_VALUES.ref, KPI_VALUES.bad_files_ref, SILVER_VALUES])
    assert set(GOOD_EXPORTS) <= family.landed_files(KPI_VALUES.ref)  # the good files still land
    record = _assert_bad_file(family, KPI_VALUES, name, *needles)
    metadata = result.asset_materializations_for_node("bronze__spar_net__kpi_values")[0].metadata
    assert metadata["bad_files"].value == 1 and name in metadata["bad_file_errors"].value
    # A corrected file (new hash) lands on the next run.
    header, rows = _export_rows(family)
    _write_export(family.landing / name, header, rows[:5])
    family.materialise()
    assert name in family.landed_files(KPI_VALUES.ref)
    return record


def test_empty_file(spar: Family):
    """A 0-byte SPAR.net export is set aside as a bad file; the other exports land."""
    _bad_file_case(spar, "spar_net/spar_export_zz_empty.csv", b"", "empty (0 bytes)")


def test_binary_garbage(spar: Family):
    """Binary garbage named like a SPAR.net export is set aside, naming the file and the byte."""
    garbage = random.Random(13).randbytes(8192)
    record = _bad_file_case(spar, "spar_net/spar_export_zz_garbage.csv", garbage, "not a text file")
    assert record["byte_offset"] is not None


def test_undefined_cp1252_bytes(spar: Family):
    """Bytes undefined in Windows-1252 (0x81) in an export: a bad file naming byte offset and line."""
    content = (spar.folder / "spar_export_2024-25_Q2.csv").read_bytes()
    at = content.index(b"\r\n", content.index(b"\r\n") + 2) + 10  # inside the second data row
    broken = content[:at] + b"\x81" + content[at:]
    record = _bad_file_case(spar, "spar_net/spar_export_zz_cp1252.csv", broken, f"byte {at} (0x81, line 3)")
    assert record["byte_offset"] == at and record["row"] == 3


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16"], ids=["no-bom", "bom"])
def test_utf16(spar: Family, encoding: str):
    """A UTF-16 export, with or without BOM, lands with its own columns and values (no junk columns)."""
    original = spar.folder / "spar_export_2024-25_Q3.csv"
    text = original.read_bytes().decode("cp1252")
    expected = read_raw_file(original, source_file="x").frame
    original.write_bytes(text.encode(encoding))
    spar.materialise_twice([KPI_VALUES.ref, SILVER_VALUES])
    name = "spar_net/spar_export_2024-25_Q3.csv"
    bronze = spar.lake.scan(KPI_VALUES.ref).filter(pl.col(SOURCE_FILE) == name).collect()
    columns = [c for c in expected.columns if not c.startswith("_")]
    assert [c for c in bronze.columns if not c.startswith("_")] == columns
    assert bronze.select(columns).equals(expected.select(columns))
    assert not spar.lake.exists(KPI_VALUES.bad_files_ref)
    silver = spar.lake.scan(SILVER_VALUES).filter(pl.col("source_file") == name).collect()
    assert silver.height == expected.height


def test_decimal_comma(spar: Family):
    """A ';'-separated export with decimal commas: 33,5 is 33.5 (never 335) and 1.234,5 is 1234.5."""
    header, rows = _export_rows(spar)
    percent = _rows_of_unit(header, rows, "%", 1)[0]
    number = _rows_of_unit(header, rows, "Number", 1)[0]
    _set(header, percent, actual="33,5%", target="40,0%")
    _set(header, number, actual="1.234,5", target="")
    _write_export(spar.folder / "spar_export_zz_european.csv", header, [percent, number], delimiter=";")
    spar.materialise_twice([KPI_VALUES.ref, SILVER_VALUES])
    silver = spar.lake.scan(SILVER_VALUES).filter(pl.col("source_file").str.contains("european")).collect()
    values = dict(zip(silver["kpi_code"], silver["actual"], strict=True))
    code = header.index("indicator_id")
    assert values == {percent[code]: 33.5, number[code]: 1234.5}
    assert silver.filter(pl.col("kpi_code") == percent[code])["target"].item() == 40.0


def test_nan_and_infinity(spar: Family):
    """NaN, inf and -Infinity as actuals are quarantined with the reason, never stored as floats."""
    header, rows = _export_rows(spar)
    chosen = _rows_of_unit(header, rows, "%", 3)
    for row, value in zip(chosen, ("NaN", "inf", "-Infinity"), strict=True):
        _set(header, row, actual=value)
    name = "spar_net/spar_export_zz_nan.csv"
    _write_export(spar.landing / name, header, chosen)
    spar.materialise_twice([KPI_VALUES.ref, SILVER_VALUES, SILVER_VALUES_QUARANTINE])
    quarantine = _quarantined(spar, SILVER_VALUES_QUARANTINE, name)
    assert sorted(quarantine["source_row"].to_list()) == [2, 3, 4]
    assert set(quarantine["column"]) == {"actual"}
    assert set(quarantine["reason"]) == {"actual is NaN or infinite: not a value"}
    silver = spar.lake.scan(SILVER_VALUES).collect()
    assert silver.filter(pl.col("actual").is_nan() | pl.col("actual").is_infinite()).height == 0
    assert silver.filter(pl.col("source_file") == name).height == 0


def test_impossible_timestamp(spar: Family):
    """last_updated_at '2024-13-01 10:00' is quarantined with the reason, not made null."""
    header, rows = _export_rows(spar)
    row = _set(header, list(rows[0]), last_updated_at="2024-13-01 10:00")
    name = "spar_net/spar_export_zz_timestamp.csv"
    _write_export(spar.landing / name, header, [row, list(rows[1])])
    spar.materialise_twice([KPI_VALUES.ref, SILVER_VALUES, SILVER_VALUES_QUARANTINE])
    quarantine = _quarantined(spar, SILVER_VALUES_QUARANTINE, name)
    assert quarantine.select("source_row", "column", "value").rows() == [
        (2, "last_updated_at", "2024-13-01 10:00")
    ]
    assert "not a valid date and time" in quarantine["reason"].item()
    assert spar.lake.scan(SILVER_VALUES).filter(pl.col("source_file") == name).collect().height == 1


def test_far_future_period(spar: Family):
    """A period in 2031/32 is quarantined as implausibly far in the future, with the reason."""
    header, rows = _export_rows(spar)
    quarterly = next(row for row in rows if row[header.index("period_label")].endswith("Q3"))
    row = _set(
        header, list(quarterly), period_label="2031/32 Q3", period_start="01/10/2031", period_end="31/12/2031"
    )
    name = "spar_net/spar_export_zz_future.csv"
    _write_export(spar.landing / name, header, [row])
    spar.materialise_twice([KPI_VALUES.ref, SILVER_VALUES, SILVER_VALUES_QUARANTINE])
    quarantine = _quarantined(spar, SILVER_VALUES_QUARANTINE, name)
    assert quarantine.select("source_row", "column").rows() == [(2, "period_label")]
    assert "implausibly far in the future" in quarantine["reason"].item()
    assert (
        spar.lake.scan(SILVER_VALUES).filter(pl.col("period_key").str.contains("2031")).collect().height == 0
    )


def test_missing_or_renamed_actual(spar: Family):
    """An export without its 'actual' column, or with it renamed 'outturn': a bad file, not nulls."""
    header, rows = _export_rows(spar)
    at = header.index("actual")
    _write_export(
        spar.folder / "spar_export_zz_missing.csv",
        header[:at] + header[at + 1 :],
        [row[:at] + row[at + 1 :] for row in rows],
    )
    _write_export(
        spar.folder / "spar_export_zz_renamed.csv", [*header[:at], "outturn", *header[at + 1 :]], rows
    )
    spar.materialise_twice([KPI_VALUES.ref, KPI_VALUES.bad_files_ref, SILVER_VALUES])
    assert set(GOOD_EXPORTS) <= spar.landed_files(KPI_VALUES.ref)
    for name in ("spar_net/spar_export_zz_missing.csv", "spar_net/spar_export_zz_renamed.csv"):
        record = _assert_bad_file(spar, KPI_VALUES, name, "required column 'actual' is missing; found: ")
        assert record["column"] == "actual"
    assert "outturn" in _assert_bad_file(spar, KPI_VALUES, "spar_net/spar_export_zz_renamed.csv")["error"]
    assert (
        spar.lake.scan(SILVER_VALUES).filter(pl.col("source_file").str.contains("_zz_")).collect().height == 0
    )


def test_percentage_over_100_spar(spar: Family):
    """A SPAR.net actual of 140 % for a KPI in % is quarantined with the reason."""
    header, rows = _export_rows(spar)
    row = _set(header, _rows_of_unit(header, rows, "%", 1)[0], actual="140%")
    name = "spar_net/spar_export_zz_percent.csv"
    _write_export(spar.landing / name, header, [row])
    spar.materialise_twice([KPI_VALUES.ref, SILVER_VALUES, SILVER_VALUES_QUARANTINE])
    quarantine = _quarantined(spar, SILVER_VALUES_QUARANTINE, name)
    assert quarantine.select("source_row", "column", "value").rows() == [(2, "actual", "140%")]
    assert quarantine["reason"].item() == "actual is outside 0-100 for a KPI whose unit is %"
    assert spar.lake.scan(SILVER_VALUES).filter(pl.col("source_file") == name).collect().height == 0


def test_negative_count_spar(spar: Family):
    """A negative actual for a KPI counted in Number is quarantined with the reason."""
    header, rows = _export_rows(spar)
    row = _set(header, _rows_of_unit(header, rows, "Number", 1)[0], actual="-5")
    name = "spar_net/spar_export_zz_negative.csv"
    _write_export(spar.landing / name, header, [row])
    spar.materialise_twice([KPI_VALUES.ref, SILVER_VALUES, SILVER_VALUES_QUARANTINE])
    quarantine = _quarantined(spar, SILVER_VALUES_QUARANTINE, name)
    assert quarantine.select("source_row", "column", "value").rows() == [(2, "actual", "-5")]
    assert quarantine["reason"].item() == "actual is negative for a KPI whose unit is Number"


def test_percentage_over_100_dfe(education: Family):
    """A DfE percentage cell of 140 (pt_ column, unit %) is quarantined; the row's other cells land."""
    path = education.folder / "ks2_attainment_la_202122_to_202425.csv"
    text = path.read_bytes().decode("utf-8-sig")
    header, *rows = list(csv.reader(io.StringIO(text, newline="")))
    at = header.index("pt_rwm_met_expected_standard")
    row = next(i for i, r in enumerate(rows) if r[at].replace(".", "").isdigit())
    rows[row][at] = "140"
    buffer = io.StringIO(newline="")
    csv.writer(buffer, lineterminator="\r\n").writerows([header, *rows])
    path.write_text(buffer.getvalue(), encoding="utf-8", newline="")
    education.materialise_twice([EES_DATA.ref, SILVER_EDUCATION, SILVER_EDUCATION_QUARANTINE])
    name = "education/ks2_attainment_la_202122_to_202425.csv"
    quarantine = _quarantined(education, SILVER_EDUCATION_QUARANTINE, name)
    assert quarantine.select("source_row", "column", "value").rows() == [
        (row + 2, "pt_rwm_met_expected_standard", "140")
    ]
    assert "percentage outside 0-100" in quarantine["reason"].item()
    silver = education.lake.scan(SILVER_EDUCATION).filter(pl.col("source_file") == name).collect()
    assert (
        silver.filter(pl.col("source_row") == row + 2).height
        == len([c for c in header if c.startswith(("t_", "pt_"))]) - 1
    )  # every other indicator cell of that row landed
    assert silver.filter(pl.col("value") > 100, pl.col("indicator").str.starts_with("pt_")).height == 0


def test_misnamed_file(spar: Family):
    """'SPAR Export 2024-25 Q3.csv' misses the pattern: warned about, naming the pattern and the fix."""
    shutil.copy(spar.folder / "spar_export_2024-25_Q3.csv", spar.folder / "SPAR Export 2024-25 Q4.csv")
    result = spar.materialise_twice([KPI_VALUES.ref, SILVER_VALUES])
    metadata = result.asset_materializations_for_node("bronze__spar_net__kpi_values")[0].metadata
    message = metadata["unmatched_files"].value
    assert "spar_net/SPAR Export 2024-25 Q4.csv" in message and "spar_export_*.csv" in message
    assert "rename it 'spar_export_2024-25_q4.csv'" in message and "bronze/spar_net/kpi_values" in message
    definitions = result.asset_materializations_for_node("bronze__spar_net__kpi_definitions")[0].metadata
    assert "unmatched_files" not in definitions  # reported once, by the closest table
    # The landing sensor says so too, in its skip reason, and warns once.
    with dg.build_sensor_context(
        resources={"landing": spar.resources["landing"]}, instance=dg.DagsterInstance.ephemeral()
    ) as context:
        first = landing_files_sensor(context)
        assert "SPAR Export 2024-25 Q4.csv" in first.skip_message
        second = landing_files_sensor(context)
        assert "SPAR Export 2024-25 Q4.csv" in second.skip_message
