"""Bronze streams a large landed file (a validated scan, written batch by batch) instead of reading it whole:
the table it lands must be the one a whole read lands, row for row, with the same report."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from assets.bronze import FILE_TABLES
from kpi_lake import bronze, raw_files
from kpi_lake.raw_files import LOADED_AT, RUN_ID, SOURCE_FILE, SOURCE_ROW
from resources.azure import AzureStorage
from resources.lake import DeltaLake
from tests.pipeline_helpers import azurite_landing, local_resources

PROJECT_ROOT = Path(__file__).resolve().parents[1]

EES_DATA = next(spec for spec in FILE_TABLES if spec.ref.path == "bronze/education/ees_data")
FILES = ["ks2_la.csv", "absence_by_term.csv", "UD_NEETNK_LA_dashboard_2025.csv", "cin_sen_la.csv"]


def _land(tmp_path: Path, real_samples: Path, name: str) -> tuple[bronze.LandingReport, pl.DataFrame]:
    landing = tmp_path / name / "landing"
    (landing / "education").mkdir(parents=True)
    for file in FILES:
        shutil.copy(real_samples / "education" / file, landing / "education" / file)
    resources = local_resources(tmp_path / name / "lake", landing)
    lake = resources["lake"]
    siblings = [spec for spec in FILE_TABLES if spec.source == "education"]
    report = bronze.land_files(
        EES_DATA, lake=lake, landing=resources["landing"], run_id="r", siblings=siblings
    )
    rows = lake.scan(EES_DATA.ref).drop(LOADED_AT, RUN_ID).sort(SOURCE_FILE, SOURCE_ROW).collect()
    return report, rows


def test_a_streamed_landing_writes_the_rows_of_a_whole_read(
    tmp_path: Path, real_samples: Path, monkeypatch: pytest.MonkeyPatch
):
    whole_report, whole = _land(tmp_path, real_samples, "whole")
    monkeypatch.setattr(bronze, "STREAM_FROM_BYTES", 0)  # every file counts as large: all are streamed
    streamed_report, streamed = _land(tmp_path, real_samples, "streamed")
    assert (
        sorted(streamed_report.loaded)
        == sorted(whole_report.loaded)
        == sorted(f"education/{f}" for f in FILES)
    )
    assert streamed_report.rows_written == whole_report.rows_written == whole.height > 0
    assert streamed_report.rows_with_parse_issues == whole_report.rows_with_parse_issues
    assert streamed.columns == whole.columns
    assert streamed.equals(whole)


def test_a_streamed_file_from_an_azure_landing_zone_is_read_before_its_download_is_removed(
    tmp_path: Path, real_samples: Path, azurite: str, monkeypatch: pytest.MonkeyPatch
):
    # A remote file is downloaded to a temporary folder; a streamed one is read when the table is written,
    # so the download must outlive the loop that found it.
    _, whole = _land(tmp_path, real_samples, "whole")
    monkeypatch.setattr(bronze, "STREAM_FROM_BYTES", 0)
    landing, _, _ = azurite_landing(
        azurite, {f"education/{file}": real_samples / "education" / file for file in FILES}
    )
    lake = DeltaLake(root=str(tmp_path / "remote-lake"), azure=AzureStorage())
    siblings = [spec for spec in FILE_TABLES if spec.source == "education"]
    report = bronze.land_files(EES_DATA, lake=lake, landing=landing, run_id="r", siblings=siblings)
    assert report.rows_written == whole.height
    rows = lake.scan(EES_DATA.ref).drop(LOADED_AT, RUN_ID).sort(SOURCE_FILE, SOURCE_ROW).collect()
    assert rows.equals(whole)


def _with_ragged_row(source: Path, target: Path) -> int:
    """``source`` with one row of an extra field inserted past the first 50 rows (beyond the header scan):
    the kind of fault only a full parse finds. Returns the inserted row's number in the file."""
    lines = source.read_bytes().splitlines(keepends=True)
    at = min(len(lines) - 1, 60)
    lines.insert(at, lines[at].rstrip(b"\r\n") + b",an extra field\n")
    target.write_bytes(b"".join(lines))
    return at + 1


def test_a_large_file_polars_cannot_stream_lands_as_a_whole_read_does_and_the_refused_write_leaves_nothing(
    tmp_path: Path, real_samples: Path, monkeypatch: pytest.MonkeyPatch
):
    # Streamed in one pass, a ragged row fails the write midway; bronze then reads the files again with a
    # validating pass, and polars' refusal sends this one to the whole read, which keeps the extra field.
    for name in ("whole", "streamed"):
        folder = tmp_path / name / "landing" / "education"
        folder.mkdir(parents=True)
        row = _with_ragged_row(real_samples / "education" / "ks2_la.csv", folder / "ks2_la.csv")
        shutil.copy(real_samples / "education" / "absence_by_term.csv", folder / "absence_by_term.csv")
    siblings = [spec for spec in FILE_TABLES if spec.source == "education"]
    landed: dict[str, tuple[bronze.LandingReport, pl.DataFrame, DeltaLake]] = {}
    for name in ("whole", "streamed"):
        if name == "streamed":
            monkeypatch.setattr(bronze, "STREAM_FROM_BYTES", 0)
        resources = local_resources(tmp_path / name / "lake", tmp_path / name / "landing")
        lake, said = resources["lake"], []
        report = bronze.land_files(
            EES_DATA, lake=lake, landing=resources["landing"], run_id="r", siblings=siblings, log=said.append
        )
        rows = lake.scan(EES_DATA.ref).drop(LOADED_AT, RUN_ID).sort(SOURCE_FILE, SOURCE_ROW).collect()
        landed[name] = (report, rows, lake)
    (whole_report, whole, _), (streamed_report, streamed, lake) = landed["whole"], landed["streamed"]
    assert any("polars cannot stream it" in line and "ks2_la.csv" in line for line in said)
    assert streamed.equals(whole)
    assert streamed_report.rows_written == whole_report.rows_written == whole.height
    assert streamed_report.rows_with_parse_issues == whole_report.rows_with_parse_issues == 1
    ragged = streamed.filter(pl.col(SOURCE_FILE) == "education/ks2_la.csv", pl.col(SOURCE_ROW) == row)
    assert ragged["_extra_fields"].to_list() == ["an extra field"]
    # The refused write committed nothing and left no file behind: one version, every data file in it.
    table = lake.delta_table(EES_DATA.ref)
    assert table.version() == 0
    folder = Path(lake.uri(EES_DATA.ref))
    on_disk = {str(p.relative_to(folder)) for p in folder.rglob("*.parquet") if "_delta_log" not in p.parts}
    assert on_disk == {Path(uri).relative_to(folder).as_posix() for uri in table.file_uris()}


