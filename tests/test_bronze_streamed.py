"""Bronze streams a large landed file (a validated scan, written batch by batch) instead of reading it whole:
the table it lands must be the one a whole read lands, row for row, with the same report."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import polars as pl
import pytest

from assets.bronze import FILE_TABLES
from kpi_lake import bronze
from kpi_lake.raw_files import LOADED_AT, RUN_ID, SOURCE_FILE, SOURCE_ROW
from resources.azure import AzureStorage
from resources.lake import DeltaLake
from resources.landing import LandingZone
from tests.pipeline_helpers import local_resources

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
    container = f"landing-{uuid.uuid4().hex[:8]}"
    azure = AzureStorage(use_emulator=True, emulator_url=azurite)
    fs = azure.filesystem(f"az://{container}/incoming")
    fs.mkdir(container)
    for file in FILES:
        fs.put_file(str(real_samples / "education" / file), f"{container}/incoming/education/{file}")
    landing = LandingZone(root=f"az://{container}/incoming", azure=azure)
    lake = DeltaLake(root=str(tmp_path / "remote-lake"), azure=AzureStorage())
    siblings = [spec for spec in FILE_TABLES if spec.source == "education"]
    report = bronze.land_files(EES_DATA, lake=lake, landing=landing, run_id="r", siblings=siblings)
    assert report.rows_written == whole.height
    rows = lake.scan(EES_DATA.ref).drop(LOADED_AT, RUN_ID).sort(SOURCE_FILE, SOURCE_ROW).collect()
    assert rows.equals(whole)