def test_a_clean_large_file_is_parsed_once_and_its_rows_counted_from_what_was_written(
    tmp_path: Path, real_samples: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(bronze, "STREAM_FROM_BYTES", 0)
    counted: list[Path] = []
    real_count = bronze._parses_as_streamed
    monkeypatch.setattr(bronze, "_parses_as_streamed", lambda *a: counted.append(a[0]) or real_count(*a))
    scans = []
    real_scan = raw_files._scan_with_polars
    monkeypatch.setattr(
        raw_files,
        "_scan_with_polars",
        lambda *a, **k: scans.append(k.get("count", True)) or real_scan(*a, **k),
    )
    report, rows = _land(tmp_path, real_samples, "streamed")
    assert scans and not any(scans), "a clean comma-separated file is not parsed before it is written"
    assert not counted
    assert report.rows_written == rows.height > 0
    by_file = rows.group_by(SOURCE_FILE).len()
    assert by_file.height == len(FILES)


def test_a_streamed_files_rows_are_counted_from_the_delta_log_when_its_data_files_hold_it_alone(
    tmp_path: Path, real_samples: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(bronze, "STREAM_FROM_BYTES", 0)
    _, rows = _land(tmp_path, real_samples, "streamed")
    resources = local_resources(tmp_path / "streamed" / "lake", tmp_path / "streamed" / "landing")
    lake = resources["lake"]
    names = [f"education/{f}" for f in FILES]
    expected = dict(rows.group_by(SOURCE_FILE).len().iter_rows())
    assert bronze._rows_written(lake, EES_DATA.ref, names) == expected
    # Those files have over 32 columns, so Delta keeps no statistics of the lineage columns: counted by reading.
    # A file of 25 columns alone in its data files: counted from the log's statistics, no row read.
    one = tmp_path / "one"
    csv = one / "landing" / "education" / "ees_school_level.csv"
    subprocess.run(
        [
            sys.executable,
            str(PROJECT_ROOT / "benchmarks/generate_ees.py"),
            "--rows",
            "3000",
            "--out",
            str(csv),
        ],
        check=True,
        capture_output=True,
    )
    alone = local_resources(one / "lake", one / "landing")
    report = bronze.land_files(EES_DATA, lake=alone["lake"], landing=alone["landing"], run_id="r")
    assert report.rows_written == pl.read_csv(csv, infer_schema=False).height > 0
    monkeypatch.setattr(type(alone["lake"]), "scan", lambda *a, **k: pytest.fail("rows read to count them"))
    name = "education/ees_school_level.csv"
    assert bronze._rows_written(alone["lake"], EES_DATA.ref, [name]) == {name: report.rows_written}


def test_a_large_file_with_a_windows_1252_byte_past_its_start_lands_decoded_as_a_whole_read_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    # Streamed in one pass, a large new file is taken as UTF-8 from its first MiB; polars finds the byte that
    # is not, the write commits nothing, and the file is read again: as Windows-1252, whole, every row kept.
    source = tmp_path / "source.csv"
    subprocess.run(
        [
            sys.executable,
            str(PROJECT_ROOT / "benchmarks/generate_ees.py"),
            "--rows",
            "12000",
            "--out",
            str(source),
        ],
        check=True,
        capture_output=True,
    )
    lines = source.read_bytes().splitlines(keepends=True)
    fields = lines[-100].split(b",")
    fields[12] = "St Mary’s £ School".encode("cp1252")  # the school name
    lines[-100] = b",".join(fields)
    assert len(b"".join(lines[:-100])) > 1 << 20
    landed: dict[str, tuple[bronze.LandingReport, pl.DataFrame]] = {}
    said: list[str] = []
    for name, threshold in (("whole", 1 << 40), ("streamed", 0)):
        monkeypatch.setattr(bronze, "STREAM_FROM_BYTES", threshold)
        folder = tmp_path / name / "landing" / "education"
        folder.mkdir(parents=True)
        (folder / "ees_school_level.csv").write_bytes(b"".join(lines))
        resources = local_resources(tmp_path / name / "lake", tmp_path / name / "landing")
        lake = resources["lake"]
        report = bronze.land_files(
            EES_DATA, lake=lake, landing=resources["landing"], run_id="r", log=said.append
        )
        rows = lake.scan(EES_DATA.ref).drop(LOADED_AT, RUN_ID).sort(SOURCE_ROW).collect()
        landed[name] = (report, rows)
    (whole_report, whole), (streamed_report, streamed) = landed["whole"], landed["streamed"]
    assert any("polars cannot stream it" in line for line in said)
    assert streamed.equals(whole) and streamed.height == 12000
    assert streamed_report.rows_written == whole_report.rows_written == 12000
    assert "St Mary’s £ School" in streamed["school_name"].to_list()
